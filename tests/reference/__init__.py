"""Independent reference implementations that tests and benchmarks compare our code against.

Tests import them as ``reference.<module>`` (``tests/`` is on ``sys.path`` under pytest); the benchmark
scripts add ``tests/`` through ``benchmarks/bench_common.py``.
"""
