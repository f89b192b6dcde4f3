"""Each mode on the tiny model: the loss falls on a memorisable set and only the intended parameters change."""

from __future__ import annotations

import json

import pytest
import torch

from phi3v_train.loading import load_model_and_processor
from phi3v_train.training.modes import parameter_group

FAST = {"learning_rate": 3e-2, "batch_size": 2, "warmup_steps": 0, "lr_scheduler": "constant"}
ALL_GROUPS = {"vision", "projector", "separators", "embeddings", "llm_layers", "lm_head"}


def groups_of(names: set[str]) -> set[str]:
    return {parameter_group(name) for name in names}


def assert_loss_halved(result) -> None:
    first, last = result.first_loss, result.last_loss
    assert last < 0.5 * first, f"loss went from {first:.3f} to {last:.3f}: {result.losses}"


def lora_changes(snapshots) -> tuple[set[str], set[str]]:
    changed = snapshots.changed()
    adapters = {name for name in changed if ".lora_" in name}
    return adapters, changed - adapters


def test_full_trains_every_group(colour_data, tmp_path, quick_run, snapshots):
    result = quick_run(colour_data, tmp_path / "run", [snapshots], mode="full", max_steps=8, **FAST)
    assert_loss_halved(result)
    assert groups_of(snapshots.changed()) == ALL_GROUPS
    model, processor = load_model_and_processor(tmp_path / "run")
    reloaded = dict(model.named_parameters())
    assert set(reloaded) == set(snapshots.after)
    assert all(torch.equal(reloaded[name].detach(), value) for name, value in snapshots.after.items())
    assert processor.num_crops == 1


def test_frozen_image_model_trains_only_the_language_model(colour_data, tmp_path, quick_run, snapshots):
    result = quick_run(
        colour_data, tmp_path / "run", [snapshots], mode="full", freeze=["image-model"], max_steps=8, **FAST
    )
    assert_loss_halved(result)
    changed = snapshots.changed()
    assert groups_of(changed) == {"llm_layers", "lm_head"}
    assert groups_of(set(snapshots.before) - changed) == {"vision", "projector", "separators", "embeddings"}


def test_lora_trains_only_adapters_and_reloads(colour_data, tmp_path, quick_run, snapshots):
    out = tmp_path / "run"
    result = quick_run(colour_data, out, [snapshots], mode="lora", max_steps=8, **FAST)
    assert_loss_halved(result)
    adapters, others = lora_changes(snapshots)
    assert others == set()
    assert groups_of(adapters) == {"vision", "projector", "llm_layers", "lm_head"}
    base = json.loads((out / "phi3v_base.json").read_text())
    assert (base["base_model"], base["preset"], base["num_crops"]) == ("base_model", "tiny", 1)

    model, processor = load_model_and_processor(out)
    reloaded = {name: value for name, value in model.named_parameters() if name in snapshots.after}
    assert set(reloaded) == set(snapshots.after)
    for name, value in reloaded.items():
        assert torch.equal(value.detach().float(), snapshots.after[name]), name
    assert processor.num_crops == 1


def test_lora_with_frozen_image_model_adapts_only_the_language_model(colour_data, tmp_path, quick_run, snapshots):
    quick_run(colour_data, tmp_path / "run", [snapshots], mode="lora", freeze=["image-model"], max_steps=2)
    adapters, others = lora_changes(snapshots)
    assert others == set()
    assert groups_of(adapters) == {"llm_layers", "lm_head"}


def test_qlora_quantizes_the_language_model_only(colour_data, tmp_path, quick_run, snapshots):
    bnb = pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes")
    result = quick_run(
        colour_data,
        tmp_path / "run",
        [snapshots],
        mode="qlora",
        double_quant=True,
        max_steps=10,
        **{**FAST, "learning_rate": 1e-2},
    )
    kinds = {}
    for name, module in snapshots.model.named_modules():
        if name.endswith(("qkv_proj.base_layer", "fc1.base_layer", "img_projection.0.base_layer")):
            kinds[parameter_group(name + ".")] = isinstance(module, bnb.nn.Linear4bit)
    assert kinds == {"llm_layers": True, "vision": False, "projector": False}
    assert_loss_halved(result)
    adapters, others = lora_changes(snapshots)
    assert others == set()
    assert groups_of(adapters) == {"vision", "projector", "llm_layers", "lm_head"}


def test_lora_also_train_projector_is_saved_with_the_adapter(colour_data, tmp_path, quick_run, snapshots):
    out = tmp_path / "run"
    quick_run(colour_data, out, [snapshots], mode="lora", also_train=["projector"], max_steps=2, **FAST)
    adapters, others = lora_changes(snapshots)
    assert groups_of(adapters) == {"vision", "llm_layers", "lm_head"}
    assert others and all(".modules_to_save." in name for name in others)
    assert groups_of(others) == {"projector"}
    model, _ = load_model_and_processor(out)
    reloaded = dict(model.named_parameters())
    for name in others:
        assert torch.equal(reloaded[name].detach().float(), snapshots.after[name]), name
