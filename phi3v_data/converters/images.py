"""Image output of the converters: checked source bytes copied once, frames encoded as fixed-quality JPEG."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from phi3v_data.converters.base import ItemSkipped

_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "BMP": "bmp", "WEBP": "webp", "TIFF": "tif"}


def image_extension(data: bytes, what: str) -> str:
    """The file extension of encoded image bytes, after checking they decode fully; else ItemSkipped."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ItemSkipped(f"unreadable image {what}: {exc}") from exc
    if fmt not in _EXTENSIONS:
        raise ItemSkipped(f"unsupported image format {fmt} in {what}")
    return _EXTENSIONS[fmt]


def read_image_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ItemSkipped(f"missing image {path}") from exc
    except OSError as exc:
        raise ItemSkipped(f"cannot read image {path}: {exc}") from exc


def content_name(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:20]


def write_file(path: Path, data: bytes) -> None:
    """Writes a temporary file beside ``path`` and renames it into place, so ``path`` exists only when complete.

    Unlike ``phi3v_data.io.atomic_write`` there is no fsync: images are many and small, an fsync costs more
    than decoding and encoding a frame, and a re-run after a crash redoes every item the journal lacks.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".incomplete")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_once(path: Path, data: bytes) -> None:
    """Writes ``data`` unless ``path`` exists: files are only ever renamed into place, so existing means complete."""
    if not path.is_file():
        write_file(path, data)


def jpeg_bytes(frame: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG at a fixed quality, without EXIF or timestamps, so the bytes depend on the pixels only."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def cell_image_bytes(cell: Any, base_dir: Path, what: str) -> bytes:
    """Image bytes from a table cell: a ``{"bytes", "path"}`` struct (parquet), raw bytes, or a path."""
    if isinstance(cell, dict):
        if cell.get("bytes"):
            return bytes(cell["bytes"])
        cell = cell.get("path")
    if isinstance(cell, bytes | bytearray):
        return bytes(cell)
    if isinstance(cell, str) and cell.strip():
        return read_image_file(base_dir / cell)
    raise ItemSkipped(f"no image in {what}")
