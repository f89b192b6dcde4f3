"""Trainer parts on the tiny model, without a training run: the vision guard, per-group learning rates,
accumulation from the world size, DeepSpeed files, length grouping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers.trainer_pt_utils import LengthGroupedSampler

from phi3v_train.data.collator import Phi3VDataCollator
from phi3v_train.data.dataset import ConversationDataset
from phi3v_train.data.prepare import prepare_data
from phi3v_train.data.records import read_records
from phi3v_train.errors import ConfigError
from phi3v_train.model.sizes import build_model
from phi3v_train.model.tiny_tokenizer import tiny_processor
from phi3v_train.training.modes import apply_mode, parameter_group
from phi3v_train.training.trainer import (
    Phi3VTrainer,
    deepspeed_config_path,
    gradient_accumulation,
    training_arguments,
)
from phi3v_train.training.vision_guard import set_vision_every_forward, vision_every_forward


def test_text_only_batch_runs_the_vision_tower_with_zero_weight_in_the_image_place(colour_data, tmp_path, make_config):
    dataset = ConversationDataset(read_records([colour_data]), tiny_processor(num_crops=1))
    text_only = Phi3VDataCollator()([dataset[3]])
    model = apply_mode(build_model("tiny"), make_config(colour_data, tmp_path / "o"))
    loss = model(**text_only).loss
    loss.backward()
    assert all(p.grad is None for n, p in model.named_parameters() if parameter_group(n) == "vision")

    model.zero_grad(set_to_none=True)
    calls: list[str] = []
    for name in ("model.embed_tokens", "model.vision_embed_tokens", "model.layers.0"):
        model.get_submodule("base_model.model." + name).register_forward_pre_hook(lambda *_, n=name: calls.append(n))
    set_vision_every_forward(model, True)
    guarded_loss = model(**text_only).loss
    assert calls == ["model.embed_tokens", "model.vision_embed_tokens", "model.layers.0"]
    assert torch.equal(guarded_loss, loss)
    guarded_loss.backward()
    for group in ("vision", "projector"):
        grads = [p.grad for n, p in model.named_parameters() if parameter_group(n) == group and p.requires_grad]
        assert grads and all(g is not None and not g.any() for g in grads), group
    with vision_every_forward(model, False):
        calls.clear()
        model(**text_only)
        assert calls == ["model.embed_tokens", "model.layers.0"]
    calls.clear()
    model(**Phi3VDataCollator()([dataset[0]]))
    assert calls == ["model.embed_tokens", "model.vision_embed_tokens", "model.layers.0"]


def test_vision_and_projector_learning_rates(colour_data, tmp_path, make_config):
    config = make_config(
        colour_data, tmp_path / "o", mode="full", vision_lr=1e-4, projector_lr=3e-4, learning_rate=2e-5
    )
    model = apply_mode(build_model("tiny"), config)
    trainer = Phi3VTrainer(
        model=model,
        args=training_arguments(config, "fp32", 1, False),
        group_lrs={"vision": 1e-4, "projector": 3e-4},
    )
    optimizer = trainer.create_optimizer()
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    decay_of = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    expected = {"vision": 1e-4, "projector": 3e-4, "separators": 2e-5, "embeddings": 2e-5, "llm_layers": 2e-5}
    for name, parameter in model.named_parameters():
        assert lr_of[id(parameter)] == expected.get(parameter_group(name), 2e-5), name
    bias = dict(model.named_parameters())["model.vision_embed_tokens.img_projection.0.bias"]
    weight = dict(model.named_parameters())["model.vision_embed_tokens.img_projection.0.weight"]
    assert (decay_of[id(bias)], decay_of[id(weight)]) == (0.0, 0.01)


def test_global_batch_sets_accumulation_from_the_world_size(colour_data, tmp_path, make_config):
    config = make_config(colour_data, tmp_path / "o", batch_size=2, global_batch_size=8)
    assert gradient_accumulation(config, 1) == 4
    assert gradient_accumulation(config, 2) == 2
    with pytest.raises(ConfigError, match="not divisible by --batch-size 2 x 3 process"):
        gradient_accumulation(config, 3)
    assert gradient_accumulation(make_config(colour_data, tmp_path / "o"), 4) == 1


def test_shipped_deepspeed_configs():
    zero2 = json.loads(Path(deepspeed_config_path("zero2")).read_text())
    zero3 = json.loads(Path(deepspeed_config_path("zero3")).read_text())
    assert zero2["zero_optimization"]["stage"] == 2 and zero2["zero_optimization"]["round_robin_gradients"] is True
    assert zero3["zero_optimization"]["stage"] == 3
    assert zero2["train_batch_size"] == zero3["gradient_accumulation_steps"] == "auto"
    assert deepspeed_config_path("my/ds.json") == "my/ds.json"


def test_group_by_length_samples_with_the_precomputed_lengths(colour_data, tmp_path, make_config):
    config = make_config(colour_data, tmp_path / "o", group_by_length=True, batch_size=2)
    processor = tiny_processor(num_crops=1)
    prepared = prepare_data(config.train_files, [], processor, validate=False)
    trainer = Phi3VTrainer(
        model=build_model("tiny"),
        args=training_arguments(config, "fp32", 1, False),
        train_dataset=prepared.train,
        lengths=prepared.train_lengths,
    )
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler)
    assert sampler.lengths == prepared.train_lengths == [len(item["input_ids"]) for item in prepared.train]


def test_task_metric_runs_at_every_evaluation_during_training(colour_data, tmp_path, quick_run):
    result = quick_run(
        colour_data,
        tmp_path / "run",
        mode="lora",
        max_steps=2,
        eval_files=[colour_data],
        eval_steps=1,
        eval_metric="accuracy",
        eval_limit=2,
    )
    assert [step for step, _ in result.eval_metrics_during_training] == [1, 2]
    for _, summaries in result.eval_metrics_during_training:
        summary = summaries[str(colour_data)]
        assert (summary["metric"], summary["num_records"], summary["num_available"]) == ("accuracy", 2, 4)
    assert result.eval_metrics[str(colour_data)]["num_records"] == 2
