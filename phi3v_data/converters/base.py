"""The shared writer of every converter: worker processes, resume, atomic output and the report.

A converter plans a deterministic list of :class:`Task` (one source item each: a clip, a document, a
meme) and turns one task into record dicts, writing the task's images itself. The writer runs the
tasks (in worker processes when asked, so a hung decoder can be killed), journals each finished
task in ``OUT/.convert_state.<name>-<hash of the resolved SRC>`` so that a re-run skips it, and at the end
writes ``OUT/<name>_<split>.jsonl`` and ``OUT/convert_report.json`` atomically, only when their bytes change.

Outputs are never made worse: a run that fails (no records, too many skips) leaves the earlier JSONL
files as they were and writes its report to ``OUT/convert_report.failed.json``; an OUT that holds a
conversion of another source or with other options is refused unless ``overwrite`` is given.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from phi3v_data.converters.hub import HUB_ID, download_hint
from phi3v_data.datasets import canonical_source
from phi3v_data.errors import Phi3vDataError, SourceLayoutError
from phi3v_data.io import atomic_write_text, progress_bar
from phi3v_data.processes import worker_context
from phi3v_data.schema import Record, record_to_json_line

REPORT_NAME = "convert_report.json"
FAILED_REPORT_NAME = "convert_report.failed.json"
STATE_PREFIX = ".convert_state."
IMAGES_DIR = "images"
_QUEUED_PER_WORKER = 2
_ROW_PREFIX = re.compile(r"^row \d+: ")
_KIND_END = re.compile(r"[\d:(/'\"\\]")


def reason_kind(message: str) -> str:
    """The reason of a skip without its particulars (paths, numbers, values): ``missing image /a/b.png`` ->
    ``missing image``. The report counts skips by it."""
    text = _ROW_PREFIX.sub("", message)
    end = _KIND_END.search(text)
    return (text[: end.start()] if end else text).strip() or "other"


class ItemSkipped(Exception):
    """One source item is bad (corrupt, missing, unreadable); it is skipped and reported."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind or reason_kind(message)


class OutputConflictError(Phi3vDataError):
    """OUT holds another conversion (other source or options), or files this writer did not make."""

    hint = "Choose another OUT, or pass --overwrite to replace the earlier conversion (its images are removed too)."


class ConversionInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: ``done`` of ``total`` items are journaled, and a re-run resumes from there."""

    def __init__(self, done: int, total: int, out: Path) -> None:
        super().__init__(f"interrupted: {done:,} of {total:,} items done in {out}; re-run the same command to resume")
        self.done, self.total, self.out = done, total, out


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
    not_reached: list[str] = field(default_factory=list)
    """Source files met but not read, each with the reason (e.g. another dataset's shards)."""


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

    def warnings(self, records: list[dict[str, Any]]) -> list[str]:
        """One line per kind of surprise met in the written records (e.g. clips shorter than --frames)."""
        return []


OUTPUT_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")


class SingleFileConverter(Converter):
    """A converter of one file into one split: ``--source`` names the records and the output file, ``--split`` the
    split."""

    source: str
    split: str

    def check_output_names(self) -> None:
        if not OUTPUT_NAME_RE.fullmatch(self.source) or not OUTPUT_NAME_RE.fullmatch(self.split):
            raise ValueError("--source and --split may only use letters, digits, '_', '-' and '.'")

    @property
    def file_stem(self) -> str:
        return self.source.replace("-", "_")

    @property
    def splits(self) -> tuple[str, ...]:
        return (self.split,)


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
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per split: ``items`` read, ``records`` written, ``skipped`` counts by reason."""
    not_reached: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None
    """Why the run failed (no records, too many skips); its outputs were then not written."""


def _outcome(converter: Converter, task: Task, images_dir: Path) -> dict[str, Any]:
    try:
        return {"records": converter.process(task, images_dir)}
    except ItemSkipped as exc:
        return {"skipped": str(exc), "kind": exc.kind}
    except Exception as exc:
        # One malformed item (a surprise from a decoder or an image library) must not end a long run.
        return {"skipped": f"unexpected {type(exc).__name__}: {exc}", "kind": f"unexpected {type(exc).__name__}"}


def _worker_main(conn, converter: Converter, images_dir: Path) -> None:
    while True:
        message = conn.recv()
        if message is None:
            # Everything the worker wrote is closed: the interpreter's teardown (about 80 ms with numpy, PyAV
            # and Pillow loaded) would only delay the parent, which waits for the process to end.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        seq, task = message
        conn.send((seq, _outcome(converter, task, images_dir)))


class _Worker:
    def __init__(self, context, converter: Converter, images_dir: Path) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, converter, images_dir), daemon=True)
        # Ctrl-C reaches the whole process group: the parent alone handles it (it stops the workers). A
        # worker started while SIGINT is ignored keeps ignoring it from its first instruction (Python leaves
        # an ignored SIGINT alone at start-up), so a Ctrl-C during its imports prints no traceback either.
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                self.process.start()
            finally:
                signal.signal(signal.SIGINT, previous)
        else:
            self.process.start()
        child.close()
        self.jobs: deque[tuple[int, Task]] = deque()
        """Sent and not answered yet, in the order the worker runs them: the first is the one it runs now."""
        self.started = 0.0
        """When the first of ``jobs`` started, as far as the parent knows: its timeout counts from here."""

    def retire(self) -> None:
        """Tells the worker to exit once its jobs are done (it may be gone already)."""
        with contextlib.suppress(OSError):
            self.conn.send(None)

    def stop(self, grace: float = 0.0) -> None:
        self.process.join(grace)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


class _Pool:
    """``workers`` processes, started at once (before any progress bar, so they can be forked; see
    :func:`worker_context`); :meth:`run` runs jobs in them, and kills and replaces one that exceeds ``timeout``.

    Each worker holds up to ``_QUEUED_PER_WORKER`` jobs, so it starts the next one without waiting for
    the parent to read its answer and send more (a round trip per item left the workers idle whenever
    the parent was not scheduled at once). A killed worker's jobs that had not started go back to the queue.
    """

    def __init__(self, converter: Converter, images_dir: Path, workers: int, timeout: float | None) -> None:
        self.converter, self.images_dir, self.timeout = converter, images_dir, timeout
        self.workers: list[_Worker] = []
        try:
            for _ in range(workers):
                self.workers.append(self._start())
        except BaseException:
            self.close()
            raise

    def _start(self) -> _Worker:
        return _Worker(worker_context(), self.converter, self.images_dir)

    def run(self, jobs: Sequence[tuple[int, Task]]) -> Iterator[tuple[int, dict[str, Any]]]:
        pool, timeout = self.workers, self.timeout
        pending = deque(jobs)
        while pending or any(w.jobs for w in pool):
            for worker in pool:
                while pending and len(worker.jobs) < _QUEUED_PER_WORKER:
                    if not worker.jobs:
                        worker.started = time.monotonic()
                    worker.jobs.append(pending.popleft())
                    # A worker that died is found below, with its jobs; this one is then queued again.
                    with contextlib.suppress(OSError):
                        worker.conn.send(worker.jobs[-1])
            busy = [w for w in pool if w.jobs]
            wait_for = None
            if timeout is not None:
                wait_for = max(0.0, min(w.started + timeout for w in busy) - time.monotonic())
            ready = wait([w.conn for w in busy], timeout=wait_for)
            for i, worker in enumerate(pool):
                if not worker.jobs:
                    continue
                seq, _ = worker.jobs[0]
                healthy = True
                if worker.conn in ready:
                    try:
                        _, outcome = worker.conn.recv()
                    except (EOFError, OSError):  # OSError: it died with jobs unread in its pipe
                        healthy = False
                        worker.process.join()
                        outcome = {"skipped": f"the worker process died (exit code {worker.process.exitcode})"}
                elif timeout is not None and time.monotonic() - worker.started >= timeout:
                    healthy = False
                    outcome = {"skipped": f"timed out after {timeout:g} s (hung decoder?); its process was killed"}
                else:
                    continue
                worker.jobs.popleft()
                if healthy:
                    worker.started = time.monotonic()
                else:
                    pending.extendleft(reversed(worker.jobs))
                    worker.stop()
                    pool[i] = self._start()
                yield seq, outcome
            if not pending:
                # A worker left without jobs exits now, while the others finish theirs.
                for worker in [w for w in pool if not w.jobs]:
                    worker.retire()
                    worker.stop(grace=1.0)
                    pool.remove(worker)

    def close(self) -> None:
        for worker in self.workers:
            worker.retire()
        for worker in self.workers:
            worker.stop(grace=1.0)
        self.workers = []


def _run_inline(
    jobs: Sequence[tuple[int, Task]], converter: Converter, images_dir: Path
) -> Iterator[tuple[int, dict[str, Any]]]:
    for seq, task in jobs:
        yield seq, _outcome(converter, task, images_dir)


class _Journal:
    """Append-only record of finished tasks. A torn last line (killed mid-write) is dropped on load."""

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        header = json.dumps(identity, sort_keys=True)
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


def identity(converter: Converter) -> dict[str, Any]:
    """What a conversion is: the converter and its options, with SRC (and other paths) resolved."""
    options = dict(converter.options())
    for key in ("src", "splits_dir"):
        if options.get(key):
            options[key] = str(Path(options[key]).resolve())
    return {"converter": converter.name, "options": options}


def journal_path(out: Path, ident: dict[str, Any]) -> Path:
    """One journal per converter and resolved SRC."""
    digest = hashlib.sha256(str(ident["options"].get("src", "")).encode()).hexdigest()[:12]
    return out / f"{STATE_PREFIX}{ident['converter']}-{digest}"


def _read_json(path: Path) -> dict[str, Any] | None:
    """A report's content, or a journal's header (its first line); None when unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
        value = json.loads(text.split("\n", 1)[0] if path.name.startswith(STATE_PREFIX) else text)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _earlier(out: Path) -> list[tuple[Path, dict[str, Any] | None]]:
    """The earlier conversions' traces in OUT: reports and journals, each with what it records."""
    paths = [out / REPORT_NAME, out / FAILED_REPORT_NAME, *sorted(out.glob(f"{STATE_PREFIX}*"))]
    return [(path, _read_json(path)) for path in paths if path.is_file()]


def _describe(ident: dict[str, Any] | None) -> str:
    if not ident or "converter" not in ident:
        return "an unknown conversion"
    return f"a {ident['converter']} conversion of {ident.get('options', {}).get('src', '?')}"


def _claim_out(out: Path, ident: dict[str, Any], overwrite: bool) -> None:
    """Refuses an OUT that holds another conversion; with ``overwrite`` removes that conversion first."""
    traces = _earlier(out)
    others = [
        (path, found)
        for path, found in traces
        if not found or {"converter": found.get("converter"), "options": found.get("options")} != ident
    ]
    images = out / IMAGES_DIR
    stray_images = not traces and images.is_dir() and any(p.is_file() for p in images.rglob("*"))
    if not others and not stray_images:
        return
    if not overwrite:
        if stray_images:
            raise OutputConflictError(f"{images} holds images, but {out} has no conversion report or journal")
        path, found = others[0]
        differing = ""
        if found and found.get("converter") == ident["converter"]:
            old = found.get("options") or {}
            keys = sorted(k for k in set(old) | set(ident["options"]) if old.get(k) != ident["options"].get(k))
            differing = f" (different {', '.join(keys)})"
        raise OutputConflictError(
            f"{out} holds {_describe(found)}{differing}, recorded in {path.name}; this run is {_describe(ident)}"
        )
    for path, found in traces:
        for name in (found or {}).get("files", []):
            with contextlib.suppress(FileNotFoundError):
                (out / Path(name).name).unlink()
        path.unlink()
    shutil.rmtree(images, ignore_errors=True)


def run_conversion(
    converter: Converter,
    out: Path,
    *,
    workers: int = 1,
    timeout: float | None = None,
    progress: bool = False,
    max_skip_fraction: float | None = None,
    strict: bool = False,
    overwrite: bool = False,
) -> ConvertSummary:
    """Plans, runs (or resumes) and writes one conversion into ``out``.

    Temporary files a killed run left behind are removed first; tasks in the journal are not redone. The
    run fails (``summary.failure``; the JSONL files are then left as they were) when it writes no record,
    when ``strict`` and an item was skipped, or when more than ``max_skip_fraction`` of the items were.
    Raises OutputConflictError when ``out`` holds another conversion and ``overwrite`` is not set, and
    ConversionInterrupted on Ctrl-C (finished items stay journaled).
    """
    out = Path(out)
    ident = identity(converter)
    plan = converter.plan()
    keys = [task.key for task in plan.tasks]
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"{converter.name}: task keys are not unique")
    if out.exists():
        _claim_out(out, ident, overwrite)
    images_dir = out / IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    for leftover in out.rglob(".*.incomplete"):
        leftover.unlink()
    journal = _Journal(journal_path(out, ident), ident)
    outcomes = {task.key: journal.done[task.key] for task in plan.tasks if task.key in journal.done}
    todo = [(seq, task) for seq, task in enumerate(plan.tasks) if task.key not in outcomes]
    pool = None
    try:
        if todo and (workers > 1 or timeout is not None):
            pool = _Pool(converter, images_dir, min(workers, len(todo)), timeout)
        with progress_bar(len(todo), converter.name, rate=True, transient=False, enabled=progress) as advance:
            for seq, outcome in pool.run(todo) if pool is not None else _run_inline(todo, converter, images_dir):
                key = plan.tasks[seq].key
                outcomes[key] = outcome
                journal.add(key, outcome)
                advance(1)
    except KeyboardInterrupt:
        raise ConversionInterrupted(len(outcomes), len(plan.tasks), out) from None
    finally:
        if pool is not None:
            pool.close()
        journal.close()
    limits = (max_skip_fraction, strict)
    return _finish(converter, ident, out, plan, outcomes, reused=len(plan.tasks) - len(todo), limits=limits)


def _failure(records: int, skipped: int, items: int, limits: tuple[float | None, bool]) -> str | None:
    max_skip_fraction, strict = limits
    if records == 0:
        return "no records were written"
    if strict and skipped:
        return f"{skipped:,} items were skipped and --strict is set"
    if max_skip_fraction is not None and skipped > max_skip_fraction * items:
        return (
            f"{skipped:,} of {items:,} items ({skipped / items:.1%}) were skipped, "
            f"over --max-skip-fraction {max_skip_fraction:g}"
        )
    return None


def _prune_images(images_dir: Path, referenced: set[str]) -> None:
    """Removes images no record refers to (left by a forced redo, or by items that were skipped)."""
    for path in sorted(images_dir.rglob("*"), reverse=True):
        if path.is_file() and path.relative_to(images_dir).as_posix() not in referenced:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _finish(
    converter: Converter,
    ident: dict[str, Any],
    out: Path,
    plan: Plan,
    outcomes: dict[str, dict[str, Any]],
    reused: int,
    limits: tuple[float | None, bool],
) -> ConvertSummary:
    by_split: dict[str, list[str]] = {}
    seen: dict[str, set[str]] = {}
    splits: dict[str, dict[str, Any]] = {}
    skipped = []
    written: list[dict[str, Any]] = []
    referenced: set[str] = set()
    counter = 0
    for task in plan.tasks:
        stats = splits.setdefault(task.split, {"items": 0, "records": 0, "skipped": {}})
        stats["items"] += 1
        outcome = outcomes[task.key]
        if "skipped" in outcome:
            skipped.append({"item": task.key, "reason": outcome["skipped"]})
            kind = outcome.get("kind") or reason_kind(outcome["skipped"])
            stats["skipped"][kind] = stats["skipped"].get(kind, 0) + 1
            continue
        for data in outcome["records"]:
            record_id = data.get("id") or f"{task.split}-{counter:010d}"
            data = {"id": record_id, "source": canonical_source(converter.name), **data}
            if data["id"] in seen.setdefault(task.split, set()):
                skipped.append({"item": task.key, "reason": f"duplicate id {data['id']!r} in split {task.split}"})
                stats["skipped"]["duplicate id"] = stats["skipped"].get("duplicate id", 0) + 1
                continue
            seen[task.split].add(data["id"])
            counter += 1
            stats["records"] += 1
            record = Record.model_validate(data)
            referenced.update(record.images)
            written.append(data)
            by_split.setdefault(task.split, []).append(record_to_json_line(record))
    order = list(converter.splits) + sorted(set(splits) - set(converter.splits))
    total = sum(len(lines) for lines in by_split.values())
    failure = _failure(total, len(skipped), len(plan.tasks), limits)
    files = [out / f"{converter.file_stem}_{split}.jsonl" for split in order if split in by_split]
    report = {
        **ident,
        "status": "failed" if failure else "ok",
        "records": {split: len(by_split[split]) for split in order if split in by_split},
        "splits": {split: splits[split] for split in order if split in splits},
        "excluded": plan.excluded,
        "not_reached": plan.not_reached,
        "skipped_count": len(skipped),
        "skipped": skipped,
        "warnings": converter.warnings(written),
        "files": [path.name for path in files],
    }
    if failure:
        report["failure"] = failure
    earlier = _read_json(out / REPORT_NAME) or {}
    report_path = out / (FAILED_REPORT_NAME if failure else REPORT_NAME)
    if not failure:
        for split in order:
            if split in by_split:
                _write_if_changed(out / f"{converter.file_stem}_{split}.jsonl", "\n".join(by_split[split]) + "\n")
        for name in set(earlier.get("files", [])) - set(report["files"]):
            with contextlib.suppress(FileNotFoundError):
                (out / Path(name).name).unlink()
        _prune_images(out / IMAGES_DIR, referenced)
        with contextlib.suppress(FileNotFoundError):
            (out / FAILED_REPORT_NAME).unlink()
    _write_if_changed(report_path, json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return ConvertSummary(
        records=report["records"],
        files=[] if failure else files,
        skipped=skipped,
        excluded=plan.excluded,
        reused=reused,
        processed=len(plan.tasks) - reused,
        report=report_path,
        splits=report["splits"],
        not_reached=plan.not_reached,
        warnings=report["warnings"],
        failure=failure,
    )
