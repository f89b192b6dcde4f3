"""Data loading keeps the GPU fed: persistent workers and prefetch with workers, neither without."""

from __future__ import annotations

import pytest

from phi3v_train.training.config import TrainConfig
from phi3v_train.training.trainer import training_arguments


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"workers": 2}, (2, True, 2)),
        ({"workers": 2, "prefetch": 6}, (2, True, 6)),
        ({"workers": 0}, (0, False, None)),
        ({"workers": 0, "prefetch": 6}, (0, False, None)),  # transformers rejects a prefetch factor without workers
    ],
)
def test_training_arguments_feed_the_dataloader(tmp_path, options, expected):
    train_file = tmp_path / "train.jsonl"
    train_file.touch()
    config = TrainConfig(model="hub/model", train_files=[train_file], output_dir=tmp_path / "o", **options)
    args = training_arguments(config, "fp32", 1, False)
    assert (args.dataloader_num_workers, args.dataloader_persistent_workers, args.dataloader_prefetch_factor) == (
        expected
    )
