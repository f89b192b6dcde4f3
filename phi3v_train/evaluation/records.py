"""Reading record files and their images for evaluation and prediction."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from phi3v_data.errors import UnsafePathError
from phi3v_data.schema import Record
from phi3v_data.validate import resolve_image_path
from phi3v_train.data.records import read_records
from phi3v_train.errors import DataError


def load_records(path: Path) -> list[Record]:
    """Every record of a JSONL file; a bad line raises :class:`DataError` naming the file and line."""
    records = [item.record for item in read_records([Path(path)])]
    if not records:
        raise DataError(f"{path} holds no records")
    return records


def load_images(record: Record, image_root: Path) -> list[Image.Image]:
    """The record's images in global tag order, decoded; a missing or broken file raises :class:`DataError`."""
    images = []
    for relative in record.images:
        try:
            path = resolve_image_path(image_root, relative)
        except UnsafePathError as exc:
            raise DataError(f"record {record.id!r}: {exc}") from exc
        try:
            with Image.open(path) as image:
                image.load()
                images.append(image)
        except (OSError, Image.DecompressionBombError) as exc:
            raise DataError(
                f"record {record.id!r}: cannot read image {path}: {exc}; pass --image-root if the images live elsewhere"
            ) from exc
    return images
