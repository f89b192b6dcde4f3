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
import difflib
import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from phi3v_data.converters.base import ItemSkipped, Plan, SingleFileConverter, Task
from phi3v_data.converters.images import cell_image_bytes, check_max_pixels, content_name, downscaled, store_image
from phi3v_data.converters.tables import iter_json_lines, parquet_columns, read_parquet_cell, read_parquet_rows
from phi3v_data.errors import SourceLayoutError

SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")
CSV_DELIMITERS = ",;\t|"
SNIFF_BYTES = 65536


def _did_you_mean(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


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
class CustomConverter(SingleFileConverter):
    src: Path
    user: str
    assistant: str
    image_columns: tuple[str, ...] = ()
    id_column: str | None = None
    source: str = "custom"
    split: str = "train"
    max_pixels: int | None = None
    fields: dict[str, list[str]] = field(default_factory=dict, init=False)

    name: ClassVar[str] = "custom"

    def __post_init__(self) -> None:
        self.src = Path(self.src)
        if self.src.suffix.lower() not in SUFFIXES:
            raise SourceLayoutError(f"{self.src}: expected a {', '.join(SUFFIXES)} file")
        self.check_output_names()
        self.fields = {"user": template_fields(self.user), "assistant": template_fields(self.assistant)}
        check_max_pixels(self.max_pixels)

    def options(self) -> dict[str, Any]:
        return {
            "src": str(self.src),
            "user": self.user,
            "assistant": self.assistant,
            "image_columns": list(self.image_columns),
            "id_column": self.id_column,
            "source": self.source,
            "split": self.split,
            "max_pixels": self.max_pixels,
        }

    def _text(self) -> str:
        """The file as text; UTF-8 with or without a BOM (Excel's "CSV UTF-8" writes one)."""
        data = self.src.read_bytes()
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise SourceLayoutError(
                f"{self.src} line {line} is not UTF-8 (byte 0x{data[exc.start]:02x}); re-save the file as UTF-8 "
                "(in Excel: Save As, CSV UTF-8)"
            ) from exc

    def _csv_rows(self) -> tuple[list[str], list[tuple[int, dict[str, Any] | None, str]]]:
        text = self._text()
        try:
            dialect: Any = csv.Sniffer().sniff(text[:SNIFF_BYTES], delimiters=CSV_DELIMITERS)
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(text.splitlines(keepends=True), dialect=dialect, restkey="", restval=None)
        rows: list[tuple[int, dict[str, Any] | None, str]] = []
        for n, row in enumerate(reader, 1):
            if "" in row or None in row.values():
                count = len(reader.fieldnames or []) + len(row.get("", []))
                count -= sum(value is None for value in row.values())
                rows.append((n, None, f"{count} fields, the header has {len(reader.fieldnames or [])}"))
            else:
                rows.append((n, dict(row), ""))
        return list(reader.fieldnames or []), rows

    def _json_rows(self) -> list[tuple[int, dict[str, Any] | None, str]]:
        text = self._text()
        if not text.lstrip().startswith("["):
            return list(iter_json_lines(self.src))
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceLayoutError(f"{self.src} line {exc.lineno}: invalid JSON array ({exc.msg})") from exc
        return [
            (n, item, "") if isinstance(item, dict) else (n, None, "not a JSON object")
            for n, item in enumerate(items, 1)
        ]

    def _rows(self) -> tuple[list[str], list[tuple[int, dict[str, Any] | None, str]]]:
        """(columns, rows): the file's columns (the union of the rows' keys for JSON) and its rows."""
        if not self.src.is_file():
            raise SourceLayoutError(f"{self.src} not found")
        suffix = self.src.suffix.lower()
        if suffix == ".csv":
            return self._csv_rows()
        if suffix == ".parquet":
            names = parquet_columns(self.src)
            columns = [c for c in names if c not in self.image_columns]
            return names, [(n, row, "") for n, row in enumerate(read_parquet_rows(self.src, columns), 1)]
        rows = self._json_rows()
        return sorted({key for _, row, _ in rows if row for key in row}), rows

    def _check_columns(self, columns: list[str]) -> None:
        """A template field, image or id column that no row has is a typo: refused before anything is written."""
        wanted = [(f"--{which} template field", name) for which, names in self.fields.items() for name in names]
        wanted += [("--image-column", name) for name in self.image_columns]
        wanted += [("--id-column", self.id_column)] if self.id_column else []
        for option, name in wanted:
            if name not in columns:
                raise SourceLayoutError(
                    f"{option} {name!r} is not a column of {self.src} (columns: {', '.join(columns) or 'none'})"
                    + _did_you_mean(name, columns)
                )

    def plan(self) -> Plan:
        columns, rows = self._rows()
        if rows:
            self._check_columns(columns)
        tasks = [Task(f"{self.src.name} row {n}", self.split, (n, row, error)) for n, row, error in rows]
        return Plan(tasks=tasks)

    def _format(self, which: str, row: dict[str, Any], number: int) -> str:
        template = self.user if which == "user" else self.assistant
        missing = [name for name in self.fields[which] if name not in row]
        if missing:
            raise ItemSkipped(
                f"row {number}: --{which} template field {missing[0]!r} is not a column of this row "
                f"(columns: {', '.join(sorted(row))})"
            )
        empty = [name for name in self.fields[which] if row[name] is None]
        if empty:
            raise ItemSkipped(f"row {number}: column {empty[0]!r} of the --{which} template is null", kind="null value")
        try:
            return template.format(**row)
        except (KeyError, IndexError, AttributeError, ValueError, TypeError) as exc:
            raise ItemSkipped(f"row {number}: cannot fill the --{which} template: {exc!r}") from exc

    def _images(self, number: int, row: dict[str, Any], images_dir: Path, notes: dict[str, dict]) -> list[str]:
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
                stem = f"{self.split}/{content_name(data)}"
                paths.append(store_image(images_dir, stem, data, f"{self.src} {what}", self.max_pixels, notes))
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
        notes: dict[str, dict] = {}
        record["conversations"] = [
            {"images": self._images(number, row, images_dir, notes), "user": user, "assistant": assistant}
        ]
        record["metadata"] = {"file": self.src.name, "row": number} | downscaled(notes)
        return [record]
