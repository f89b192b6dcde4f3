"""Dataset items as :class:`~phi3v_train.data.dataset.ConversationDataset` yields them, built without files:
ids with the hub's negative image runs, labels on the answer only, padded ``pixel_values`` as the processor
makes them (unused crops zero)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from phi3v_data.image_tokens import CROP_SIZE, tokens_for_grid

USER = [1, 32010, 29871, 13]
QUESTION = [1, 29871, 13, 5618, 338, 4318, 29973, 32007, 29871, 13, 32001]
TEXT_PROMPT = [1, 32010, 29871, 13, 15043, 32007, 32001]


def make_item(
    grids: Sequence[tuple[int, int]], answer: Sequence[int], num_crops: int = 4, seed: int = 0, name: str = "r"
) -> dict[str, Any]:
    """One record: images of the HD ``grids`` (rows, cols) and the question, or text only when ``grids`` is empty."""
    if grids:
        prompt = list(USER)
        for k, (rows, cols) in enumerate(grids, start=1):
            prompt += [-k] * tokens_for_grid(rows, cols) + ([1] if k < len(grids) else [])
        prompt += QUESTION
    else:
        prompt = list(TEXT_PROMPT)
    item: dict[str, Any] = {
        "id": name,
        "input_ids": prompt + list(answer),
        "labels": [-100] * len(prompt) + list(answer),
        "pixel_values": None,
        "image_sizes": None,
    }
    if grids:
        generator = torch.Generator().manual_seed(seed)
        pixel_values = torch.zeros(len(grids), num_crops + 1, 3, CROP_SIZE, CROP_SIZE)
        for i, (rows, cols) in enumerate(grids):
            used = 1 + rows * cols
            pixel_values[i, :used] = torch.randn(used, 3, CROP_SIZE, CROP_SIZE, generator=generator)
        item["pixel_values"] = pixel_values
        item["image_sizes"] = torch.tensor([[rows * CROP_SIZE, cols * CROP_SIZE] for rows, cols in grids])
    return item


def mixed_items(num_crops: int = 4) -> list[dict[str, Any]]:
    """Two images, text only, one image, text only, one image: mixed image counts, grids and answers."""
    return [
        make_item([(1, 2), (2, 2)], [3869, 32007, 29871, 13, 32000], num_crops, seed=1, name="two-images"),
        make_item([], [1939, 29892, 6732, 32007, 32000], num_crops, name="text-a"),
        make_item([(2, 1)], [450, 1234, 32007, 32000], num_crops, seed=2, name="one-image"),
        make_item([], [8241, 32007, 29871, 13, 32000], num_crops, name="text-b"),
        make_item([(1, 1)], [4874, 32007, 32000], num_crops, seed=3, name="small-image"),
    ]


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def loss_and_gradients(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = model(**batch, use_cache=False).loss
    loss.backward()
    return loss.item(), gradients(model)


def assert_same_gradients(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor], atol: float) -> None:
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        difference = (value - actual[name]).abs().max().item()
        assert difference <= atol, f"{name}: gradients differ by {difference}"
