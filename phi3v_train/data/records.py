"""Record files for training and evaluation: each record with the file, line, image root and image sizes.

With validation, the records and their image sizes come from the validator's single pass
(:func:`phi3v_train.data.prepare.validate_or_raise`). Without it, :func:`read_records` is the one
light pass: it parses each line and reads each image's header, nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from phi3v_data.errors import UnsafePathError
from phi3v_data.io import iter_jsonl_lines
from phi3v_data.paths import image_root_for, resolve_image_path
from phi3v_data.schema import Record
from phi3v_data.validate import line_problem
from phi3v_train.data.image_loading import image_size
from phi3v_train.errors import DataError


@dataclass(frozen=True)
class SourcedRecord:
    """A record plus where it came from; image paths resolve against ``image_root``.

    ``image_sizes`` holds (width, height) of every image, in global tag order.
    """

    record: Record
    file: Path
    line: int
    image_root: Path
    image_sizes: tuple[tuple[int, int], ...]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line} (id {self.record.id!r})"

    def image_paths(self) -> list[Path]:
        """The image files, checked to stay under the root (no absolute paths, no `..`)."""
        return [resolve_image_path(self.image_root, relative) for relative in self.record.images]


def iter_records(file: Path) -> Iterator[tuple[int, Record]]:
    """(line number, record) for every non-blank line of ``file``, without the validator's other checks.

    Raises:
        DataError: a line that is not a valid record (run the validator for the full report).
    """
    for number, raw in iter_jsonl_lines(Path(file)):
        try:
            record = Record.model_validate_json(raw)
        except ValidationError as exc:
            raise DataError(f"{file}:{number}: not a valid record: {line_problem(raw, exc)[1]}") from exc
        yield number, record


def read_records(files: Sequence[Path], image_root: Path | None = None) -> list[SourcedRecord]:
    """Every record of ``files`` in file then line order, with its image sizes read from the headers.

    Raises:
        DataError: a line that is not a valid record, an unsafe image path, or an unreadable image.
    """
    records = []
    for file in files:
        root = image_root_for(file, image_root)
        for number, record in iter_records(file):
            try:
                sizes = tuple(image_size(resolve_image_path(root, relative)) for relative in record.images)
            except (UnsafePathError, DataError) as exc:
                raise DataError(f"{file}:{number} (id {record.id!r}): {exc}") from exc
            records.append(SourcedRecord(record, Path(file), number, root, sizes))
    return records


def load_records(path: Path) -> list[Record]:
    """Every record of a JSONL file (images are not opened); a bad line raises DataError naming the file and line."""
    records = [record for _, record in iter_records(Path(path))]
    if not records:
        raise DataError(f"{path} holds no records")
    return records
