"""`--also-train`: PEFT copies exactly the named modules (its modules_to_save match is a raw name suffix)."""

from __future__ import annotations

import math

import pytest

from phi3v_train.model.sizes import build_model
from phi3v_train.training.modes import MODULES_TO_SAVE, apply_mode, trainable_summary


def test_each_also_train_name_ends_exactly_one_module_path():
    names = [name for name, _ in build_model("tiny").named_modules(remove_duplicate=False)]
    assert {group: [n for n in names if n.endswith(path)] for group, path in MODULES_TO_SAVE.items()} == {
        "projector": ["model.vision_embed_tokens.img_projection"],
        "embeddings": ["model.embed_tokens"],
    }


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ("embeddings", {"base_model.model.model.embed_tokens.modules_to_save.default.weight": (32064, 64)}),
        (
            "projector",
            {
                "base_model.model.model.vision_embed_tokens.img_projection.modules_to_save.default.0.weight": (64, 128),
                "base_model.model.model.vision_embed_tokens.img_projection.modules_to_save.default.0.bias": (64,),
                "base_model.model.model.vision_embed_tokens.img_projection.modules_to_save.default.2.weight": (64, 64),
                "base_model.model.model.vision_embed_tokens.img_projection.modules_to_save.default.2.bias": (64,),
            },
        ),
    ],
)
def test_only_the_named_module_trains_in_full_beside_the_adapters(colour_data, tmp_path, make_config, group, expected):
    model = apply_mode(build_model("tiny"), make_config(colour_data, tmp_path / "o", also_train=[group]))
    trainable = {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad and ".lora_" not in n}
    assert trainable == expected
    plain = trainable_summary(apply_mode(build_model("tiny"), make_config(colour_data, tmp_path / "o")))
    summary = trainable_summary(model)
    in_full = sum(math.prod(shape) for shape in expected.values())
    # the named group swaps its adapters (if any) for the full copy; every other group is unchanged
    assert {name: trainable for name, (trainable, _) in summary.items()} == {
        name: in_full if name == group else trainable for name, (trainable, _) in plain.items()
    }
