"""Helpers of the converter tests (a uniquely named module, importable from the test files)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from phi3v_data.validate import validate_files


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_valid(*paths: Path) -> None:
    report = validate_files(list(paths), strict=True)
    assert not report.problems, report.problems


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content: the journal excluded (it records completion order)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".convert_state")
    }


def zero_frame_count(path: Path) -> None:
    """Patches an AVI so the header declares 0 frames (avih dwTotalFrames and strh dwLength)."""
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, data.find(b"avih") + 8 + 16, 0)
    struct.pack_into("<I", data, data.find(b"strh") + 8 + 32, 0)
    path.write_bytes(bytes(data))


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def png(colour: tuple[int, int, int], size: tuple[int, int] = (32, 24)) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path
