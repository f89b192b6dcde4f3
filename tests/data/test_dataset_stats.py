"""compute_stats: percentiles, the num_crops suggestion and the label distribution on hand-counted data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from recordkit import record, write_lines
from rich.console import Console

from phi3v_data.cli.stats_cmd import print_stats
from phi3v_data.stats import compute_stats, nearest_rank


def test_nearest_rank() -> None:
    values = np.arange(1, 101)
    assert [nearest_rank(values, p) for p in (50, 90, 99, 100)] == [50, 90, 99, 100]
    assert [nearest_rank(np.array([7, 9, 30]), p) for p in (1, 50, 67, 99)] == [7, 9, 30, 30]


@pytest.fixture
def tall_and_square(dataset: Path) -> Path:
    # tall.png (200x1000): 469 tokens at num_crops=2, 781 at 4, 2557 at 16; c.jpg (336x336): 313 at 2.
    lines = [record(f"t{i}", ["tall.png"], assistant="tall") for i in range(3)]
    lines += [record(f"c{i}", ["c.jpg"], assistant="square") for i in range(7)]
    return write_lines(dataset / "d.jsonl", lines)


def test_suggestion_and_shares(tall_and_square: Path) -> None:
    text = 4 + 14 + 6  # estimate: '<|user|>\n' + BOS, the question chunk + BOS, 'tall<|end|>\n<|endoftext|>'
    stats, lengths = compute_stats(tall_and_square, num_crops=16, max_length=900, coverage=0.7)
    assert sorted(lengths.tolist()) == [2509 + text] * 7 + [2557 + text] * 3
    assert stats.tokens is not None
    assert (stats.tokens.p50, stats.tokens.p90, stats.tokens.max) == (2509 + text, 2557 + text, 2557 + text)
    assert stats.over_max_length == 1.0
    within = {summary.num_crops: summary.within for summary in stats.by_num_crops}
    # c.jpg: 2x2 grid (757) up to 8 crops, 3x3 (1489) at 9 and 12. tall.png: 4x1 (781) at 4, 5x1 (937) at 6
    # and 8. With the text, 900 holds both at 4, only c.jpg (7 of 10 records) at 6 and 8, neither at 9.
    assert [within[n] for n in (16, 12, 9, 8, 6, 4, 2, 1)] == [0.0, 0.0, 0.0, 0.7, 0.7, 1.0, 1.0, 1.0]
    assert stats.suggested_num_crops == 8
    most, _ = compute_stats(tall_and_square, num_crops=16, max_length=900, coverage=0.99)
    assert most.suggested_num_crops == 4
    assert stats.labels == {"square": 7, "tall": 3}
    strict, _ = compute_stats(tall_and_square, num_crops=16, max_length=300, coverage=0.7)
    assert strict.suggested_num_crops is None


def test_labels_hidden_when_answers_are_free_text(dataset: Path) -> None:
    path = write_lines(dataset / "d.jsonl", [record(str(i), assistant=f"answer {i}") for i in range(4)])
    stats, _ = compute_stats(path)
    assert stats.labels is None
    assert stats.images_per_record == {0: 4}


def test_text_output(tall_and_square: Path) -> None:
    stats, _ = compute_stats(tall_and_square, num_crops=16, max_length=900, coverage=0.7)
    console = Console(record=True, width=200)
    print_stats(stats, console)
    text = console.export_text()
    assert "Suggested num_crops: 8 (the largest that keeps 70% of the records within 900 tokens)." in text
    assert "Records per source" in text
    assert "Answers of the last turn (2 distinct)" in text
    assert [line.split() for line in text.splitlines() if "square" in line] == [
        ["│", "square", "│", "7", "│", "70.0%", "│"]
    ]


def test_nothing_measurable(dataset: Path) -> None:
    path = write_lines(dataset / "d.jsonl", ["{oops", record("a", ["nope.jpg"])])
    stats, lengths = compute_stats(path, max_length=100)
    assert (stats.records, stats.invalid_lines, stats.unmeasured) == (2, 1, 1)
    assert (stats.tokens, stats.by_num_crops, stats.suggested_num_crops, len(lengths)) == (None, [], None, 0)
    console = Console(record=True, width=200)
    print_stats(stats, console)
    assert "1 records have a bad image or bad tags" in console.export_text()


@pytest.fixture
def classification_sets(dataset: Path) -> Path:
    answers = [("hateful_memes", "yes")] * 2 + [("hateful_memes", "no")] * 2 + [("hateful_memes", " Yes ")]
    answers += [("Hateful-Memes", "no"), ("nlvr2", "True"), ("nlvr2", "True"), ("nlvr2", "maybe")]
    answers += [("docvqa", "42"), ("docvqa", "42"), ("test", "yes")]
    lines = [record(f"r{i}", source=source, assistant=answer) for i, (source, answer) in enumerate(answers)]
    return write_lines(dataset / "d.jsonl", lines)


def test_class_balance_per_classification_source(classification_sets: Path) -> None:
    stats, _ = compute_stats(classification_sets)
    assert stats.sources == {"Hateful-Memes": 1, "docvqa": 2, "hateful_memes": 5, "nlvr2": 3, "test": 1}
    # Aliases count under the canonical source; registered labels come first (zeros kept), then the others.
    assert [(b.source, b.records, b.counts) for b in stats.class_balance] == [
        ("hateful_memes", 6, {"no": 3, "yes": 2, "Yes": 1}),
        ("nlvr2", 3, {"False": 0, "True": 2, "maybe": 1}),
    ]
    assert stats.class_balance[0].shares == {"no": 0.5, "yes": 2 / 6, "Yes": 1 / 6}
    assert stats.model_dump()["class_balance"][1]["shares"] == {"False": 0.0, "True": 2 / 3, "maybe": 1 / 3}


def test_class_balance_text_output(classification_sets: Path) -> None:
    stats, _ = compute_stats(classification_sets)
    console = Console(record=True, width=200)
    print_stats(stats, console)
    text = console.export_text()
    assert "Class balance of hateful_memes (6 records)" in text
    assert "Class balance of nlvr2 (3 records)" in text
    rows = [line.split() for line in text.split("Class balance of nlvr2")[1].splitlines() if line.startswith("│")]
    assert rows == [
        ["│", "False", "│", "0", "│", "0.0%", "│"],
        ["│", "True", "│", "2", "│", "66.7%", "│"],
        ["│", "maybe", "│", "1", "│", "33.3%", "│"],
    ]


def test_no_class_balance_without_classification_sets(tall_and_square: Path) -> None:
    stats, _ = compute_stats(tall_and_square)
    assert stats.class_balance == []
