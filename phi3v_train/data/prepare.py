"""From the run's record files to datasets, in one pass over each file: validation (or the light
read without it) gives the records and their image sizes, the length filter counts their tokens."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from phi3v_data.paths import image_root_for
from phi3v_data.schema import Record
from phi3v_data.validate import CheckedRecord, ValidationReport, validate_files
from phi3v_train.data.dataset import ConversationDataset
from phi3v_train.data.lengths import LengthFilter, filter_by_length
from phi3v_train.data.records import SourcedRecord, read_records
from phi3v_train.errors import DataError
from phi3v_train.model.processing import Phi3VProcessor

logger = logging.getLogger("phi3v_train")
SHOWN_PROBLEMS = 10


@dataclass
class PreparedData:
    """The datasets, the train lengths and skipped records; ``eval_records`` holds every record of each
    eval file, in file order and before the length filter (the task metric scores them all)."""

    train: ConversationDataset
    train_lengths: list[int]
    eval: ConversationDataset | None
    skipped: list[tuple[SourcedRecord, int]]
    eval_records: list[list[Record]] = field(default_factory=list)


def validation_failure(report: ValidationReport) -> str:
    """The refusal message: counts, then the first problems with file:line."""
    lines = [f"the data has {report.errors} error(s) in {report.records} record(s); training refused:"]
    for problem in [p for p in report.problems if p.severity == "error"][:SHOWN_PROBLEMS]:
        record = f" id={problem.id}" if problem.id is not None else ""
        lines.append(f"  {problem.file}:{problem.line}{record} {problem.code}: {problem.message}")
    if report.errors > SHOWN_PROBLEMS:
        lines.append(f"  ... and {report.errors - SHOWN_PROBLEMS} more")
    lines.append(
        "Fix the records (`phi3v-data validate FILE --write-valid OUT` keeps the good ones), or pass --no-validate."
    )
    return "\n".join(lines)


def validate_or_raise(files: Sequence[Path], image_root: Path | None, num_crops: int) -> list[list[SourcedRecord]]:
    """Runs the same checks as `phi3v-data validate`; returns each file's records with the image sizes
    the checks read. Raises DataError with the report on errors."""
    per_file: list[list[SourcedRecord]] = [[] for _ in files]

    def keep(index: int, entry: CheckedRecord) -> None:
        if entry.record is None or entry.image_sizes is None:
            raise RuntimeError(f"{entry.file}:{entry.line}: a record without errors lacks its parse or image sizes")
        file = Path(files[index])
        sizes = tuple(entry.image_sizes)
        per_file[index].append(SourcedRecord(entry.record, file, entry.line, image_root_for(file, image_root), sizes))

    report = validate_files(list(files), image_root=image_root, num_crops=num_crops, on_valid=keep, progress=True)
    if not report.ok:
        raise DataError(validation_failure(report))
    if report.warnings:
        codes = ", ".join(sorted({p.code for p in report.problems if p.severity == "warning"}))
        logger.warning(
            "the data has %d validation warning(s) (%s); `phi3v-data validate` lists them", report.warnings, codes
        )
    return per_file


def _length_checked(
    records: list[SourcedRecord], processor: Phi3VProcessor, max_length: int | None, on_overflow: str
) -> LengthFilter:
    result = filter_by_length(records, processor.tokenizer, processor.num_crops, max_length)
    if result.skipped and max_length is not None:
        message = result.skipped_summary(max_length)
        if on_overflow == "error":
            raise DataError(
                f"{message}. Raise --max-length, lower --num-crops, or drop --on-overflow error to skip them"
            )
        logger.warning("skipped %s (records are never truncated)", message)
    return result


def prepare_data(
    train_files: Sequence[Path],
    eval_files: Sequence[Path],
    processor: Phi3VProcessor,
    *,
    image_root: Path | None = None,
    max_length: int | None = None,
    on_overflow: str = "skip",
    validate: bool = True,
) -> PreparedData:
    """Validates and reads (or, with ``validate`` off, only reads) the train and eval records in one pass
    per file, then length-filters them.

    Raises:
        DataError: validation errors, no record left, or an over-long record with ``on_overflow="error"``.
    """
    files = [*train_files, *eval_files]
    if validate:
        per_file = validate_or_raise(files, image_root, processor.num_crops)
    else:
        per_file = [read_records([file], image_root) for file in files]
    train_records = [item for records in per_file[: len(train_files)] for item in records]
    eval_per_file = per_file[len(train_files) :]
    eval_records = [item for records in eval_per_file for item in records]
    train = _length_checked(train_records, processor, max_length, on_overflow)
    if not train.kept:
        raise DataError("no training record left (every record is longer than --max-length)")
    eval_dataset = None
    if eval_files:
        evaluated = _length_checked(eval_records, processor, max_length, on_overflow)
        eval_dataset = ConversationDataset(evaluated.kept, processor)
    return PreparedData(
        train=ConversationDataset(train.kept, processor),
        train_lengths=train.lengths,
        eval=eval_dataset,
        skipped=train.skipped,
        eval_records=[[item.record for item in records] for records in eval_per_file],
    )
