"""File helpers: atomic writes (all or nothing, the permissions a plain open() would give), JSONL lines, progress."""

from __future__ import annotations

import codecs
import os
import stat

import pytest

from phi3v_data import io as io_module
from phi3v_data.errors import Phi3vDataError
from phi3v_data.io import (
    PROGRESS_ENV,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    iter_jsonl_lines,
    progress_bar,
)


def test_atomic_write_replaces_on_success_and_uses_the_umask(tmp_path) -> None:
    target = tmp_path / "out.jsonl"
    old = os.umask(0o022)
    try:
        atomic_write_text(target, "new\n")
    finally:
        os.umask(old)
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("partial")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


@pytest.mark.parametrize("fsync", [True, False])
def test_atomic_write_fsyncs_only_when_asked(tmp_path, monkeypatch, fsync: bool) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01", fsync=fsync)
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert len(synced) == (1 if fsync else 0)


def test_jsonl_lines_skip_blanks_drop_the_bom_and_count_bytes(tmp_path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + b'{"a": 1}\r\n\n   \n{"b": 2}')
    advanced: list[int] = []
    assert list(iter_jsonl_lines(path, advanced.append)) == [(1, b'{"a": 1}'), (4, b'{"b": 2}')]
    assert sum(advanced) == path.stat().st_size
    with pytest.raises(Phi3vDataError, match=r"cannot read .*missing\.jsonl"):
        list(iter_jsonl_lines(tmp_path / "missing.jsonl"))


def test_progress_bars_switch_off_with_one_variable(monkeypatch) -> None:
    built: list[str] = []
    monkeypatch.setattr(io_module, "build_progress", lambda label, **options: built.append(label))
    monkeypatch.setenv(PROGRESS_ENV, "1")
    with progress_bar(10, "validating") as advance:
        advance(5)
    with progress_bar(10, "validating", enabled=False) as advance:
        advance(5)
    monkeypatch.delenv(PROGRESS_ENV)
    with progress_bar(0, "validating") as advance:
        advance(5)
    assert built == []


def test_progress_bar_counts_and_shows_the_rate(monkeypatch) -> None:
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    bars = []
    real_build = io_module.build_progress
    monkeypatch.setattr(
        io_module, "build_progress", lambda label, **options: bars.append(real_build(label, **options)) or bars[-1]
    )
    with progress_bar(4, "convert", rate=True, transient=False) as advance:
        advance(1)
        advance(2)
    (task,) = bars[0].tasks
    assert (task.description, task.total, task.completed) == ("convert", 4, 3)
    assert task.fields["rate"] == "" or task.fields["rate"].endswith(" items/s")
