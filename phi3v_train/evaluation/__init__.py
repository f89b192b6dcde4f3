"""Evaluation: task metrics, label scoring, batched generation and the `evaluate_records` driver.

The driver needs torch; it is imported on first use, so that re-scoring a predictions file
(:mod:`phi3v_train.evaluation.rescore`) stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EvalResult", "evaluate_records"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from phi3v_train.evaluation import evaluate

        return getattr(evaluate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
