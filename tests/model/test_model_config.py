"""Phi3VConfig reads the hub config.json as it is; presets hold the hub numbers; parameter counts."""

import json
import math

import pytest
import torch
from transformers.models.clip.modeling_clip import CLIPEncoderLayer
from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding
from transformers.utils import is_flash_attn_2_available

from phi3v_train.errors import ModelConfigError
from phi3v_train.model.configuration import Phi3VConfig
from phi3v_train.model.sizes import SIZE_NAMES, build_model, size_config

HUB_TOTAL_PARAMETERS = 4_146_621_440  # SPEC section 2: LM + CLIP (24 layers, post-norm) + projection + separators
LM_PARAMETERS = 3_821_079_552
CLIP_PARAMETERS = 303_507_456
PROJECTION_PARAMETERS = 22_026_240
SEPARATOR_PARAMETERS = 8_192
CLIP_LAYER_PARAMETERS = 12_596_224  # 4 x (1024x1024 + 1024) + 2 LayerNorms + fc1 + fc2
CLIP_POST_LAYERNORM_PARAMETERS = 2_048


def _config_fields(config: Phi3VConfig) -> dict:
    fields = config.to_dict()
    for key in ("_name_or_path", "transformers_version", "dtype", "architectures", "auto_map"):
        fields.pop(key, None)
    return fields


@pytest.mark.parametrize(
    ("fixture", "preset", "sliding_window"),
    [
        ("reference_dir", "phi-3.5-vision-instruct", 262144),
        ("reference_dir_128k", "phi-3-vision-128k-instruct", 131072),
    ],
)
def test_hub_config_json_reads_as_the_preset(request, fixture, preset, sliding_window):
    hub = json.loads((request.getfixturevalue(fixture) / "config.json").read_text())
    config = Phi3VConfig(**hub)
    assert config.rope_parameters["rope_type"] == "longrope"
    assert config.rope_parameters["short_factor"] == hub["rope_scaling"]["short_factor"]
    assert config.rope_parameters["long_factor"] == hub["rope_scaling"]["long_factor"]
    assert config.rope_parameters["original_max_position_embeddings"] == 4096
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size, config.sliding_window) == (
        3072,
        32,
        32064,
        sliding_window,
    )
    assert (config.vision_config.hidden_size, config.vision_config.num_hidden_layers) == (1024, 24)
    assert config.vision_config.hidden_act == "quick_gelu"
    assert (config.layer_idx, config.num_vision_layers_used, config.hd_transform_order) == (-2, 23, "sub_glb")
    assert _config_fields(config) == _config_fields(size_config(preset))


def test_hub_flash_attention_request_falls_back_without_flash_attn(reference_dir):
    hub = json.loads((reference_dir / "config.json").read_text())
    assert hub["_attn_implementation"] == "flash_attention_2"
    config = Phi3VConfig(**hub)
    assert config._attn_implementation == ("flash_attention_2" if is_flash_attn_2_available() else None)


def test_su_rope_scale_and_short_long_switch():
    config = size_config("phi-3.5-vision-instruct")
    rotary = Phi3RotaryEmbedding(config)
    assert rotary.attention_scaling == pytest.approx(math.sqrt(1 + math.log(32) / math.log(4096)))
    assert rotary.attention_scaling == pytest.approx(1.1902380714238083)
    exponent = torch.arange(0, 96, 2, dtype=torch.float32) / 96
    rope = config.rope_parameters
    expected = {
        4096: 1.0 / (torch.tensor(rope["short_factor"]) * 10000.0**exponent),
        4097: 1.0 / (torch.tensor(rope["long_factor"]) * 10000.0**exponent),
    }
    x = torch.zeros(1, 1, 96)
    for seq_len, inv_freq in expected.items():
        position = torch.tensor([[seq_len - 1]])
        cos, _ = rotary(x, position)
        angle = (seq_len - 1) * inv_freq
        assert torch.allclose(cos[0, 0, :48], torch.cos(angle) * rotary.attention_scaling, atol=1e-4)


def test_saved_config_keeps_the_hub_rope_keys():
    saved = size_config("phi-3.5-vision-instruct").to_dict()
    assert saved["rope_scaling"]["type"] == "su"
    assert len(saved["rope_scaling"]["long_factor"]) == 48
    assert saved["rope_theta"] == 10000.0
    assert _config_fields(Phi3VConfig(**saved)) == _config_fields(size_config("phi-3.5-vision-instruct"))


def test_vision_config_overrides_only_the_keys_given():
    config = Phi3VConfig(vision_config={"num_hidden_layers": 12})
    assert (config.vision_config.num_hidden_layers, config.vision_config.hidden_size) == (12, 1024)
    assert (config.vision_config.image_size, config.vision_config.patch_size) == (336, 14)
    assert config.num_vision_layers_used == 11


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"embd_layer": {"hd_transform_order": "glb_only"}}, "hd_transform_order must be one of"),
        ({"embd_layer": {"projection_cls": "linear"}}, "projection_cls must be 'mlp'"),
        ({"img_processor": {"image_dim_out": 768}}, "image_dim_out (768) must equal the CLIP hidden size (1024)"),
        ({"vision_config": {"image_size": 224}}, "336px crops as 24x24 patches"),
        ({"img_processor": {"type_feature": "cls_patch"}}, "type_feature must be 'patch'"),
        ({"img_processor": {"layer_idx": -30}}, "layer_idx -30 is outside the 24-layer vision tower"),
        ({"rope_scaling": {"type": "yarn", "short_factor": [1.0], "long_factor": [1.0]}}, "must be 'su'"),
        ({"rope_scaling": {"type": "su", "short_factor": [1.0] * 48}}, "lacks long_factor"),
    ],
)
def test_invalid_configs_are_rejected_with_the_reason(overrides, message):
    with pytest.raises(ModelConfigError) as excinfo:
        Phi3VConfig(**overrides)
    assert message in str(excinfo.value)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ModelConfigError, match="tiny"):
        size_config("phi-4")
    assert SIZE_NAMES == ("phi-3.5-vision-instruct", "phi-3-vision-128k-instruct", "tiny")


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_full_size_parameter_count():
    model = build_model("phi-3.5-vision-instruct", device="meta")
    vision = model.model.vision_embed_tokens
    lm = _count(model) - _count(vision)
    with torch.device("meta"):
        dropped_layer = _count(CLIPEncoderLayer(model.config.vision_config))
    assert dropped_layer == CLIP_LAYER_PARAMETERS
    assert lm == LM_PARAMETERS
    assert _count(vision.img_processor) == CLIP_PARAMETERS - CLIP_LAYER_PARAMETERS - CLIP_POST_LAYERNORM_PARAMETERS
    assert _count(vision.img_projection) == PROJECTION_PARAMETERS
    assert vision.glb_GN.numel() + vision.sub_GN.numel() == SEPARATOR_PARAMETERS
    assert _count(model) == 4_134_023_168
    assert _count(model) + CLIP_LAYER_PARAMETERS + CLIP_POST_LAYERNORM_PARAMETERS == HUB_TOTAL_PARAMETERS


def test_tiny_preset_is_a_few_megabytes_and_deterministic():
    first, second, other = build_model("tiny", seed=0), build_model("tiny", seed=0), build_model("tiny", seed=1)
    assert _count(first) == 4_253_568
    assert all(
        torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    )
    assert not torch.equal(first.lm_head.weight, other.lm_head.weight)
