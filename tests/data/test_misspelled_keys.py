"""A misspelled known key is an error with a "did you mean" hint: under its wrong name the field is silently empty."""

from __future__ import annotations

from pathlib import Path

import pytest
from recordkit import record, write_lines

from phi3v_data.validate import misspelled_key, validate_files


@pytest.mark.parametrize(
    ("key", "level", "known"),
    [
        ("image", "turn", "images"),
        ("Images", "turn", "images"),
        ("user_text", "turn", "user"),
        ("assitant", "turn", "assistant"),
        ("answer", "turn", "assistant"),
        ("conversation", "record", "conversations"),
        ("messages", "record", "conversations"),
        ("metdata", "record", "metadata"),
        ("split", "record", None),
        ("caption", "turn", None),
    ],
)
def test_misspelled_key(key: str, level: str, known: str | None) -> None:
    assert misspelled_key(key, level) == known


def test_misspelled_keys_are_errors_with_a_hint(dataset: Path) -> None:
    turn_typo = record("r1")
    turn_typo["conversations"][0]["image"] = ["a.jpg"]
    lines = [
        turn_typo,
        {"id": "r2", "source": "test", "conversation": [{"user": "Q?", "assistant": "A"}]},
        record("r3", split="train"),
    ]
    report = validate_files([write_lines(dataset / "data.jsonl", lines)])

    assert [(p.line, p.code, p.severity, p.message) for p in report.problems] == [
        (1, "misspelled_key", "error", "unknown key 'image' in conversations[0]: did you mean 'images'?"),
        (
            2,
            "schema",
            "error",
            "conversations: Field required; conversations: found 'conversation', did you mean 'conversations'?",
        ),
        (3, "unknown_key", "warning", "unknown key 'split' in the record"),
    ]
    assert report.valid == 1
