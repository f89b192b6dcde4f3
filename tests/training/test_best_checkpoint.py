"""`--metric-for-best`: the best checkpoint is kept whatever `--save-total-limit` says, and loaded at the end."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from phi3v_train.errors import ConfigError


class EvalLosses(TrainerCallback):
    def __init__(self) -> None:
        self.by_step: dict[int, float] = {}

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.by_step[state.global_step] = metrics["eval_loss"]


def test_the_best_checkpoint_survives_the_limit_and_is_the_final_model(colour_data, tmp_path, quick_run):
    losses = EvalLosses()
    out = tmp_path / "run"
    quick_run(
        colour_data, out, [losses], max_steps=4, eval_files=[colour_data], eval_steps=1, save_steps=1,
        save_total_limit=1, metric_for_best="loss", learning_rate=0.5, warmup_steps=0, batch_size=2,
    )  # fmt: skip
    best = min(losses.by_step, key=losses.by_step.get)
    assert sorted(losses.by_step) == [1, 2, 3, 4] and best != 4  # the last checkpoint is not the best one
    assert sorted(path.name for path in out.glob("checkpoint-*")) == [f"checkpoint-{best}"]
    final, kept = (
        load_file(out / "adapter_model.safetensors"),
        load_file(out / f"checkpoint-{best}" / "adapter_model.safetensors"),
    )
    assert final.keys() == kept.keys()
    assert all(torch.equal(value, kept[key]) for key, value in final.items())


def test_metric_for_best_needs_evaluated_checkpoints(colour_data, tmp_path, make_config):
    with pytest.raises(ConfigError, match="metric_for_best: needs --eval-steps and --save-steps a multiple of it"):
        make_config(
            colour_data, tmp_path / "o", metric_for_best="loss", eval_files=[colour_data], eval_steps=2, save_steps=3
        )
    with pytest.raises(ConfigError, match="'accuracy' is a task metric and needs --eval-metric"):
        make_config(
            colour_data,
            tmp_path / "o",
            metric_for_best="accuracy",
            eval_files=[colour_data],
            eval_steps=1,
            save_steps=1,
        )
