"""File helpers shared by both packages: JSONL lines, atomic writes, and progress bars with one switch."""

from __future__ import annotations

import codecs
import contextlib
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from phi3v_data.errors import Phi3vDataError

if TYPE_CHECKING:
    from rich.progress import Progress

PROGRESS_ENV = "PHI3V_DISABLE_PROGRESS_BARS"
ADVANCE_EVERY_LINES = 1024


_temporary_numbers = itertools.count()


def _open_temporary(target: Path) -> tuple[int, str]:
    """A new file beside ``target``, created exclusively; the kernel gives it the mode ``open()`` would
    (0o666 less the umask), with no umask look-up or chmod per file."""
    while True:
        name = target.with_name(f".{target.name}.{os.getpid()}.{next(_temporary_numbers)}.incomplete")
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(name)
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8", *, fsync: bool = True
) -> Iterator[IO]:
    """Write to a temporary file beside ``path`` and rename it into place on success.

    On any exception the temporary file is removed and ``path`` is left as it was. ``fsync`` flushes
    the data to disk before the rename, so a power cut cannot leave an empty file under the final name.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = _open_temporary(target)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> None:
    with atomic_write(path, "wb", fsync=fsync) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = True) -> None:
    with atomic_write(path, "w", fsync=fsync) as handle:
        handle.write(text)


def iter_jsonl_lines(path: Path, advance: Callable[[int], None] | None = None) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines (end of line stripped) with their 1-based numbers; a UTF-8 byte-order mark on line 1
    is dropped. ``advance`` is called with the bytes read, every 1024 lines and at the end.

    Raises:
        Phi3vDataError: the file cannot be opened.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; the generator may stop early
    except OSError as exc:
        raise Phi3vDataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        done = 0
        for number, raw in enumerate(handle, start=1):
            done += len(raw)
            if advance is not None and number % ADVANCE_EVERY_LINES == 0:
                advance(done)
                done = 0
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            line = raw.rstrip(b"\r\n")
            if line and not line.isspace():
                yield number, line
        if advance is not None:
            advance(done)


def progress_disabled() -> bool:
    """Progress bars are off when ``PHI3V_DISABLE_PROGRESS_BARS`` is set to a non-empty value."""
    return bool(os.environ.get(PROGRESS_ENV))


def build_progress(
    label: str,
    *,
    unit: Literal["items", "bytes"] = "items",
    rate: bool = False,
    elapsed: bool = False,
    status: bool = False,
    transient: bool = True,
) -> Progress:
    """The one rich progress bar of both packages, on stderr: ``label``, bar, done/total (``unit``),
    then, as asked, a ``rate`` field, elapsed time and ETA, and a ``status`` field (task fields of those names).

    Callers check :func:`progress_disabled` (or use :func:`progress_bar`, which does).
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[ProgressColumn] = [TextColumn(label), BarColumn()]
    columns.append(DownloadColumn() if unit == "bytes" else MofNCompleteColumn())
    if rate:
        columns.append(TextColumn("{task.fields[rate]}"))
    if elapsed:
        columns += [TimeElapsedColumn(), TextColumn("ETA")]
    columns.append(TimeRemainingColumn())
    if status:
        columns.append(TextColumn("{task.fields[status]}"))
    return Progress(*columns, console=Console(stderr=True), transient=transient)


@contextlib.contextmanager
def progress_bar(
    total: int,
    label: str,
    *,
    unit: Literal["items", "bytes"] = "items",
    rate: bool = False,
    transient: bool = True,
    enabled: bool = True,
) -> Iterator[Callable[[int], None]]:
    """A :func:`build_progress` bar over ``total`` units; yields ``advance(done)``.

    Nothing is shown (``advance`` does nothing) when ``enabled`` is off, bars are disabled, or ``total``
    is 0. With ``rate``, the bar shows the speed in ``unit``/s.
    """
    if not enabled or progress_disabled() or total <= 0:
        yield lambda _done: None
        return
    with build_progress(label, unit=unit, rate=rate, transient=transient) as bar:
        task = bar.add_task(label, total=total, rate="")

        def advance(done: int) -> None:
            bar.advance(task, done)
            if rate:
                speed = bar.tasks[0].speed
                bar.update(task, rate=f"{speed:.1f} {unit}/s" if speed else "")

        yield advance
