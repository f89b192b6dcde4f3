"""Token counts of whole records, as the trainer builds them (see :mod:`phi3v_data.prompt`).

A record's count is the sum over its segments: every text segment costs its tokens (plus one BOS where
it starts a chunk between image tags), every image the Phi-3.5-vision count for its size at
``num_crops``, every answer its tokens (no BOS).

Text tokens come from a local tokenizer folder (``tokenizer.json``, read with the ``tokenizers``
library) when one is given, otherwise from :func:`estimate_text_tokens`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from phi3v_data.errors import MissingDependencyError, Phi3vDataError
from phi3v_data.image_tokens import num_image_tokens
from phi3v_data.prompt import AnswerSegment, TextSegment, conversation_segments
from phi3v_data.schema import Record

TextCounter = Callable[[str], int]

NUM_CROPS_CHOICES = (16, 12, 9, 8, 6, 4, 2, 1)
"""The num_crops values `stats` suggests from and `too_long` messages try, largest first."""

ESTIMATE_DOC = (
    "Without --tokenizer, text tokens are estimated: 1 per special token such as <|user|>, 1 per digit, "
    "2 per newline, and 1 per 3 UTF-8 bytes of the remaining text, rounded up. On English prompts this "
    "overestimates by 10-60%; pass --tokenizer DIR (a folder with tokenizer.json) for exact counts."
)

_SPECIAL_RE = re.compile(r"<\|(?:user|assistant|system|end|endoftext|image|placeholder\d+)\|>|</?s>")
_DIGIT_RE = re.compile(r"\d")


def estimate_text_tokens(text: str) -> int:
    """A tokenizer-free estimate of the Llama/Phi-3 SentencePiece count of ``text`` (BOS not included).

    Digits are split one per token and a newline costs ``▁`` plus ``<0x0A>``, as in that vocabulary;
    other text averages about 3-4 bytes per token, so 3 errs on the long side.
    """
    specials = 0
    rest = text
    if "<" in text:
        rest, specials = _SPECIAL_RE.subn("", text)
    digits = len(_DIGIT_RE.findall(rest))
    newlines = rest.count("\n")
    other_bytes = len(rest.encode("utf-8")) - digits - newlines
    return specials + digits + 2 * newlines + math.ceil(other_bytes / 3)


class TokenizerCounter:
    """Exact text counts from ``<folder>/tokenizer.json``, without special tokens added."""

    def __init__(self, folder: Path) -> None:
        path = Path(folder) / "tokenizer.json"
        if not path.is_file():
            raise Phi3vDataError(f"no tokenizer.json in {folder}; pass the folder of a Phi-3(.5)-vision tokenizer")
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError(
                "--tokenizer needs the `tokenizers` package: pip install tokenizers (or phi3v[train])"
            ) from exc
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust loader raises a bare Exception on a malformed file
            raise Phi3vDataError(f"cannot load {path}: {exc}") from exc

    def __call__(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def text_counter(tokenizer: Path | None) -> TextCounter:
    """The exact counter for a tokenizer folder, else the estimate."""
    return estimate_text_tokens if tokenizer is None else TokenizerCounter(tokenizer)


def text_token_count(record: Record, text_counter: TextCounter) -> int:
    """Tokens of the record's text segments (BOS per chunk between image tags included) and answers; no images."""
    total = 0
    for segment in conversation_segments(record.conversations):
        if isinstance(segment, TextSegment):
            total += text_counter(segment.text) + (1 if segment.bos else 0)
        elif isinstance(segment, AnswerSegment):
            total += text_counter(segment.text)
    return total


def image_token_count(image_sizes: Sequence[tuple[int, int]], num_crops: int) -> int:
    """Tokens of all images of a record, sizes given as (width, height)."""
    return sum(num_image_tokens(width, height, num_crops) for width, height in image_sizes)


def record_token_count(
    record: Record, image_sizes: Sequence[tuple[int, int]], num_crops: int, text_counter: TextCounter
) -> int:
    """The length of the record's whole conversation as the trainer builds it.

    ``image_sizes`` lists (width, height) of every image of the record in global tag order. The
    record's image tags must be valid (see :func:`phi3v_data.prompt.image_tag_problem`).
    """
    if len(image_sizes) != len(record.images):
        raise ValueError(f"record {record.id!r} has {len(record.images)} image(s) but {len(image_sizes)} sizes")
    return text_token_count(record, text_counter) + image_token_count(image_sizes, num_crops)
