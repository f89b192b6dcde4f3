"""Custom tables: a CSV, JSONL or parquet file, one record per row, texts from format templates.

``--user "Question: {question}"`` and ``--assistant "{answer}"`` are ``str.format`` templates over the row's
columns; ``--image-column`` (repeatable) names columns holding image paths (relative to the file's
folder, or a list of them) or image bytes. Images are stored under ``OUT/images/<split>/`` by content hash.
Output record::

    {"id": "q1", "source": "shapes", "conversations": [{"images": ["train/3f2a….png"], "user": "Question: what
     shape?", "assistant": "circle"}], "metadata": {"file": "table.csv", "row": 1}}
"""

from __future__ import annotations

import csv
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from phi3v_data.converters.base import Converter, ItemSkipped, Plan, Task
from phi3v_data.converters.images import cell_image_bytes, content_name, image_extension, write_once
from phi3v_data.converters.tables import iter_json_lines, parquet_columns, read_parquet_cell, read_parquet_rows
from phi3v_data.errors import SourceLayoutError

SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


def template_fields(template: str) -> list[str]:
    """The field names of a format template; positional fields are refused."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from exc
    for name in names:
        if name == "" or name.isdigit():
            raise ValueError(f"template {template!r} uses a positional field; name a column, e.g. {{question}}")
    return [re.split(r"[.\[]", name, maxsplit=1)[0] for name in names]


@dataclass
class CustomConverter(Converter):
    src: Path
    user: str
    assistant: str
    image_columns: tuple[str, ...] = ()
    id_column: str | None = None
    source: str = "custom"
    split: str = "train"
    fields: dict[str, list[str]] = field(default_factory=dict, init=False)

    name: ClassVar[str] = "custom"

    def __post_init__(self) -> None:
        self.src = Path(self.src)
        if self.src.suffix.lower() not in SUFFIXES:
            raise SourceLayoutError(f"{self.src}: expected a {', '.join(SUFFIXES)} file")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.source) or not re.fullmatch(r"[A-Za-z0-9_.-]+", self.split):
            raise ValueError("--source and --split may only use letters, digits, '_', '-' and '.'")
        self.fields = {"user": template_fields(self.user), "assistant": template_fields(self.assistant)}

    @property
    def file_stem(self) -> str:
        return self.source.replace("-", "_")

    @property
    def splits(self) -> tuple[str, ...]:
        return (self.split,)

    def options(self) -> dict[str, Any]:
        return {
            "src": str(self.src),
            "user": self.user,
            "assistant": self.assistant,
            "image_columns": list(self.image_columns),
            "id_column": self.id_column,
            "source": self.source,
            "split": self.split,
        }

    def _rows(self) -> list[tuple[int, dict[str, Any] | None, str]]:
        if not self.src.is_file():
            raise SourceLayoutError(f"{self.src} not found")
        suffix = self.src.suffix.lower()
        if suffix == ".csv":
            with self.src.open(encoding="utf-8", newline="") as handle:
                return [(n, dict(row), "") for n, row in enumerate(csv.DictReader(handle), 1)]
        if suffix == ".parquet":
            columns = [c for c in parquet_columns(self.src) if c not in self.image_columns]
            return [(n, row, "") for n, row in enumerate(read_parquet_rows(self.src, columns), 1)]
        return list(iter_json_lines(self.src))

    def plan(self) -> Plan:
        tasks = [Task(f"{self.src.name} row {n}", self.split, (n, row, error)) for n, row, error in self._rows()]
        return Plan(tasks=tasks)

    def _format(self, which: str, row: dict[str, Any], number: int) -> str:
        template = self.user if which == "user" else self.assistant
        missing = [name for name in self.fields[which] if name not in row]
        if missing:
            raise ItemSkipped(
                f"row {number}: --{which} template field {missing[0]!r} is not a column of this row "
                f"(columns: {', '.join(sorted(row))})"
            )
        try:
            return template.format(**row)
        except (KeyError, IndexError, AttributeError, ValueError, TypeError) as exc:
            raise ItemSkipped(f"row {number}: cannot fill the --{which} template: {exc!r}") from exc

    def _images(self, number: int, row: dict[str, Any], images_dir: Path) -> list[str]:
        paths = []
        for column in self.image_columns:
            if self.src.suffix.lower() == ".parquet":
                value = read_parquet_cell(self.src, number - 1, column)
            elif column in row:
                value = row[column]
            else:
                raise ItemSkipped(f"row {number}: no image column {column!r}")
            for i, cell in enumerate(value if isinstance(value, list) else [value]):
                what = f"row {number} column {column!r}" + (f" item {i}" if isinstance(value, list) else "")
                data = cell_image_bytes(cell, self.src.parent, what)
                rel = f"{self.split}/{content_name(data)}.{image_extension(data, what)}"
                write_once(images_dir / rel, data)
                paths.append(rel)
        return paths

    def process(self, task: Task, images_dir: Path) -> list[dict[str, Any]]:
        number, row, error = task.payload
        if row is None:
            raise ItemSkipped(f"row {number}: {error}")
        user, assistant = self._format("user", row, number), self._format("assistant", row, number)
        if not user.strip() or not assistant.strip():
            raise ItemSkipped(f"row {number}: the {'user' if not user.strip() else 'assistant'} text is empty")
        record: dict[str, Any] = {"source": self.source}
        if self.id_column:
            if row.get(self.id_column) in (None, ""):
                raise ItemSkipped(f"row {number}: no value in the id column {self.id_column!r}")
            record["id"] = str(row[self.id_column])
        record["conversations"] = [
            {"images": self._images(number, row, images_dir), "user": user, "assistant": assistant}
        ]
        record["metadata"] = {"file": self.src.name, "row": number}
        return [record]
