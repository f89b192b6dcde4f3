"""Image output of the converters: checked source bytes copied once, frames encoded as fixed-quality JPEG.

An image that ``phi3v-data validate`` would reject (over its pixel limit, too elongated) is never written:
it is skipped with the reason, or, over ``max_pixels``, downscaled and noted in the record's metadata.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from phi3v_data.converters.base import ItemSkipped
from phi3v_data.image_check import pixel_limit
from phi3v_data.image_tokens import MAX_ASPECT_RATIO
from phi3v_data.io import atomic_write_bytes

_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "BMP": "bmp", "WEBP": "webp", "TIFF": "tif"}
# Pillow names the in-memory buffer in some messages (`<_io.BytesIO object at 0x7f…>`): not the file, and
# different on every run.
_OBJECT_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")


def check_max_pixels(max_pixels: int | None) -> None:
    """``--max-pixels`` must be positive and within the validator's limit (the images must pass it)."""
    limit = pixel_limit()
    if max_pixels is not None and (max_pixels < 1 or (limit is not None and max_pixels > limit)):
        raise ValueError(f"--max-pixels must be between 1 and {limit:,} (the validator's limit)")


def _downscaled(image: Image.Image, fmt: str, max_pixels: int) -> tuple[bytes, str, tuple[int, int]]:
    width, height = image.size
    scale = math.sqrt(max_pixels / (width * height))
    size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
    buffer = io.BytesIO()
    small = image.resize(size, Image.Resampling.LANCZOS)
    if fmt == "JPEG":
        small.convert("RGB").save(buffer, format="JPEG", quality=95)
    else:
        fmt = "PNG"
        small.save(buffer, format="PNG")
    return buffer.getvalue(), _EXTENSIONS[fmt], size


def checked_image(data: bytes, what: str, max_pixels: int | None = None) -> tuple[bytes, str, dict | None]:
    """(bytes, file extension, downscale note) of encoded image bytes, after checking they decode fully and
    that the validator accepts their size; else ItemSkipped. An image over ``max_pixels`` is downscaled."""
    limit = pixel_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = image.format, image.size
                if fmt not in _EXTENSIONS:
                    raise ItemSkipped(f"unsupported image format {fmt} in {what}")
                if width <= 0 or height <= 0 or max(width, height) > MAX_ASPECT_RATIO * min(width, height):
                    raise ItemSkipped(
                        f"image {what} is {width}x{height}: too elongated for the validator "
                        f"(aspect ratio over {MAX_ASPECT_RATIO}:1)",
                        kind="image too elongated",
                    )
                over = max_pixels if max_pixels is not None else limit
                if over is not None and width * height > over:
                    if max_pixels is None:
                        raise ItemSkipped(
                            f"image {what} is {width}x{height} = {width * height:,} pixels, over the validator's "
                            f"limit of {over:,}; pass --max-pixels to downscale it",
                            kind="image over the pixel limit",
                        )
                    image.load()
                    data, ext, size = _downscaled(image, fmt, max_pixels)
                    return data, ext, {"from": [width, height], "to": list(size)}
                image.load()
    except Image.DecompressionBombError as exc:
        raise ItemSkipped(f"image {what} is a decompression bomb: {exc}", kind="image over the pixel limit") from exc
    except UnidentifiedImageError as exc:
        raise ItemSkipped(f"unreadable image {what}: not an image Pillow can read", kind="unreadable image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        reason = _OBJECT_REPR.sub("", str(exc)) or type(exc).__name__
        raise ItemSkipped(f"unreadable image {what}: {reason}", kind="unreadable image") from exc
    return data, _EXTENSIONS[fmt], None


def image_extension(data: bytes, what: str) -> str:
    """The file extension of encoded image bytes that :func:`checked_image` accepts unchanged; else ItemSkipped."""
    return checked_image(data, what)[1]


def downscaled(notes: dict[str, dict]) -> dict[str, Any]:
    """The metadata entry of a record's downscaled images: nothing when none was."""
    return {"downscaled": notes} if notes else {}


def store_image(
    images_dir: Path, stem: str, data: bytes, what: str, max_pixels: int | None, notes: dict[str, dict]
) -> str:
    """Checks ``data`` and writes it once as ``<stem>.<ext>`` under ``images_dir``; returns that relative path.
    A downscale is recorded in ``notes`` (the record's ``metadata.downscaled``) under the path."""
    data, ext, note = checked_image(data, what, max_pixels)
    rel = f"{stem}.{ext}"
    write_once(images_dir / rel, data)
    if note is not None:
        notes[rel] = note
    return rel


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
    """Writes ``path`` atomically, so it exists only when complete (a killed run's temporary files are removed
    at the start of the next run).

    Without fsync: images are many and small, an fsync costs more than decoding and encoding a frame,
    and a re-run after a crash redoes every item the journal lacks.
    """
    atomic_write_bytes(path, data, fsync=False)


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
