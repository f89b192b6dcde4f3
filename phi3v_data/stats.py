"""Dataset statistics for choosing ``num_crops`` and ``max_length`` before training.

Token lengths are whole conversations as the trainer builds them (:mod:`phi3v_data.token_count`),
computed for every value of :data:`NUM_CROPS_CHOICES` in one pass, from image headers only.
Memory grows by 4 bytes per record per ``num_crops`` value (the lengths are kept for percentiles).
Class balance is counted per source for the classification sets of :mod:`phi3v_data.datasets`.
"""

from __future__ import annotations

import io
from array import array
from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import BaseModel, computed_field

from phi3v_data.datasets import find_dataset
from phi3v_data.errors import MissingDependencyError
from phi3v_data.io import atomic_write_bytes
from phi3v_data.schema import Record
from phi3v_data.token_count import NUM_CROPS_CHOICES, image_token_count, text_counter, text_token_count
from phi3v_data.validate import checked_records

MAX_LABELS = 200
"""Answers are shown as a label distribution when they take at most this many distinct values."""


class ClassBalance(BaseModel):
    """The last-turn answers of one classification set: the registered labels first (zeros kept), then any
    other answer, most frequent first."""

    source: str
    records: int
    counts: dict[str, int]

    @computed_field
    @property
    def shares(self) -> dict[str, float]:
        return {label: count / self.records for label, count in self.counts.items()}


class AnswerTally:
    """Counts last-turn answers (stripped): over the whole file while they form a small set, and per source
    for the sources registered as classification sets (under their canonical name)."""

    def __init__(self) -> None:
        self.records = 0
        self._answers: Counter[str] = Counter()
        self._too_many = False
        self._by_source: dict[str, Counter[str]] = {}
        self._registered: dict[str, tuple[str, ...]] = {}

    def add(self, record: Record) -> None:
        self.records += 1
        answer = record.conversations[-1].assistant.strip()
        if not self._too_many:
            self._answers[answer] += 1
            self._too_many = len(self._answers) > MAX_LABELS
        info = find_dataset(record.source)
        if info is not None and info.labels is not None:
            if info.source not in self._by_source:
                self._by_source[info.source] = Counter()
                self._registered[info.source] = info.labels
            self._by_source[info.source][answer] += 1

    def labels(self) -> dict[str, int] | None:
        """The answer distribution, most frequent first; None when the answers look like free text
        (over MAX_LABELS distinct values, or more than half as many values as records)."""
        if self._too_many or not 0 < len(self._answers) <= self.records / 2:
            return None
        return dict(sorted(self._answers.items(), key=_by_count))

    def class_balance(self) -> list[ClassBalance]:
        """One entry per classification source, sorted by source."""
        result = []
        for source, counts in sorted(self._by_source.items()):
            registered = self._registered[source]
            others = sorted((item for item in counts.items() if item[0] not in registered), key=_by_count)
            ordered = {label: counts[label] for label in registered} | dict(others)
            result.append(ClassBalance(source=source, records=counts.total(), counts=ordered))
        return result


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


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
    class_balance: list[ClassBalance]


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
    answers = AnswerTally()
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
                answers.add(record)
                if entry.image_sizes is None or not entry.tags_ok:
                    unmeasured += 1
                    continue
                text = text_token_count(record, counter)
                for choice in choices:
                    lengths[choice].append(text + image_token_count(entry.image_sizes, choice))
    measured = {choice: np.frombuffer(values, dtype=np.int32) for choice, values in lengths.items()}
    by_num_crops = [summarise(measured[c], c, max_length) for c in choices] if len(measured[num_crops]) else []
    current = next((s for s in by_num_crops if s.num_crops == num_crops), None)
    suggested = None
    if max_length is not None:
        suggested = next(
            (s.num_crops for s in by_num_crops if s.num_crops in NUM_CROPS_CHOICES and (s.within or 0) >= coverage),
            None,
        )
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
        labels=answers.labels(),
        class_balance=answers.class_balance(),
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
