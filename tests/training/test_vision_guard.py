"""The vision guard and per-group learning rates, on the tiny model without a training run."""

from __future__ import annotations

import torch

from phi3v_train.data.collator import Phi3VDataCollator
from phi3v_train.data.dataset import ConversationDataset
from phi3v_train.data.records import read_records
from phi3v_train.presets import build_model
from phi3v_train.tiny_tokenizer import tiny_processor
from phi3v_train.training.modes import apply_mode, parameter_group
from phi3v_train.training.trainer import Phi3VTrainer, training_arguments
from phi3v_train.training.vision_guard import install_vision_guard


def test_text_only_batch_runs_the_vision_tower_with_zero_weight(colour_data):
    dataset = ConversationDataset(read_records([colour_data]), tiny_processor(num_crops=1))
    plain = Phi3VDataCollator()([dataset[3]])
    guarded = Phi3VDataCollator(ensure_vision=True)([dataset[3]])
    model = build_model("tiny")
    loss = model(**plain).loss
    loss.backward()
    assert all(p.grad is None for n, p in model.named_parameters() if parameter_group(n) == "vision")

    model.zero_grad(set_to_none=True)
    install_vision_guard(model)
    guarded_loss = model(**guarded).loss
    assert torch.equal(guarded_loss, loss)
    guarded_loss.backward()
    for group in ("vision", "projector", "separators"):
        grads = [p.grad for n, p in model.named_parameters() if parameter_group(n) == group]
        assert grads and all(g is not None and not g.any() for g in grads), group


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
