"""Atomic writes: all or nothing, with the permissions a plain open() would give."""

from __future__ import annotations

import os
import stat

import pytest

from phi3v_data.io import atomic_write, atomic_write_text


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
