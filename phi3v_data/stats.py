"""Dataset statistics for choosing ``num_crops`` and ``max_length`` before training.

Token lengths are whole conversations as the trainer builds them (:mod:`phi3v_data.token_count`),
computed for every value of :data:`NUM_CROPS_CHOICES` in one pass, from image headers only.
Memory grows by 4 bytes per record per ``num_crops`` value (the lengths are kept for percentiles).
"""

from __future__ import annotations

import io
from array import array
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from phi3v_data.errors import MissingDependencyError
from phi3v_data.image_tokens import num_image_tokens
from phi3v_data.io import atomic_write_bytes
from phi3v_data.token_count import NUM_CROPS_CHOICES, text_counter, text_token_count
from phi3v_data.validate import checked_records

MAX_LABELS = 200
"""Answers are shown as a label distribution when they take at most this many distinct values."""


class TokenSummary(BaseModel):
    """Token lengths at one ``num_crops``; ``within`` is the share of records at or under ``max_length``."""

    num_crops: int
    p50: int
    p90: int
    p99: int
    max: int
    within: float | None = None


class DatasetStats(BaseModel):
    """``unmeasured``: records whose length is unknown (a bad image or bad tags; see `validate`)."""

    file: str
    records: int
    invalid_lines: int
    unmeasured: int
    sources: dict[str, int]
    images_per_record: dict[int, int]
    num_crops: int
    max_length: int | None
    coverage: float
    text_tokens: str
    tokens: TokenSummary | None
    over_max_length: float | None
    suggested_num_crops: int | None
    by_num_crops: list[TokenSummary]
    labels: dict[str, int] | None


def nearest_rank(sorted_values: np.ndarray, percent: float) -> int:
    """The nearest-rank percentile: the smallest value with at least ``percent`` % of values at or below it."""
    rank = max(1, int(np.ceil(percent / 100 * len(sorted_values))))
    return int(sorted_values[rank - 1])


def summarise(lengths: np.ndarray, num_crops: int, max_length: int | None) -> TokenSummary:
    ordered = np.sort(lengths)
    within = None if max_length is None else float(np.count_nonzero(ordered <= max_length) / len(ordered))
    return TokenSummary(
        num_crops=num_crops,
        p50=nearest_rank(ordered, 50),
        p90=nearest_rank(ordered, 90),
        p99=nearest_rank(ordered, 99),
        max=int(ordered[-1]),
        within=within,
    )


@cache
def _image_tokens(width: int, height: int, num_crops: int) -> int:
    return num_image_tokens(width, height, num_crops)


def compute_stats(
    path: Path,
    *,
    image_root: Path | None = None,
    num_crops: int = 16,
    max_length: int | None = None,
    tokenizer: Path | None = None,
    coverage: float = 0.99,
    workers: int = 1,
    progress: bool = False,
) -> tuple[DatasetStats, np.ndarray]:
    """Statistics of one record file, and the token lengths at ``num_crops`` of its measured records.

    ``suggested_num_crops`` is the largest of :data:`NUM_CROPS_CHOICES` that keeps at least
    ``coverage`` of the measured records within ``max_length`` (None without ``max_length``, or when
    none does). Lines that do not parse are counted in ``invalid_lines`` and otherwise skipped.
    """
    choices = sorted({*NUM_CROPS_CHOICES, num_crops}, reverse=True)
    lengths = {choice: array("i") for choice in choices}
    sources: Counter[str] = Counter()
    images: Counter[int] = Counter()
    labels: Counter[str] = Counter()
    too_many_labels = False
    records = invalid = unmeasured = 0
    counter = text_counter(tokenizer)
    with checked_records([path], image_root=image_root, tokenizer=None, workers=workers, progress=progress) as files:
        for _path, entries in files:
            for entry in entries:
                records += 1
                record = entry.record
                if record is None:
                    invalid += 1
                    continue
                sources[record.source] += 1
                images[len(record.images)] += 1
                if not too_many_labels:
                    labels[record.conversations[-1].assistant.strip()] += 1
                    too_many_labels = len(labels) > MAX_LABELS
                if entry.image_sizes is None or not entry.tags_ok:
                    unmeasured += 1
                    continue
                text = text_token_count(record, counter)
                for choice in choices:
                    lengths[choice].append(text + sum(_image_tokens(w, h, choice) for w, h in entry.image_sizes))
    measured = {choice: np.frombuffer(values, dtype=np.int32) for choice, values in lengths.items()}
    by_num_crops = [summarise(measured[c], c, max_length) for c in choices] if len(measured[num_crops]) else []
    current = next((s for s in by_num_crops if s.num_crops == num_crops), None)
    suggested = None
    if max_length is not None:
        suggested = next(
            (s.num_crops for s in by_num_crops if s.num_crops in NUM_CROPS_CHOICES and (s.within or 0) >= coverage),
            None,
        )
    parsed = records - invalid
    show_labels = not too_many_labels and 0 < len(labels) <= parsed / 2
    stats = DatasetStats(
        file=str(path),
        records=records,
        invalid_lines=invalid,
        unmeasured=unmeasured,
        sources=dict(sorted(sources.items())),
        images_per_record=dict(sorted(images.items())),
        num_crops=num_crops,
        max_length=max_length,
        coverage=coverage,
        text_tokens="tokenizer" if tokenizer is not None else "estimate",
        tokens=current,
        over_max_length=None if current is None or current.within is None else 1 - current.within,
        suggested_num_crops=suggested,
        by_num_crops=by_num_crops,
        labels=dict(sorted(labels.items(), key=lambda item: (-item[1], item[0]))) if show_labels else None,
    )
    return stats, measured[num_crops]


def plot_histogram(lengths: np.ndarray, output: Path, *, num_crops: int, max_length: int | None) -> None:
    """Writes a PNG histogram of token lengths (needs matplotlib: ``pip install phi3v[plot]``)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError("--plot needs matplotlib: pip install 'phi3v[plot]'") from exc
    figure = Figure(figsize=(8, 4.5), dpi=100)
    axes = figure.add_subplot()
    axes.hist(lengths, bins=50, color="#4477aa")
    if max_length is not None:
        axes.axvline(max_length, color="#cc3311", linestyle="--", label=f"max_length {max_length}")
        axes.legend()
    axes.set_xlabel(f"tokens per record (num_crops={num_crops})")
    axes.set_ylabel("records")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    atomic_write_bytes(output, buffer.getvalue())
