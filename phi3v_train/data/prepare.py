"""From the run's record files to datasets: validation, reading, the length filter."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from phi3v_data.io import progress_disabled
from phi3v_data.validate import ValidationReport, validate_files
from phi3v_train.data.dataset import ConversationDataset
from phi3v_train.data.lengths import LengthFilter, filter_by_length
from phi3v_train.data.records import SourcedRecord, read_records
from phi3v_train.errors import DataError
from phi3v_train.model.processing import Phi3VProcessor

logger = logging.getLogger("phi3v_train")
SHOWN_PROBLEMS = 10


@dataclass
class PreparedData:
    train: ConversationDataset
    train_lengths: list[int]
    eval: ConversationDataset | None
    skipped: list[tuple[SourcedRecord, int]]


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


def validate_or_raise(files: Sequence[Path], image_root: Path | None, num_crops: int) -> ValidationReport:
    """Runs the same checks as `phi3v-data validate`; raises DataError with the report on errors."""
    report = validate_files(list(files), image_root=image_root, num_crops=num_crops, progress=not progress_disabled())
    if not report.ok:
        raise DataError(validation_failure(report))
    if report.warnings:
        codes = ", ".join(sorted({p.code for p in report.problems if p.severity == "warning"}))
        logger.warning(
            "the data has %d validation warning(s) (%s); `phi3v-data validate` lists them", report.warnings, codes
        )
    return report


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
    """Validates (unless ``validate`` is off), reads, and length-filters the train and eval records.

    Raises:
        DataError: validation errors, no record left, or an over-long record with ``on_overflow="error"``.
    """
    if validate:
        validate_or_raise([*train_files, *eval_files], image_root, processor.num_crops)
    train = _length_checked(read_records(list(train_files), image_root), processor, max_length, on_overflow)
    if not train.kept:
        raise DataError("no training record left (every record is longer than --max-length)")
    eval_dataset = None
    if eval_files:
        evaluated = _length_checked(read_records(list(eval_files), image_root), processor, max_length, on_overflow)
        eval_dataset = ConversationDataset(evaluated.kept, processor)
    return PreparedData(
        train=ConversationDataset(train.kept, processor),
        train_lengths=train.lengths,
        eval=eval_dataset,
        skipped=train.skipped,
    )
