"""Label scoring the plain way: one full forward over prompt + answer per candidate."""

from __future__ import annotations

from typing import Any

import torch


def full_forward_score(model: Any, prompt: Any, answer_ids: list[int]) -> float:
    """The sum of the answer tokens' log-probabilities after ``prompt`` (an encoded conversation)."""
    ids = torch.tensor([list(prompt.input_ids) + answer_ids])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if prompt.pixel_values is not None:
        inputs |= {"pixel_values": prompt.pixel_values, "image_sizes": prompt.image_sizes}
    with torch.no_grad():
        log_probs = torch.log_softmax(model(**inputs).logits[0].float(), dim=-1)
    start = len(prompt.input_ids)
    return sum(log_probs[start + i - 1, token].item() for i, token in enumerate(answer_ids))
