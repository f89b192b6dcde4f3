"""The run configuration: precedence, presets, errors listed together, the saved resolved config."""

from __future__ import annotations

import pytest
import yaml

from phi3v_train.errors import ConfigError
from phi3v_train.training.config import load_config, save_config
from phi3v_train.training.modes import lora_target_modules
from phi3v_train.training.task_presets import expand_freeze


@pytest.fixture
def train_file(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("", encoding="utf-8")
    return path


def base(train_file, tmp_path, **values):
    return {"model": "hub/model", "train_files": [train_file], "output_dir": tmp_path / "out", **values}


def test_recipe_defaults(train_file, tmp_path):
    config = load_config(None, base(train_file, tmp_path))
    assert (config.learning_rate, config.weight_decay, config.warmup_steps, config.max_grad_norm) == (
        4e-5,
        0.01,
        50,
        1.0,
    )
    assert (config.adam_beta1, config.adam_beta2, config.adam_epsilon) == (0.9, 0.95, 1e-7)
    assert (config.lora_rank, config.lora_alpha, config.lora_dropout, config.lr_scheduler) == (64, 128, 0.0, "linear")


def test_yaml_then_cli_precedence(train_file, tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        "preset: docvqa\nmode: lora\nlearning-rate: 1.0e-4\nlora_rank: 8\nseed: 3\n", encoding="utf-8"
    )
    config = load_config(config_file, base(train_file, tmp_path, seed=7, epochs=None))
    # preset < YAML < CLI; a CLI value of None means "not given"
    assert config.learning_rate == 1e-4  # YAML over the preset's 2e-4
    assert config.lora_rank == 8 and config.lora_alpha == 16  # YAML rank, the preset's alpha
    assert config.seed == 7  # CLI over YAML
    assert (config.num_crops, config.epochs, config.global_batch_size) == (16, 2.0, 64)  # from the preset


@pytest.mark.parametrize(
    ("preset", "mode", "freeze", "expected"),
    [
        ("docvqa", "full", [], {"learning_rate": 5e-6, "epochs": 2.0, "num_crops": 16}),
        ("docvqa", "full", ["image-model"], {"learning_rate": 1e-4, "epochs": 2.0}),
        ("docvqa", "qlora", [], {"learning_rate": 2e-4, "lora_rank": 32, "lora_alpha": 16}),
        ("hateful-memes", "full", ["image-model"], {"learning_rate": 1e-4, "epochs": 3.0}),
        ("hateful-memes", "lora", [], {"learning_rate": 2e-4, "lora_rank": 128, "lora_alpha": 256}),
        ("nlvr2", "full", [], {"learning_rate": 1e-5, "epochs": 3.0, "global_batch_size": 64}),
        ("nlvr2", "full", ["vision", "projector", "separators", "embeddings"], {"learning_rate": 2e-5, "epochs": 2.0}),
        ("ucf101", "lora", [], {"num_crops": 4, "learning_rate": 4e-5, "lora_rank": 64, "global_batch_size": 16}),
    ],
)
def test_task_presets(train_file, tmp_path, preset, mode, freeze, expected):
    config = load_config(None, base(train_file, tmp_path, preset=preset, mode=mode, freeze=freeze))
    assert {key: getattr(config, key) for key in expected} == expected


def test_tiny_model_defaults_are_under_the_preset_and_cli(train_file, tmp_path):
    assert load_config(None, base(train_file, tmp_path, model="tiny")).learning_rate == 1e-2
    assert load_config(None, base(train_file, tmp_path, model="tiny", learning_rate=3e-3)).learning_rate == 3e-3


def test_every_problem_is_listed_at_once(train_file, tmp_path):
    values = base(
        train_file,
        tmp_path,
        lora_rank=0,
        freeze=["vision", "wings"],
        double_quant=True,
        vision_lr=1e-5,
        train_files=[train_file, tmp_path / "missing.jsonl"],
        eval_steps=10,
    )
    with pytest.raises(ConfigError) as error:
        load_config(None, values)
    lines = str(error.value).splitlines()[1:]
    assert [line.split(":")[0].strip() for line in lines] == [
        "lora_rank",
        "freeze",
        "vision_lr",
        "double_quant",
        "eval_steps",
        f"{tmp_path / 'missing.jsonl'}",
    ]


def test_unknown_yaml_key_and_bad_yaml(train_file, tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("lora_rnak: 8\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="lora_rnak: Extra inputs are not permitted"):
        load_config(config_file, base(train_file, tmp_path))
    config_file.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(config_file, base(train_file, tmp_path))


def test_resolved_config_round_trips(train_file, tmp_path):
    config = load_config(None, base(train_file, tmp_path, preset="ucf101", freeze=["image-model"], mode="full"))
    path = save_config(config, tmp_path)
    saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert saved["num_crops"] == 4 and saved["freeze"] == ["image-model"] and saved["mode"] == "full"
    assert load_config(path, {}) == config


def test_frozen_image_model_alias_and_lora_targets(train_file, tmp_path):
    assert expand_freeze(["image-model", "vision"]) == ["vision", "projector", "separators", "embeddings"]
    lora = load_config(None, base(train_file, tmp_path))
    assert lora_target_modules(lora) == [
        "qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head",
        "q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2",
        "img_projection.0", "img_projection.2",
    ]  # fmt: skip
    frozen = load_config(None, base(train_file, tmp_path, freeze=["image-model"]))
    assert lora_target_modules(frozen) == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head"]
    projector = load_config(None, base(train_file, tmp_path, also_train=["projector"]))
    assert "img_projection.0" not in lora_target_modules(projector)


@pytest.mark.parametrize(
    ("words", "accepted"),
    [
        ("full_shard", True),
        ("shard_grad_op offload", True),
        ("full_shard auto_wrap", True),
        ("full_shard shard_grad_op", False),
        ("offload", False),
        ("hybrid_shard", False),
    ],
)
def test_fsdp_words(train_file, tmp_path, words, accepted):
    values = base(train_file, tmp_path, fsdp=words)
    if accepted:
        assert load_config(None, values).fsdp == words
    else:
        with pytest.raises(ConfigError, match=r"fsdp: .* must name one of full_shard or shard_grad_op"):
            load_config(None, values)
