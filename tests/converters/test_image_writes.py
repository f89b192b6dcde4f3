"""Image files of the converters: written atomically through a temporary name the writer cleans up."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest

from phi3v_data import io as phi3v_io
from phi3v_data.converters.images import write_file


def test_write_file_makes_the_folder_and_leaves_only_the_file(tmp_path: Path) -> None:
    target = tmp_path / "train" / "Archery" / "v_Archery_g01_c01.0.jpg"
    write_file(target, b"first")
    write_file(target, b"second")

    assert target.read_bytes() == b"second"
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()] == [
        "train/Archery/v_Archery_g01_c01.0.jpg"
    ]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_write_keeps_the_earlier_file_and_no_temporary(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "x.jpg"
    write_file(target, b"earlier")
    renamed: list[str] = []

    def failing_replace(src: Path, dst: Path) -> None:
        renamed.append(Path(src).name)
        raise OSError("disk full")

    monkeypatch.setattr(phi3v_io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_file(target, b"later")

    assert target.read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["x.jpg"]
    # The name a killed run would leave behind is one that run_conversion removes at its start.
    assert len(renamed) == 1
    assert fnmatch.fnmatch(renamed[0], ".x.jpg.*.incomplete")
