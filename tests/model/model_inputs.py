"""Input builders for the model tests: random pixels, ids with image runs as the hub processor makes them."""

from collections.abc import Sequence

import torch

from phi3v_data.image_tokens import CROP_SIZE, tokens_for_grid

USER = [1, 32010, 29871, 13]
QUESTION = [1, 29871, 13, 5618, 338, 4318, 29973, 32007, 29871, 13, 32001]


def image_batch(grids: Sequence[tuple[int, int]], num_crops: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``pixel_values`` [n, num_crops+1, 3, 336, 336] (unused crops zero, as the processor pads)
    and ``image_sizes`` [n, 2] for images whose HD grids are ``grids`` (rows, cols)."""
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.zeros(len(grids), num_crops + 1, 3, CROP_SIZE, CROP_SIZE)
    for i, (rows, cols) in enumerate(grids):
        assert rows * cols <= num_crops
        used = 1 + rows * cols
        pixel_values[i, :used] = torch.randn(used, 3, CROP_SIZE, CROP_SIZE, generator=generator)
    image_sizes = torch.tensor([[rows * CROP_SIZE, cols * CROP_SIZE] for rows, cols in grids])
    return pixel_values, image_sizes


def prompt_ids(grids: Sequence[tuple[int, int]], answer: Sequence[int] = ()) -> list[int]:
    """Ids as the hub processor makes them: ``<s><|user|>\\n`` + image runs of ``-k`` (each followed by
    ``<s>``) + the question + ``<|assistant|>``, then ``answer``."""
    ids = list(USER)
    for k, (rows, cols) in enumerate(grids, start=1):
        ids += [-k] * tokens_for_grid(rows, cols)
        if k < len(grids):
            ids.append(1)
    return ids + QUESTION + list(answer)


def right_pad(rows: Sequence[Sequence[int]], pad_id: int = 32000) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` for rows of different lengths, padded on the right."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask
