"""Length grouping with a seeded order per epoch, so that a resumed run replays the same batches.

transformers' ``LengthGroupedSampler`` draws its shuffle from the global RNG at the start of each epoch;
a resumed run is at another point of that RNG, so a resumed epoch saw some records twice and others never.
Here the order of epoch ``e`` is a function of ``(seed, e)`` only. The Trainer calls ``set_epoch`` through
accelerate's data loader (also after ``skip_first_batches`` on resume).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler


class SeededLengthGroupedSampler(LengthGroupedSampler):
    """``LengthGroupedSampler`` over known ``lengths`` whose epoch ``e`` order is seeded with ``seed + e``."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int) -> None:
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()
