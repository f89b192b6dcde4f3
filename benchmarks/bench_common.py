"""Helpers shared by the benchmark scripts (not a benchmark itself).

Importing it puts ``tests/`` on ``sys.path``, so the scripts use the same reference implementations as
the tests (``reference.hd_transform``, ``reference.scoring``).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT / "tests") not in sys.path:
    sys.path.append(str(REPO_ROOT / "tests"))


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what :func:`platform.processor` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
