"""Sequence lengths of records computed without the model or the image pixels.

A record's length is what :meth:`Phi3VProcessor.encode_conversation` will produce: every text chunk
tokenized with BOS, every answer without, every image its HD token count at ``num_crops`` (from the
image header's size alone). Used for ``--max-length`` (skip, never cut) and ``--group-by-length``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from phi3v_data.image_tokens import num_image_tokens
from phi3v_data.prompt import AnswerSegment, TextSegment, conversation_segments
from phi3v_train.data.records import SourcedRecord
from phi3v_train.errors import DataError


def image_size(path) -> tuple[int, int]:
    """(width, height) from the image header; the pixels are not decoded."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc


def record_length(item: SourcedRecord, tokenizer, num_crops: int) -> int:
    """Tokens of the whole conversation (prompt, images and answers) as the trainer encodes it."""
    segments = conversation_segments(item.record.conversations)
    texts = [segment.text for segment in segments if isinstance(segment, TextSegment)]
    answers = [segment.text for segment in segments if isinstance(segment, AnswerSegment)]
    total = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"])
    total += sum(len(ids) for ids in tokenizer(answers, add_special_tokens=False)["input_ids"])
    for path in item.image_paths():
        width, height = image_size(path)
        total += num_image_tokens(width, height, num_crops)
    return total


@dataclass(frozen=True)
class LengthFilter:
    """The records kept under ``max_length`` with their lengths, and the ones skipped."""

    kept: list[SourcedRecord]
    lengths: list[int]
    skipped: list[tuple[SourcedRecord, int]]

    def skipped_summary(self, max_length: int, shown: int = 10) -> str:
        names = ", ".join(f"{item.where} = {length} tokens" for item, length in self.skipped[:shown])
        more = f" and {len(self.skipped) - shown} more" if len(self.skipped) > shown else ""
        return f"{len(self.skipped)} record(s) longer than --max-length {max_length}: {names}{more}"


def filter_by_length(
    records: Sequence[SourcedRecord], tokenizer, num_crops: int, max_length: int | None
) -> LengthFilter:
    """Splits records into those that fit ``max_length`` (all when ``None``) and those that do not."""
    kept, lengths, skipped = [], [], []
    for item in records:
        length = record_length(item, tokenizer, num_crops)
        if max_length is not None and length > max_length:
            skipped.append((item, length))
        else:
            kept.append(item)
            lengths.append(length)
    return LengthFilter(kept, lengths, skipped)
