"""Resume: N steps straight equal N/2 steps, a stop, and a resumed run, weight for weight and loss for loss."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from stop_at_step import StopAt

from phi3v_train.errors import ConfigError

STEPS, HALF = 4, 2
WEIGHTS = {"full": "model.safetensors", "lora": "adapter_model.safetensors", "qlora": "adapter_model.safetensors"}


@pytest.mark.parametrize("mode", ["lora", "full", "qlora"])
def test_resumed_run_equals_the_uninterrupted_one(colour_data, tmp_path, quick_run, mode):
    options = {"mode": mode, "max_steps": STEPS, "save_steps": HALF, "batch_size": 2, "learning_rate": 5e-3}
    straight = quick_run(colour_data, tmp_path / "straight", **options)
    first = quick_run(colour_data, tmp_path / "resumed", [StopAt(HALF)], **options)
    assert first.global_step == HALF
    resumed = quick_run(colour_data, tmp_path / "resumed", resume="latest", **options)

    assert resumed.global_step == STEPS
    assert first.losses + resumed.losses == straight.losses
    assert [step for step, _ in straight.losses] == [1, 2, 3, 4]
    expected = load_file(tmp_path / "straight" / WEIGHTS[mode])
    actual = load_file(tmp_path / "resumed" / WEIGHTS[mode])
    assert expected.keys() == actual.keys()
    for key, value in expected.items():
        assert torch.equal(value, actual[key]), key


def test_resume_needs_a_checkpoint_and_a_fresh_run_needs_a_fresh_folder(colour_data, tmp_path, quick_run):
    with pytest.raises(ConfigError, match="no checkpoint-N folder"):
        quick_run(colour_data, tmp_path / "run", resume="latest", max_steps=1)
    quick_run(colour_data, tmp_path / "run", max_steps=1)
    with pytest.raises(ConfigError, match="already holds a run"):
        quick_run(colour_data, tmp_path / "run", max_steps=1)
