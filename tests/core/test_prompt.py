"""The conversation -> segments definition shared by validation, training and generation."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from phi3v_data.prompt import (
    AnswerSegment,
    ImageSegment,
    TextSegment,
    conversation_segments,
    image_tag_problem,
    prompt_segments,
    split_on_tags,
    tagged_user_text,
)


@dataclass
class T:
    user: str
    assistant: str
    images: list[str] = field(default_factory=list)


def test_untagged_text_gets_global_tags_then_newline() -> None:
    assert tagged_user_text("Q?", 3, 2) == "<|image_3|><|image_4|>\nQ?"
    assert tagged_user_text("Q?", 1, 0) == "Q?"
    assert tagged_user_text("<|image_1|> Q?", 1, 1) == "<|image_1|> Q?"


def test_split_keeps_empty_chunks_between_adjacent_tags() -> None:
    assert split_on_tags("<|user|>\n<|image_1|><|image_2|>\nQ") == [
        TextSegment("<|user|>\n"),
        ImageSegment(1),
        TextSegment(""),
        ImageSegment(2),
        TextSegment("\nQ"),
    ]


def test_multi_turn_segments_number_images_globally() -> None:
    turns = [T("first", "A", ["a.jpg", "b.jpg"]), T("no image", "B"), T("third", "C", ["c.jpg"])]
    assert conversation_segments(turns) == [
        TextSegment("<|user|>\n"),
        ImageSegment(1),
        TextSegment(""),
        ImageSegment(2),
        TextSegment("\nfirst<|end|>\n<|assistant|>\n"),
        AnswerSegment("A<|end|>\n"),
        TextSegment("<|user|>\nno image<|end|>\n<|assistant|>\n", bos=False),
        AnswerSegment("B<|end|>\n"),
        TextSegment("<|user|>\n", bos=False),
        ImageSegment(3),
        TextSegment("\nthird<|end|>\n<|assistant|>\n"),
        AnswerSegment("C<|end|>\n<|endoftext|>"),
    ]
    assert prompt_segments(turns) == conversation_segments(turns)[:-1]


@pytest.mark.parametrize(
    ("user", "first", "count", "ok"),
    [
        ("no tags", 1, 2, True),
        ("<|image_1|><|image_2|> both", 1, 2, True),
        ("<|image_3|> later turn", 3, 1, True),
        ("<|image_1|> restarts numbering", 3, 1, False),
        ("<|image_2|><|image_1|> out of order", 1, 2, False),
        ("<|image_1|> one of two", 1, 2, False),
        ("<|image_1|> tag without image", 1, 0, False),
    ],
)
def test_image_tag_problem(user: str, first: int, count: int, ok: bool) -> None:
    assert (image_tag_problem(user, first, count) is None) is ok


def test_tag_problem_message_names_expected_tags() -> None:
    message = image_tag_problem("<|image_1|>", 3, 1)
    assert message is not None
    assert "<|image_3|>" in message
    assert "<|image_1|>" in message
