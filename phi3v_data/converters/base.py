"""The shared writer of every converter: worker processes, resume, atomic output and the report.

A converter plans a deterministic list of :class:`Task` (one source item each: a clip, a document, a
meme) and turns one task into record dicts, writing the task's images itself. The writer runs the
tasks (in worker processes when asked, so a hung decoder can be killed), journals each finished
task in ``OUT/.convert_state.<name>`` so that a re-run skips it, and at the end writes
``OUT/<name>_<split>.jsonl`` and ``OUT/convert_report.json`` atomically, only when their bytes change.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from phi3v_data.converters.hub import HUB_ID, download_hint
from phi3v_data.errors import SourceLayoutError
from phi3v_data.io import atomic_write_text, progress_disabled
from phi3v_data.schema import Record, record_to_json_line

REPORT_NAME = "convert_report.json"
STATE_PREFIX = ".convert_state."


class ItemSkipped(Exception):
    """One source item is bad (corrupt, missing, unreadable); it is skipped and reported."""


@dataclass(frozen=True)
class Task:
    """One source item. ``key`` names it in the report; ``payload`` is what ``process`` needs (picklable)."""

    key: str
    split: str
    payload: Any = None


@dataclass
class Plan:
    tasks: list[Task]
    excluded: dict[str, int] = field(default_factory=dict)
    """Source items left out on purpose (e.g. unlabeled memes), counted in the report, not errors."""


class Converter(ABC):
    """A dataset converter. Subclasses are picklable option holders (they travel to worker processes)."""

    name: str = ""
    splits: tuple[str, ...] = ()
    """Known split names in output order; splits met in the source but not listed here come after."""

    @property
    def file_stem(self) -> str:
        return self.name.replace("-", "_")

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """Every setting that changes the output; a journal written under other options is discarded."""

    @abstractmethod
    def plan(self) -> Plan:
        """The tasks, in the deterministic order their records take in the output files."""

    @abstractmethod
    def process(self, task: Task, images_dir: Path) -> list[dict[str, Any]]:
        """Writes the task's images under ``images_dir`` and returns its records (without ``id``
        when the writer should number them ``<split>-<10-digit index>``). Raises ItemSkipped."""


def missing_source(src: Path) -> SourceLayoutError:
    """The error for a SRC that does not exist; a hub id gets the command that downloads it."""
    if HUB_ID.fullmatch(src.as_posix()):
        return SourceLayoutError(f"{src} is not a local folder; {download_hint(src.as_posix())}")
    return SourceLayoutError(f"{src} does not exist")


@dataclass
class ConvertSummary:
    records: dict[str, int]
    files: list[Path]
    skipped: list[dict[str, str]]
    excluded: dict[str, int]
    reused: int
    processed: int
    report: Path


def _outcome(converter: Converter, task: Task, images_dir: Path) -> dict[str, Any]:
    try:
        return {"records": converter.process(task, images_dir)}
    except ItemSkipped as exc:
        return {"skipped": str(exc)}
    except Exception as exc:
        # One malformed item (a surprise from a decoder or an image library) must not end a long run.
        return {"skipped": f"unexpected {type(exc).__name__}: {exc}"}


def _worker_main(conn, converter: Converter, images_dir: Path) -> None:
    while True:
        message = conn.recv()
        if message is None:
            return
        seq, task = message
        conn.send((seq, _outcome(converter, task, images_dir)))


class _Worker:
    def __init__(self, context, converter: Converter, images_dir: Path) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, converter, images_dir), daemon=True)
        self.process.start()
        child.close()
        self.job: tuple[int, Task] | None = None
        self.started = 0.0

    def stop(self, grace: float = 0.0) -> None:
        self.process.join(grace)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


def _run_pool(
    jobs: Sequence[tuple[int, Task]],
    converter: Converter,
    images_dir: Path,
    workers: int,
    timeout: float | None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Runs jobs in ``workers`` processes; one that exceeds ``timeout`` seconds is killed and replaced."""
    context = multiprocessing.get_context("spawn")
    pending = deque(jobs)
    pool = [_Worker(context, converter, images_dir) for _ in range(min(workers, len(jobs)))]
    try:
        while pending or any(w.job for w in pool):
            for worker in pool:
                if worker.job is None and pending:
                    worker.job = pending.popleft()
                    worker.started = time.monotonic()
                    worker.conn.send(worker.job)
            busy = [w for w in pool if w.job]
            wait_for = None
            if timeout is not None:
                wait_for = max(0.0, min(w.started + timeout for w in busy) - time.monotonic())
            ready = wait([w.conn for w in busy], timeout=wait_for)
            for i, worker in enumerate(pool):
                if worker.job is None:
                    continue
                seq, _ = worker.job
                healthy = True
                if worker.conn in ready:
                    try:
                        _, outcome = worker.conn.recv()
                    except EOFError:
                        healthy = False
                        worker.process.join()
                        outcome = {"skipped": f"the worker process died (exit code {worker.process.exitcode})"}
                elif timeout is not None and time.monotonic() - worker.started >= timeout:
                    healthy = False
                    outcome = {"skipped": f"timed out after {timeout:g} s (hung decoder?); its process was killed"}
                else:
                    continue
                if healthy:
                    worker.job = None
                else:
                    worker.stop()
                    pool[i] = _Worker(context, converter, images_dir)
                yield seq, outcome
    finally:
        for worker in pool:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            worker.stop(grace=1.0)


def _run_inline(
    jobs: Sequence[tuple[int, Task]], converter: Converter, images_dir: Path
) -> Iterator[tuple[int, dict[str, Any]]]:
    for seq, task in jobs:
        yield seq, _outcome(converter, task, images_dir)


class _Journal:
    """Append-only record of finished tasks. A torn last line (killed mid-write) is dropped on load."""

    def __init__(self, path: Path, options: dict[str, Any]) -> None:
        self.path = path
        header = json.dumps({"options": options}, sort_keys=True)
        self.done: dict[str, dict[str, Any]] = {}
        lines = path.read_text(encoding="utf-8").split("\n") if path.is_file() else []
        if lines and lines[0] == header:
            for line in lines[1:]:
                with contextlib.suppress(json.JSONDecodeError):
                    entry = json.loads(line)
                    self.done[entry["key"]] = entry["outcome"]
        body = [header] + [json.dumps({"key": k, "outcome": v}) for k, v in self.done.items()]
        atomic_write_text(path, "\n".join(body) + "\n")
        self.handle = path.open("a", encoding="utf-8")

    def add(self, key: str, outcome: dict[str, Any]) -> None:
        self.handle.write(json.dumps({"key": key, "outcome": outcome}) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    atomic_write_text(path, text)
    return True


@contextlib.contextmanager
def _progress_bar(total: int, label: str, enabled: bool) -> Iterator[Callable[[], None]]:
    if not enabled or progress_disabled() or total == 0:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        bar = progress.add_task(label, total=total, rate="")

        def advance() -> None:
            progress.advance(bar)
            speed = progress.tasks[0].speed
            progress.update(bar, rate=f"{speed:.1f} items/s" if speed else "")

        yield advance


def run_conversion(
    converter: Converter,
    out: Path,
    *,
    workers: int = 1,
    timeout: float | None = None,
    progress: bool = False,
) -> ConvertSummary:
    """Plans, runs (or resumes) and writes one conversion into ``out``.

    Temporary files a killed run left behind are removed first; tasks in the journal are not redone.
    """
    out = Path(out)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for leftover in out.rglob(".*.incomplete"):
        leftover.unlink()
    plan = converter.plan()
    keys = [task.key for task in plan.tasks]
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"{converter.name}: task keys are not unique")
    journal = _Journal(out / f"{STATE_PREFIX}{converter.name}", converter.options())
    outcomes = {task.key: journal.done[task.key] for task in plan.tasks if task.key in journal.done}
    todo = [(seq, task) for seq, task in enumerate(plan.tasks) if task.key not in outcomes]
    try:
        with _progress_bar(len(todo), f"{converter.name}", progress) as advance:
            if workers > 1 or timeout is not None:
                results = _run_pool(todo, converter, images_dir, workers, timeout)
            else:
                results = _run_inline(todo, converter, images_dir)
            for seq, outcome in results:
                key = plan.tasks[seq].key
                outcomes[key] = outcome
                journal.add(key, outcome)
                advance()
    finally:
        journal.close()
    return _finish(converter, out, plan, outcomes, reused=len(plan.tasks) - len(todo))


def _finish(
    converter: Converter, out: Path, plan: Plan, outcomes: dict[str, dict[str, Any]], reused: int
) -> ConvertSummary:
    by_split: dict[str, list[str]] = {}
    seen: dict[str, set[str]] = {}
    skipped = []
    counter = 0
    for task in plan.tasks:
        outcome = outcomes[task.key]
        if "skipped" in outcome:
            skipped.append({"item": task.key, "reason": outcome["skipped"]})
            continue
        for data in outcome["records"]:
            data = {"id": data.get("id") or f"{task.split}-{counter:010d}", "source": converter.name, **data}
            if data["id"] in seen.setdefault(task.split, set()):
                skipped.append({"item": task.key, "reason": f"duplicate id {data['id']!r} in split {task.split}"})
                continue
            seen[task.split].add(data["id"])
            counter += 1
            by_split.setdefault(task.split, []).append(record_to_json_line(Record.model_validate(data)))
    order = list(converter.splits) + sorted(set(by_split) - set(converter.splits))
    files = []
    for split in order:
        path = out / f"{converter.file_stem}_{split}.jsonl"
        if split in by_split:
            _write_if_changed(path, "\n".join(by_split[split]) + "\n")
            files.append(path)
        elif path.is_file():
            path.unlink()
    report = {
        "converter": converter.name,
        "options": converter.options(),
        "records": {split: len(by_split[split]) for split in order if split in by_split},
        "excluded": plan.excluded,
        "skipped_count": len(skipped),
        "skipped": skipped,
    }
    report_path = out / REPORT_NAME
    _write_if_changed(report_path, json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return ConvertSummary(
        records=report["records"],
        files=files,
        skipped=skipped,
        excluded=plan.excluded,
        reused=reused,
        processed=len(plan.tasks) - reused,
        report=report_path,
    )
