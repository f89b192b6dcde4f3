"""Sequence lengths of records computed without the model or the image pixels.

A record's length is what :meth:`Phi3VProcessor.encode_conversation` will produce, counted by
:func:`phi3v_data.token_count.record_token_count` (the validator's count) with the run's tokenizer and
the image sizes the record carries. Used for ``--max-length`` (skip, never cut) and ``--group-by-length``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from phi3v_data.token_count import TextCounter, record_token_count
from phi3v_train.data.records import SourcedRecord


def tokenizer_counter(tokenizer: Any) -> TextCounter:
    """Text tokens without special tokens from a transformers tokenizer (its Rust backend when it is fast)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return lambda text: len(backend.encode(text, add_special_tokens=False).ids)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def record_length(item: SourcedRecord, tokenizer: Any, num_crops: int) -> int:
    """Tokens of the whole conversation (prompt, images and answers) as the trainer encodes it."""
    return record_token_count(item.record, item.image_sizes, num_crops, tokenizer_counter(tokenizer))


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
    records: Sequence[SourcedRecord], tokenizer: Any, num_crops: int, max_length: int | None
) -> LengthFilter:
    """Splits records into those that fit ``max_length`` (all when ``None``) and those that do not."""
    counter = tokenizer_counter(tokenizer)
    kept, lengths, skipped = [], [], []
    for item in records:
        length = record_token_count(item.record, item.image_sizes, num_crops, counter)
        if max_length is not None and length > max_length:
            skipped.append((item, length))
        else:
            kept.append(item)
            lengths.append(length)
    return LengthFilter(kept, lengths, skipped)
