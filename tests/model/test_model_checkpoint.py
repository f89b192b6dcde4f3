"""save_pretrained / from_pretrained in the hub key layout, and loading through the Auto classes."""

import json

import pytest
import torch
from model_inputs import image_batch, prompt_ids
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM

import phi3v_train
from phi3v_train.model.modeling import Phi3VForCausalLM

HUB_AUTO_MAP = {
    "AutoConfig": "configuration_phi3_v.Phi3VConfig",
    "AutoModelForCausalLM": "modeling_phi3_v.Phi3VForCausalLM",
}
VISION = "model.vision_embed_tokens."
CLIP = VISION + "img_processor.vision_model."


def _hub_keys(num_lm_layers: int, num_clip_layers: int) -> set[str]:
    """The hub checkpoint's key names, written out by hand from SPEC section 2."""
    keys = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for n in range(num_lm_layers):
        for name in ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"):
            keys.add(f"model.layers.{n}.{name}.weight")
        keys |= {f"model.layers.{n}.input_layernorm.weight", f"model.layers.{n}.post_attention_layernorm.weight"}
    keys |= {
        CLIP + "embeddings.class_embedding",
        CLIP + "embeddings.patch_embedding.weight",
        CLIP + "embeddings.position_embedding.weight",
        CLIP + "pre_layrnorm.weight",
        CLIP + "pre_layrnorm.bias",
        CLIP + "post_layernorm.weight",
        CLIP + "post_layernorm.bias",
    }
    for n in range(num_clip_layers):
        for name in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.out_proj",
            "layer_norm1",
            "layer_norm2",
            "mlp.fc1",
            "mlp.fc2",
        ):
            keys |= {f"{CLIP}encoder.layers.{n}.{name}.weight", f"{CLIP}encoder.layers.{n}.{name}.bias"}
    for n in (0, 2):
        keys |= {f"{VISION}img_projection.{n}.weight", f"{VISION}img_projection.{n}.bias"}
    return keys | {VISION + "glb_GN", VISION + "sub_GN"}


def _image_inputs() -> dict[str, torch.Tensor]:
    pixel_values, image_sizes = image_batch([(1, 2)], num_crops=2)
    return {
        "input_ids": torch.tensor([prompt_ids([(1, 2)], [3869, 32007])]),
        "pixel_values": pixel_values,
        "image_sizes": image_sizes,
    }


def _logits(model: Phi3VForCausalLM, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def _as_hub_checkpoint(folder, *, with_wte: bool) -> None:
    """Rewrite a saved tiny model as the hub ships it: hub config.json (auto_map, flash-attn request,
    su rope), values of its own in the CLIP tensors this model does not run (last layer, post-norm),
    optionally the wte alias."""
    config = json.loads((folder / "config.json").read_text())
    config.pop("rope_parameters")
    config.update(auto_map=HUB_AUTO_MAP, _attn_implementation="flash_attention_2", torch_dtype="float32")
    (folder / "config.json").write_text(json.dumps(config))
    weights = load_file(folder / "model.safetensors")
    generator = torch.Generator().manual_seed(3)
    for name, shape in (("post_layernorm.weight", (32,)), ("post_layernorm.bias", (32,))):
        weights[CLIP + name] = torch.randn(shape, generator=generator)
    for key in [k for k in weights if k.startswith(CLIP + "encoder.layers.1.")]:
        weights[key.replace("layers.1.", "layers.2.")] = torch.randn(weights[key].shape, generator=generator)
    if with_wte:
        weights[VISION + "wte.weight"] = weights["model.embed_tokens.weight"].clone()
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def test_save_writes_exactly_the_hub_layout(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert set(saved) == _hub_keys(num_lm_layers=2, num_clip_layers=3)
    assert saved[VISION + "glb_GN"].shape == (1, 1, 128)
    assert saved[VISION + "sub_GN"].shape == (1, 1, 1, 128)
    assert saved["model.layers.0.self_attn.qkv_proj.weight"].shape == (3 * 64, 64)
    assert saved["model.layers.0.mlp.gate_up_proj.weight"].shape == (2 * 128, 64)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "phi3_v"
    assert config["rope_scaling"]["type"] == "su"


def test_round_trip_gives_identical_logits(tiny_model, tmp_path):
    inputs = _image_inputs()
    tiny_model.save_pretrained(tmp_path)
    reloaded, info = Phi3VForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert (info["missing_keys"], info["unexpected_keys"]) == (set(), set())
    assert torch.equal(_logits(tiny_model.eval(), inputs), _logits(reloaded.eval(), inputs))


@pytest.mark.parametrize("with_wte", [False, True])
def test_hub_layout_loads_with_or_without_the_wte_alias(tiny_model, tmp_path, with_wte):
    inputs = _image_inputs()
    tiny_model.save_pretrained(tmp_path)
    _as_hub_checkpoint(tmp_path, with_wte=with_wte)
    assert (VISION + "wte.weight" in load_file(tmp_path / "model.safetensors")) is with_wte
    reloaded, info = Phi3VForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert (info["missing_keys"], info["unexpected_keys"], info["mismatched_keys"]) == (set(), set(), set())
    assert torch.equal(_logits(tiny_model.eval(), inputs), _logits(reloaded.eval(), inputs))
    resaved = tmp_path / "resaved"
    reloaded.save_pretrained(resaved)
    source, carried = load_file(tmp_path / "model.safetensors"), load_file(resaved / "model.safetensors")
    assert set(carried) == _hub_keys(num_lm_layers=2, num_clip_layers=3)
    unused = [k for k in source if k.startswith((CLIP + "post_layernorm.", CLIP + "encoder.layers.2."))]
    assert len(unused) == 18
    for key in unused:
        assert torch.equal(carried[key], source[key]), key
    trainable = {name for name, _ in reloaded.named_parameters()}
    assert not trainable & {"model." + k.removeprefix("model.") for k in unused}


def test_auto_classes_load_the_hub_config_without_remote_code(tiny_model, tmp_path):
    assert phi3v_train.Phi3VForCausalLM is Phi3VForCausalLM
    tiny_model.save_pretrained(tmp_path)
    _as_hub_checkpoint(tmp_path, with_wte=False)
    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config).__name__ == "Phi3VConfig"
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(model) is Phi3VForCausalLM
    assert model.config._attn_implementation == "sdpa"
    assert model.config.vision_config._attn_implementation == "sdpa"


def test_from_pretrained_takes_dtype_and_attention(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16, attn_implementation="eager")
    assert model.config._attn_implementation == "eager"
    assert model.config.vision_config._attn_implementation == "eager"
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    logits = _logits(model, _image_inputs())
    assert logits.dtype == torch.bfloat16
    assert torch.isfinite(logits).all()
