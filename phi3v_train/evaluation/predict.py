"""Answers for ad-hoc prompts and for record files, through the same prompt encoding as evaluation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from phi3v_data.schema import Record
from phi3v_train.data.image_loading import load_image
from phi3v_train.evaluation.evaluate import WINDOW_BATCHES, encode_prompts, windows
from phi3v_train.evaluation.generation import generate_answers


@dataclass(frozen=True)
class PromptTurn:
    """A user turn still waiting for its answer."""

    user: str
    images: tuple[str, ...]
    assistant: str = ""


def open_images(paths: Sequence[Path]) -> list[Image.Image]:
    """The images given with ``--image``, decoded; a missing or corrupt file is a DataError."""
    return [load_image(path) for path in paths]


def answer_prompt(
    model: Any, processor: Any, prompt: str, images: Sequence[Image.Image], *, max_new_tokens: int = 64
) -> str:
    """The model's greedy answer to one user message with its images.

    Without ``<|image_N|>`` tags in ``prompt``, one tag per image is placed before the text.
    """
    turn = PromptTurn(user=prompt, images=tuple(str(n) for n in range(len(images))))
    encoded = processor.encode_conversation([turn], list(images), for_generation=True)
    return generate_answers(model, processor.tokenizer, [encoded], batch_size=1, max_new_tokens=max_new_tokens)[0]


def predict_records(
    model: Any,
    processor: Any,
    records: Sequence[Record],
    *,
    image_root: Path,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    on_progress: Callable[[int], None] | None = None,
) -> list[str]:
    """The answer to each record's last turn, given its earlier turns, in record order.

    Records are encoded a few batches at a time, so image tensors of the whole file are never held.
    """
    was_training = model.training
    model.eval()
    answers: list[str] = []
    try:
        for window in windows(records, batch_size * WINDOW_BATCHES):
            answers += generate_answers(
                model,
                processor.tokenizer,
                encode_prompts(processor, window, image_root),
                batch_size=batch_size,
                max_new_tokens=max_new_tokens,
                on_batch=on_progress,
            )
    finally:
        model.train(was_training)
    return answers
