"""The shared writer's worker pool: a hung item is killed by the timeout, a crashed worker is replaced, and
workers are forked where that is safe (see ``phi3v_data.processes``)."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from convert_helpers import read_jsonl

from phi3v_data.converters import Converter, Plan, Task, base, run_conversion
from phi3v_data.processes import THREAD_SAFE_START_METHOD

MARK = "as imported"
"""The ``mark`` item's answer: a forked worker sees the value the parent set, any other worker imports it afresh."""

ON_LINUX = sys.platform.startswith("linux")


@dataclass
class ScriptedConverter(Converter):
    """Text-only records; the task named ``hang`` sleeps, ``crash`` kills its process, ``mark…`` answers MARK."""

    keys: tuple[str, ...]

    name: ClassVar[str] = "scripted"
    splits: ClassVar[tuple[str, ...]] = ("train",)

    def options(self) -> dict[str, Any]:
        return {"keys": list(self.keys)}

    def plan(self) -> Plan:
        return Plan(tasks=[Task(key, "train", key) for key in self.keys])

    def process(self, task: Task, images_dir: Path) -> list[dict[str, Any]]:
        if task.payload == "hang":
            time.sleep(120)
        if task.payload == "crash":
            os._exit(3)
        answer = MARK if task.payload.startswith("mark") else task.key
        return [{"conversations": [{"user": f"Say {task.key}.", "assistant": answer}]}]


@contextlib.contextmanager
def _another_thread() -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _thread_safe_context() -> multiprocessing.context.BaseContext:
    return multiprocessing.get_context(THREAD_SAFE_START_METHOD)


@pytest.mark.parametrize("start", ["by the rule", THREAD_SAFE_START_METHOD])
def test_hung_and_crashed_items_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: str) -> None:
    if start == THREAD_SAFE_START_METHOD:
        monkeypatch.setattr(base, "worker_context", _thread_safe_context)
    converter = ScriptedConverter(("a", "hang", "b", "crash", "c", "d"))
    summary = run_conversion(converter, tmp_path, workers=2, timeout=3)

    reasons = {entry["item"]: entry["reason"] for entry in summary.skipped}
    assert reasons == {
        "hang": "timed out after 3 s (hung decoder?); its process was killed",
        "crash": "the worker process died (exit code 3)",
    }
    records = read_jsonl(tmp_path / "scripted_train.jsonl")
    assert [(r["id"], r["conversations"][0]["assistant"]) for r in records] == [
        ("train-0000000000", "a"),
        ("train-0000000001", "b"),
        ("train-0000000002", "c"),
        ("train-0000000003", "d"),
    ]


def _in_a_fresh_process(code: str, *args: str) -> str:
    """Runs ``code`` in a new interpreter, whose main thread is its only thread (this test process may hold
    others: tqdm's monitor, an event writer); returns what it prints."""
    setup = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
    done = subprocess.run([sys.executable, "-c", setup + code, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_workers_fork_only_while_the_main_thread_runs_alone() -> None:
    code = (
        "import threading; from phi3v_data.processes import worker_context; "
        "print(worker_context().get_start_method()); stop = threading.Event(); "
        "threading.Thread(target=stop.wait).start(); print(worker_context().get_start_method()); stop.set()"
    )
    methods = _in_a_fresh_process(code).split()
    assert methods == ["fork" if ON_LINUX else THREAD_SAFE_START_METHOD, THREAD_SAFE_START_METHOD]


def marked_run(out: Path) -> list[str]:
    """Sets MARK, then converts ``mark-1``, ``crash``, ``mark-2`` with 1 worker under a progress bar that runs a
    thread, as rich's does; returns the answers."""
    global MARK
    MARK = "set in the parent"
    shown = base.progress_bar

    @contextlib.contextmanager
    def bar_with_its_thread(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with _another_thread(), shown(*args, **kwargs) as advance:
            yield advance

    base.progress_bar = bar_with_its_thread
    summary = run_conversion(ScriptedConverter(("mark-1", "crash", "mark-2")), out, workers=1, timeout=60)
    assert [entry["item"] for entry in summary.skipped] == ["crash"]
    return [r["conversations"][0]["assistant"] for r in read_jsonl(out / "scripted_train.jsonl")]


@pytest.mark.skipif(not ON_LINUX, reason="workers are forked on Linux only")
def test_workers_start_before_the_progress_thread(tmp_path: Path) -> None:
    """The pool starts before the progress bar's refresh thread, so its worker is forked: it answers the parent's
    MARK. The crashed worker's replacement starts while that thread runs, so it is not forked: it answers the
    imported MARK."""
    code = "import json, pathlib, test_convert_pool as t; print(json.dumps(t.marked_run(pathlib.Path(sys.argv[1]))))"
    answers = json.loads(_in_a_fresh_process(code, str(tmp_path)))
    assert answers == ["set in the parent", "as imported"]
