"""How phi3v-data starts its worker processes: one rule for every pool."""

from __future__ import annotations

import multiprocessing
import sys
import threading
from multiprocessing.context import BaseContext

THREAD_SAFE_START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
"""Safe while other threads run (progress bars, a pool's own): the fork server, or a fresh interpreter per worker
(Windows has only spawn). Either way a worker pays the interpreter's start-up and its imports (about 0.3 s)."""


def worker_context() -> BaseContext:
    """``fork`` on Linux while the main thread is this process's only Python thread, else the thread-safe method.

    A forked worker starts in milliseconds with the parent's imports. Forking is unsafe only where another
    thread may hold a lock the child then waits on forever; with the main thread alone there is none, and the
    native libraries in play (numpy's OpenBLAS, glibc's allocator) stop or reset their threads and locks at fork
    (Python 3.12+ still warns of OpenBLAS's idle thread, with a DeprecationWarning that is hidden by default).
    macOS frameworks are not fork-safe even then, so other systems always use the thread-safe method.
    """
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context(THREAD_SAFE_START_METHOD)
