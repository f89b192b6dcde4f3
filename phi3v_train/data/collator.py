"""Batching encoded conversations for training.

* Right padding with the pad id (32000, ``<|endoftext|>``) in ``input_ids`` and -100 in ``labels``.
* ``attention_mask`` comes from each row's length, not from ``ids != pad``: the final ``<|endoftext|>``
  of every answer is a real token and stays attended (the recipe's collator hid it).
* ``pixel_values`` and ``image_sizes`` are the rows' images concatenated in row order, which is the order
  the model consumes them in; text-only rows simply add none. Only each image's real crops are sent
  (ragged), not the processor's zero padding crops. (Distributed runs give a batch without
  images a dummy image inside the model: :mod:`phi3v_train.training.vision_guard`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from phi3v_data.image_tokens import CROP_SIZE
from phi3v_train.data.dataset import check_has_labels
from phi3v_train.data.packing import pack_rows, record_position_ids
from phi3v_train.model.processing import IGNORE_INDEX

PAD_TOKEN_ID = 32000


@dataclass
class Phi3VDataCollator:
    """Pads a list of dataset items into one batch of tensors (any batch size).

    ``ragged_crops``: ``pixel_values`` holds only each image's ``1 + rows*cols`` real crops,
    [sum of crops, 3, 336, 336], image after image (the model reads the counts from ``image_sizes``);
    off, the items' padded [n, num_crops+1, 3, 336, 336] tensors are concatenated as they are.
    ``packing``: the items share rows of at most ``max_length`` tokens (:mod:`phi3v_train.data.packing`);
    the batch then has ``position_ids`` instead of ``attention_mask``. ``single_row`` puts them all in one
    row whatever ``max_length``: transformers' flash-attention 2 finds records from ``position_ids`` only
    in a batch of one row (with several rows it would attend across records).
    """

    pad_token_id: int = PAD_TOKEN_ID
    ragged_crops: bool = True
    packing: bool = False
    max_length: int | None = None
    single_row: bool = False

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        for feature in features:
            if len(feature["labels"]) != len(feature["input_ids"]):
                raise ValueError(f"item {feature.get('id')!r}: labels and input_ids differ in length")
            check_has_labels(feature["labels"], f"record {feature.get('id')!r}")
        lengths = [len(feature["input_ids"]) for feature in features]
        row_length = None if self.single_row else self.max_length
        rows = pack_rows(lengths, row_length) if self.packing else [[index] for index in range(len(features))]
        width = max(sum(lengths[index] for index in row) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for row, members in enumerate(rows):
            start = 0
            for index in members:
                end = start + lengths[index]
                input_ids[row, start:end] = torch.tensor(features[index]["input_ids"], dtype=torch.long)
                labels[row, start:end] = torch.tensor(features[index]["labels"], dtype=torch.long)
                start = end
        batch: dict[str, torch.Tensor] = {"input_ids": input_ids, "labels": labels}
        if self.packing:
            batch["position_ids"] = torch.stack(
                [record_position_ids([lengths[index] for index in row], width) for row in rows]
            )
        else:
            batch["attention_mask"] = (torch.arange(width) < torch.tensor(lengths).unsqueeze(1)).long()
        order = [features[index] for row in rows for index in row]
        with_images = [feature for feature in order if feature.get("pixel_values") is not None]
        if with_images:
            batch["image_sizes"] = torch.cat([feature["image_sizes"] for feature in with_images])
            crops = [
                real_crops(f["pixel_values"], f["image_sizes"]) if self.ragged_crops else f["pixel_values"]
                for f in with_images
            ]
            batch["pixel_values"] = torch.cat(crops)
        return batch


def real_crops(pixel_values: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
    """[n, num_crops+1, 3, 336, 336] padded crops -> [sum of 1 + rows*cols, 3, 336, 336], the real ones only."""
    counts = [1 + (int(height) // CROP_SIZE) * (int(width) // CROP_SIZE) for height, width in image_sizes.tolist()]
    return torch.cat([pixel_values[image, :count] for image, count in enumerate(counts)])
