"""Batching encoded conversations for training.

* Right padding with the pad id (32000, ``<|endoftext|>``) in ``input_ids`` and -100 in ``labels``.
* ``attention_mask`` comes from each row's length, not from ``ids != pad``: the final ``<|endoftext|>``
  of every answer is a real token and stays attended (the recipe's collator hid it).
* ``pixel_values`` and ``image_sizes`` are the rows' images concatenated in row order, which is the order
  the model consumes them in; text-only rows simply add none.
* With ``ensure_vision``, a batch without any image carries a dummy all-zero 336x336 image under
  ``vision_guard_*`` keys; :mod:`phi3v_train.training.vision_guard` runs it through the vision tower with
  zero weight, so every rank runs the same modules every step (DDP and ZeRO-3 do not hang).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from phi3v_data.image_tokens import CROP_SIZE
from phi3v_train.data.dataset import check_has_labels
from phi3v_train.model.processing import IGNORE_INDEX

PAD_TOKEN_ID = 32000
GUARD_PIXELS = "vision_guard_pixel_values"
GUARD_SIZES = "vision_guard_image_sizes"


def dummy_image() -> tuple[torch.Tensor, torch.Tensor]:
    """A zero image of one 336x336 crop plus its global view: pixel_values [1, 2, 3, 336, 336], sizes [1, 2]."""
    return torch.zeros(1, 2, 3, CROP_SIZE, CROP_SIZE), torch.tensor([[CROP_SIZE, CROP_SIZE]])


@dataclass
class Phi3VDataCollator:
    """Pads a list of dataset items into one batch of tensors (any batch size)."""

    pad_token_id: int = PAD_TOKEN_ID
    ensure_vision: bool = False

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        length = max(len(feature["input_ids"]) for feature in features)
        input_ids = torch.full((len(features), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), length), dtype=torch.long)
        for row, feature in enumerate(features):
            if len(feature["labels"]) != len(feature["input_ids"]):
                raise ValueError(f"item {feature.get('id')!r}: labels and input_ids differ in length")
            check_has_labels(feature["labels"], f"record {feature.get('id')!r}")
            size = len(feature["input_ids"])
            input_ids[row, :size] = torch.tensor(feature["input_ids"], dtype=torch.long)
            labels[row, :size] = torch.tensor(feature["labels"], dtype=torch.long)
            attention_mask[row, :size] = 1
        batch: dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        pixel_values = [f["pixel_values"] for f in features if f.get("pixel_values") is not None]
        if pixel_values:
            batch["pixel_values"] = torch.cat(pixel_values)
            batch["image_sizes"] = torch.cat([f["image_sizes"] for f in features if f.get("pixel_values") is not None])
        elif self.ensure_vision:
            batch[GUARD_PIXELS], batch[GUARD_SIZES] = dummy_image()
        return batch
