"""How a conversation becomes model input: the single definition shared by the validator's token
count, the trainer's collator and generation.

A record turns into a flat list of segments:

* ``TextSegment``: text tokenized on its own *with* BOS, exactly as the hub processor tokenizes
  every chunk between image tags (so a ``<s>`` follows every image);
* ``ImageSegment``: the run of ``-k`` placeholder ids of global image ``k`` (1-based);
* ``AnswerSegment``: the assistant text plus ``<|end|>\\n<|endoftext|>``, tokenized *without*
  BOS; only these tokens are trained on.

Each turn renders as the chat template does for one user message with the generation prompt,
``<|user|>\\n{user}<|end|>\\n<|assistant|>\\n``, followed by the answer. Image tags are numbered
globally across the conversation; a user text without tags gets one tag per image, joined, then a
newline, before the text (the recipe's placement).

Pure Python, no third-party imports.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

IMAGE_TAG_RE = re.compile(r"<\|image_(\d+)\|>")
USER_PREFIX = "<|user|>\n"
TURN_END = "<|end|>\n"
ASSISTANT_PREFIX = "<|assistant|>\n"
ANSWER_SUFFIX = "<|end|>\n<|endoftext|>"


class TurnLike(Protocol):
    images: Sequence[str]
    user: str
    assistant: str


@dataclass(frozen=True)
class TextSegment:
    text: str


@dataclass(frozen=True)
class ImageSegment:
    image_number: int


@dataclass(frozen=True)
class AnswerSegment:
    text: str


Segment = TextSegment | ImageSegment | AnswerSegment


def tag(number: int) -> str:
    return f"<|image_{number}|>"


def image_tag_problem(user: str, first_number: int, image_count: int) -> str | None:
    """Why ``user``'s tags do not fit its turn, or ``None`` when they do.

    Valid: no tags at all, or exactly the tags ``first_number .. first_number+image_count-1``,
    each once and in order.
    """
    found = [int(m) for m in IMAGE_TAG_RE.findall(user)]
    if not found:
        return None
    expected = list(range(first_number, first_number + image_count))
    if found == expected:
        return None
    want = ", ".join(tag(n) for n in expected) if expected else "no tags (the turn has no images)"
    got = ", ".join(tag(n) for n in found)
    return (
        f"user text has tags {got} but the turn has {image_count} image(s); expected {want} "
        "(tags are numbered globally across the conversation), or no tags at all"
    )


def tagged_user_text(user: str, first_number: int, image_count: int) -> str:
    """The user text with its image tags: the text itself when it has tags, else tags + newline + text."""
    if image_count == 0 or IMAGE_TAG_RE.search(user):
        return user
    return "".join(tag(first_number + i) for i in range(image_count)) + "\n" + user


def split_on_tags(text: str) -> list[TextSegment | ImageSegment]:
    """Splits like the hub processor: every chunk between tags (empty ones too) is a text segment."""
    segments: list[TextSegment | ImageSegment] = []
    pos = 0
    for match in IMAGE_TAG_RE.finditer(text):
        segments.append(TextSegment(text[pos : match.start()]))
        segments.append(ImageSegment(int(match.group(1))))
        pos = match.end()
    segments.append(TextSegment(text[pos:]))
    return segments


def generation_prompt(user_text: str) -> str:
    """What ``apply_chat_template([{"role": "user", ...}], add_generation_prompt=True)`` renders."""
    return f"{USER_PREFIX}{user_text}{TURN_END}{ASSISTANT_PREFIX}"


def turn_segments(turn: TurnLike, first_number: int) -> list[Segment]:
    """Prompt segments of one turn followed by its answer."""
    user_text = tagged_user_text(turn.user, first_number, len(turn.images))
    segments: list[Segment] = list(split_on_tags(generation_prompt(user_text)))
    segments.append(AnswerSegment(turn.assistant + ANSWER_SUFFIX))
    return segments


def conversation_segments(turns: Sequence[TurnLike]) -> list[Segment]:
    """All segments of a conversation, images numbered globally from 1."""
    segments: list[Segment] = []
    number = 1
    for turn in turns:
        segments.extend(turn_segments(turn, number))
        number += len(turn.images)
    return segments


def prompt_segments(turns: Sequence[TurnLike]) -> list[Segment]:
    """Segments for generating the last turn's answer: earlier turns complete, the last without answer."""
    return conversation_segments(turns)[:-1]
