"""The vLLM general plugin, tested without vLLM: a fresh process loads it through its entry point, then
reads an export (and the hub reference folder) with the plain transformers Auto classes, checking what
vLLM's ``phi3v.py`` reads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from phi3v_train.export import export_loaded
from phi3v_train.model.sizes import build_model
from phi3v_train.model.tiny_tokenizer import tiny_processor

# vLLM's Phi3VForCausalLM.hf_to_vllm_mapper (vllm/model_executor/models/phi3v.py), first match wins.
VLLM_PREFIX_MAP = (
    ("model.vision_embed_tokens.wte", "embed_tokens"),
    ("model.vision_embed_tokens.", "vision_embed_tokens."),
    ("lm_head.", "language_model.lm_head."),
    ("model.", "language_model.model."),
)
# The names vLLM's module tree holds (Llama language model, CLIP tower, HD projector).
CLIP = r"vision_embed_tokens\.img_processor\.vision_model\."
VLLM_NAMES = re.compile(
    r"^(?:embed_tokens\.weight"
    r"|language_model\.lm_head\.weight"
    r"|language_model\.model\.(?:embed_tokens\.weight|norm\.weight"
    r"|layers\.\d+\.(?:self_attn\.(?:qkv_proj|o_proj)|mlp\.(?:gate_up_proj|down_proj)"
    r"|input_layernorm|post_attention_layernorm)\.weight)"
    rf"|{CLIP}(?:embeddings\.(?:class_embedding|patch_embedding\.weight|position_embedding\.weight)"
    r"|(?:pre_layrnorm|post_layernorm)\.(?:weight|bias)"
    r"|encoder\.layers\.\d+\.(?:self_attn\.(?:q_proj|k_proj|v_proj|out_proj)|layer_norm1|layer_norm2|mlp\.fc1|mlp\.fc2)"
    r"\.(?:weight|bias))"
    r"|vision_embed_tokens\.(?:glb_GN|sub_GN|img_projection\.[02]\.(?:weight|bias)))$"
)

CHILD = textwrap.dedent(
    """
    import json, sys
    from importlib.metadata import entry_points

    assert not any(name.split(".")[0] == "phi3v_train" for name in sys.modules)
    plugins = {ep.name: ep for ep in entry_points(group="vllm.general_plugins")}
    register = plugins["phi3v"].load()
    register()
    register()

    import torch
    from PIL import Image
    from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, AutoTokenizer
    from transformers.processing_utils import ProcessorMixin

    folder = sys.argv[1]
    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    processor_16 = AutoProcessor.from_pretrained(folder, num_crops=16)
    image_processor = AutoImageProcessor.from_pretrained(folder)
    prompt = "<|user|>\\n<|image_1|>\\nWhat is shown?<|end|>\\n<|assistant|>\\n"
    image = Image.new("RGB", (640, 480), (10, 200, 30))
    out = processor(text=prompt, images=[image], return_tensors="pt")
    print(json.dumps({
        "config_class": type(config).__name__,
        "architectures": config.architectures,
        "img_processor": config.img_processor,
        "embd_layer": config.embd_layer,
        "tie_word_embeddings": config.tie_word_embeddings,
        "hidden_size": getattr(config, "n_embd", config.hidden_size),
        "vocab_size": config.vocab_size,
        "processor_class": type(processor).__name__,
        "is_processor_mixin": isinstance(processor, ProcessorMixin),
        "image_processor_class": type(image_processor).__name__,
        "tokens_4": processor.calc_num_image_tokens_from_image_size(width=640, height=480),
        "tokens_16": processor_16.calc_num_image_tokens_from_image_size(width=640, height=480),
        "img_tokens": processor.img_tokens[:2],
        "img_token_2": processor.img_tokens[1],
        "input_ids_is_tensor": isinstance(out["input_ids"], torch.Tensor),
        "image_positions": int((out["input_ids"] < 0).sum()),
        "pixel_values": list(out["pixel_values"].shape),
        "image_sizes": out["image_sizes"].tolist(),
        "pixel_values_16": list(processor_16(text=prompt, images=[image])["pixel_values"].shape),
        "tokenizer_ids": tokenizer("<|user|>\\nhi<|end|>\\n<|assistant|>\\n")["input_ids"],
        "special_tokens": [tokenizer.bos_token, tokenizer.convert_tokens_to_ids("<|image|>")],
        "phi3v_imported_by_plugin": "phi3v_train.model" in sys.modules,
    }))
    """
)


def run_fresh(folder: Path, reference_root: Path | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": ""}
    if reference_root is not None:
        env["PHI3V_REFERENCE_DIR"] = str(reference_root)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True, env=env, cwd=folder, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_vllm_fields(result: dict) -> None:
    assert result["config_class"] == "Phi3VConfig"
    assert result["architectures"] == ["Phi3VForCausalLM"]
    assert result["img_processor"]["image_dim_out"] > 0 and result["img_processor"]["num_img_tokens"] == 144
    assert result["img_processor"].get("layer_idx", -2) == -2
    embd = result["embd_layer"]
    assert embd["use_hd_transform"] is True and embd["with_learnable_separator"] is True
    assert embd["hd_transform_order"] == "sub_glb"
    assert result["tie_word_embeddings"] is False
    assert result["processor_class"] == "Phi3VProcessor" and result["is_processor_mixin"] is True
    assert result["image_processor_class"] == "Phi3VImageProcessor"
    assert (result["tokens_4"], result["tokens_16"]) == (757, 1921)
    assert result["img_tokens"] == ["<|image_1|>", "<|image_2|>"] and result["img_token_2"] == "<|image_2|>"
    assert result["input_ids_is_tensor"] is True and result["image_positions"] == 757
    assert result["pixel_values"] == [1, 5, 3, 336, 336] and result["image_sizes"] == [[672, 672]]
    assert result["pixel_values_16"] == [1, 17, 3, 336, 336]
    assert result["special_tokens"] == ["<s>", 32044]
    assert result["phi3v_imported_by_plugin"] is True


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = build_model("tiny", seed=0)
    model.config.auto_map = {
        "AutoConfig": "microsoft/Phi-3.5-vision-instruct--configuration_phi3_v.Phi3VConfig",
        "AutoModelForCausalLM": "microsoft/Phi-3.5-vision-instruct--modeling_phi3_v.Phi3VForCausalLM",
    }
    out = tmp_path_factory.mktemp("serve") / "export"
    export_loaded(model, tiny_processor(num_crops=4), out, source="tiny")
    return out


def test_plugin_entry_point_makes_the_export_load_with_plain_auto_classes(exported: Path) -> None:
    result = run_fresh(exported)
    check_vllm_fields(result)
    assert result["tokenizer_ids"] == tiny_processor().tokenizer("<|user|>\nhi<|end|>\n<|assistant|>\n")["input_ids"]


def test_plugin_loads_the_hub_reference_folder(reference_dir: Path) -> None:
    result = run_fresh(reference_dir, reference_dir.parent)
    check_vllm_fields(result)
    assert result["tokenizer_ids"] == [1, 32010, 29871, 13, 2918, 32007, 29871, 13, 32001]
    reference = PreTrainedTokenizerFast.from_pretrained(reference_dir)
    assert result["tokenizer_ids"] == reference("<|user|>\nhi<|end|>\n<|assistant|>\n")["input_ids"]


def test_exported_weight_names_map_onto_vllm_modules(exported: Path) -> None:
    from safetensors import safe_open

    with safe_open(exported / "model.safetensors", "pt") as weights:
        keys = set(weights.keys())
    assert "lm_head.weight" in keys
    assert not [k for k in keys if "lora" in k or "base_layer" in k or "modules_to_save" in k]
    mapped = set()
    for key in keys:
        prefix, target = next((p, t) for p, t in VLLM_PREFIX_MAP if key.startswith(p))
        mapped.add(target + key.removeprefix(prefix))
    assert sorted(name for name in mapped if not VLLM_NAMES.match(name)) == []
    assert "language_model.lm_head.weight" in mapped
    assert "vision_embed_tokens.img_processor.vision_model.post_layernorm.weight" in mapped


def test_plugin_register_is_idempotent() -> None:
    from transformers import AutoConfig

    from phi3v_train.vllm_plugin import register

    register()
    register()
    assert type(AutoConfig.for_model("phi3_v")).__name__ == "Phi3VConfig"
