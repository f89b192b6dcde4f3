"""How a conversation becomes model input: the single definition shared by the validator's token
count, the trainer's collator and generation.

A conversation is rendered as the chat template renders it, ``<|user|>\n{user}<|end|>\n<|assistant|>\n``
followed by the answer for every turn, and cut into a flat list of segments:

* ``TextSegment``: template text. A segment that starts a chunk between image tags (the start of the
  conversation, or right after an image) is tokenized *with* BOS, exactly as the hub processor tokenizes
  every chunk (so a ``<s>`` follows every image); the others continue their chunk without BOS;
* ``ImageSegment``: the run of ``-k`` placeholder ids of global image ``k`` (1-based);
* ``AnswerSegment``: an assistant answer plus what ends it, tokenized *without* BOS; only these tokens
  are trained on. An earlier turn's answer ends in ``<|end|>\n`` (the template goes on with
  ``<|user|>``) and loses its leading whitespace (``<|assistant|>`` strips it); the final answer ends in
  ``<|end|>\n<|endoftext|>``, as in the recipe.

So the tokens of a conversation are ``processor(apply_chat_template(turns, add_generation_prompt=True))``
(every answer but the last in the text) followed by the final answer, and a single turn is exactly the
recipe's ``<s><|user|>\n{user}<|end|>\n<|assistant|>\n`` + ``{answer}<|end|>\n<|endoftext|>``. Image tags
are numbered globally across the conversation; a user text without tags gets one tag per image, joined,
then a newline, before the text (the recipe's placement).

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
"""What ends the final answer of a conversation (and a single-turn answer)."""


class TurnLike(Protocol):
    images: Sequence[str]
    user: str
    assistant: str


@dataclass(frozen=True)
class TextSegment:
    text: str
    bos: bool = True


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


def conversation_segments(turns: Sequence[TurnLike]) -> list[Segment]:
    """All segments of a conversation (see the module docstring), images numbered globally from 1."""
    parts: list[str | AnswerSegment] = []
    number = 1
    for index, turn in enumerate(turns):
        parts.append(generation_prompt(tagged_user_text(turn.user, number, len(turn.images))))
        if index == len(turns) - 1:
            parts.append(AnswerSegment(turn.assistant + ANSWER_SUFFIX))
        else:
            parts.append(AnswerSegment(turn.assistant.lstrip() + TURN_END))
        number += len(turn.images)
    segments: list[Segment] = []
    starts_chunk = True
    for part in parts:
        if isinstance(part, AnswerSegment):
            segments.append(part)
            starts_chunk = False
            continue
        for piece in split_on_tags(part):
            if isinstance(piece, ImageSegment):
                segments.append(piece)
                starts_chunk = True
            else:
                segments.append(TextSegment(piece.text, bos=starts_chunk))
                starts_chunk = False
    return segments


def texts_by_bos(segments: Sequence[Segment]) -> tuple[list[str], list[str]]:
    """The texts tokenized with BOS, and those tokenized without (chunk continuations and answers), in order."""
    with_bos = [s.text for s in segments if isinstance(s, TextSegment) and s.bos]
    without_bos = [
        s.text for s in segments if isinstance(s, AnswerSegment) or (isinstance(s, TextSegment) and not s.bos)
    ]
    return with_bos, without_bos


def prompt_segments(turns: Sequence[TurnLike]) -> list[Segment]:
    """Segments for generating the last turn's answer: earlier turns complete, the last without answer."""
    return conversation_segments(turns)[:-1]
