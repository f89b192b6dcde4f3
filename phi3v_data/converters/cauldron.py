"""The_cauldron layout shared by several converters: parquet rows of ``images`` (list of {bytes, path})
and ``texts`` (list of {user, assistant, source}), one record per text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phi3v_data.converters.base import ItemSkipped, Task
from phi3v_data.converters.images import cell_image_bytes, content_name, image_extension, write_once
from phi3v_data.converters.tables import parquet_columns, parquet_split, read_parquet_cell, read_parquet_rows

CAULDRON_COLUMNS = {"images", "texts"}


def is_cauldron(files: list[Path]) -> bool:
    return bool(files) and all(set(parquet_columns(f)) >= CAULDRON_COLUMNS for f in files)


def cauldron_tasks(files: list[Path]) -> list[Task]:
    """One task per row; the texts travel in the payload, the images are read when the task runs."""
    tasks = []
    for file in files:
        split = parquet_split(file)
        for row, values in enumerate(read_parquet_rows(file, ["texts"])):
            tasks.append(Task(key=f"{file.name}:{row}", split=split, payload=(str(file), row, values["texts"] or [])))
    return tasks


def write_images(file: Path, row: int, split: str, images_dir: Path, expected: int | None = None) -> list[str]:
    """Writes the row's images named by content hash (identical images are stored once); returns their paths."""
    cells = read_parquet_cell(file, row, "images") or []
    if expected is not None and len(cells) != expected:
        raise ItemSkipped(f"expected {expected} images, the row has {len(cells)}")
    if not cells:
        raise ItemSkipped("the row has no image")
    paths = []
    for i, cell in enumerate(cells):
        data = cell_image_bytes(cell, file.parent, f"{file.name} row {row} image {i}")
        rel = f"{split}/{content_name(data)}.{image_extension(data, f'{file.name} row {row} image {i}')}"
        write_once(images_dir / rel, data)
        paths.append(rel)
    return paths


def text_turns(texts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (user, assistant) pairs of a row; a pair with an empty side is dropped."""
    turns = []
    for text in texts:
        user, assistant = (text or {}).get("user") or "", (text or {}).get("assistant") or ""
        if user.strip() and assistant.strip():
            turns.append((user, assistant))
    if not turns:
        raise ItemSkipped("the row has no question with an answer")
    return turns
