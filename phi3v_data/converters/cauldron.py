"""The_cauldron layout shared by several converters: parquet rows of ``images`` (list of {bytes, path})
and ``texts`` (list of {user, assistant, source}), one record per text."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from phi3v_data.converters.base import Converter, ItemSkipped, Plan, Task, missing_source
from phi3v_data.converters.images import cell_image_bytes, check_max_pixels, content_name, downscaled, store_image
from phi3v_data.converters.tables import (
    check_shards_complete,
    parquet_columns,
    parquet_files,
    parquet_split,
    read_parquet_cell,
    read_parquet_rows,
)

CAULDRON_COLUMNS = {"images", "texts"}


def is_cauldron(files: list[Path]) -> bool:
    return bool(files) and all(set(parquet_columns(f)) >= CAULDRON_COLUMNS for f in files)


def cauldron_tasks(files: list[Path]) -> list[Task]:
    """One task per row; the texts travel in the payload, the images are read when the task runs.

    Rows are numbered across the split's shards (in shard order), so ids do not depend on how the table
    was sharded. Payload: (file, row in the file, row in the split, texts).
    """
    check_shards_complete(files)
    tasks = []
    rows_before: dict[str, int] = {}
    for file in files:
        split = parquet_split(file)
        first = rows_before.get(split, 0)
        rows = read_parquet_rows(file, ["texts"])
        for row, values in enumerate(rows):
            payload = (str(file), row, first + row, values["texts"] or [])
            tasks.append(Task(key=f"{file.name}:{row}", split=split, payload=payload))
        rows_before[split] = first + len(rows)
    return tasks


def write_images(
    file: Path,
    row: int,
    split: str,
    images_dir: Path,
    expected: int | None = None,
    max_pixels: int | None = None,
    notes: dict[str, dict] | None = None,
) -> list[str]:
    """Writes the row's images named by content hash (identical images are stored once); returns their paths."""
    cells = read_parquet_cell(file, row, "images") or []
    if expected is not None and len(cells) != expected:
        raise ItemSkipped(f"expected {expected} images, the row has {len(cells)}")
    if not cells:
        raise ItemSkipped("the row has no image")
    paths = []
    for i, cell in enumerate(cells):
        what = f"{file} row {row} image {i}"
        data = cell_image_bytes(cell, file.parent, what)
        paths.append(store_image(images_dir, f"{split}/{content_name(data)}", data, what, max_pixels, notes or {}))
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


@dataclass
class FolderOrCauldronConverter(Converter):
    """A converter whose SRC is either the dataset's official folder or the_cauldron's parquet config of it.

    the_cauldron rows become one record per text, each answer normalised by ``normalize_answer`` (``None``
    skips the row), with ``cauldron_images`` images per row and ``metadata.label`` from ``answer_label``.
    Official items are ``("error", message)`` or ``(kind, item)`` payloads, handled by ``official_records``.
    """

    src: Path
    max_pixels: int | None = None

    cauldron_images: ClassVar[int]

    def __post_init__(self) -> None:
        self.src = Path(self.src)
        check_max_pixels(self.max_pixels)

    def options(self) -> dict[str, Any]:
        return {"src": str(self.src), "max_pixels": self.max_pixels}

    def plan(self) -> Plan:
        if not self.src.exists():
            raise missing_source(self.src)
        files = parquet_files(self.src)
        if files and is_cauldron(files):
            return Plan(tasks=[Task(t.key, t.split, ("cauldron", *t.payload)) for t in cauldron_tasks(files)])
        return self.official_plan()

    def process(self, task: Task, images_dir: Path) -> list[dict[str, Any]]:
        kind = task.payload[0]
        if kind == "error":
            raise ItemSkipped(task.payload[1])
        if kind == "cauldron":
            return self._cauldron_records(task, images_dir)
        return self.official_records(task, images_dir)

    @abstractmethod
    def official_plan(self) -> Plan:
        """The tasks of the official folder layout."""

    @abstractmethod
    def official_records(self, task: Task, images_dir: Path) -> list[dict[str, Any]]:
        """The records of one official item."""

    @staticmethod
    @abstractmethod
    def normalize_answer(answer: Any) -> str | None:
        """The answer in this converter's label set, or ``None`` when it is not one of them."""

    @staticmethod
    @abstractmethod
    def answer_label(answer: str) -> Any:
        """``metadata.label`` of a normalised answer."""

    def _cauldron_records(self, task: Task, images_dir: Path) -> list[dict[str, Any]]:
        _, file, row, split_row, texts = task.payload
        turns = [(t, user, self._normalized(answer)) for t, (user, answer) in enumerate(text_turns(texts))]
        notes: dict[str, dict] = {}
        images = write_images(Path(file), row, task.split, images_dir, self.cauldron_images, self.max_pixels, notes)
        return [
            {
                "id": f"{task.split}-{split_row:08d}-{t}",
                "conversations": [{"images": images, "user": user, "assistant": answer}],
                "metadata": {"source_row": split_row, "label": self.answer_label(answer)} | downscaled(notes),
            }
            for t, user, answer in turns
        ]

    def _normalized(self, answer: Any) -> str:
        normalized = self.normalize_answer(answer)
        if normalized is None:
            raise ItemSkipped(f"answer {answer!r} is not one of this dataset's labels")
        return normalized
