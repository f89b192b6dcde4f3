"""Opening the images of records, for training, evaluation and prediction; every failure is a DataError."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from phi3v_data.errors import UnsafePathError
from phi3v_data.paths import resolve_image_path
from phi3v_data.schema import Record
from phi3v_train.errors import DataError


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """The decoded image (file closed afterwards); a missing or corrupt file is a DataError."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) from the image header; the pixels are not decoded."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc


def load_images(record: Record, image_root: Path) -> list[Image.Image]:
    """The record's images in global tag order, decoded; an unsafe path or a bad file raises DataError."""
    images = []
    for relative in record.images:
        try:
            images.append(load_image(resolve_image_path(image_root, relative)))
        except UnsafePathError as exc:
            raise DataError(f"record {record.id!r}: {exc}") from exc
        except DataError as exc:
            raise DataError(f"record {record.id!r}: {exc}; pass --image-root if the images live elsewhere") from exc
    return images
