"""Reading record files for training: each record with the file, line and image root it came from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from phi3v_data.schema import Record
from phi3v_data.validate import default_image_root, resolve_image_path
from phi3v_train.errors import DataError


@dataclass(frozen=True)
class SourcedRecord:
    """A record plus where it came from; image paths resolve against ``image_root``."""

    record: Record
    file: Path
    line: int
    image_root: Path

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line} (id {self.record.id!r})"

    def image_paths(self) -> list[Path]:
        """The image files, checked to stay under the root (no absolute paths, no `..`)."""
        return [resolve_image_path(self.image_root, relative) for relative in self.record.images]


def image_root_for(jsonl: Path, image_root: Path | None) -> Path:
    """The explicit root, else the `images` folder beside the JSONL file (as `phi3v-data validate`)."""
    return Path(image_root) if image_root is not None else default_image_root(Path(jsonl))


def read_records(files: list[Path], image_root: Path | None = None) -> list[SourcedRecord]:
    """Every record of ``files`` in file then line order; blank lines are skipped.

    Raises:
        DataError: a line that is not a valid record (run the validator for the full report).
    """
    records = []
    for file in files:
        root = image_root_for(file, image_root)
        with open(file, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = Record.model_validate(json.loads(line))
                except (json.JSONDecodeError, ValidationError) as exc:
                    raise DataError(f"{file}:{number}: not a valid record: {exc}") from exc
                records.append(SourcedRecord(record, Path(file), number, root))
    return records
