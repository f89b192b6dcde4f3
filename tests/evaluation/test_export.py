"""export: LoRA/DoRA merge with saved non-LoRA weights, hub layout, reload, verification, hub upload call."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

import phi3v_train
from phi3v_train import export as export_module
from phi3v_train.errors import ExportError
from phi3v_train.export import export_loaded, push_folder_to_hub, sample_logits, verification_samples
from phi3v_train.model.processing import Phi3VProcessor
from phi3v_train.model.sizes import build_model

TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head", "q_proj", "k_proj", "v_proj", "fc1"]


def adapter_model(use_dora: bool = False):
    """The tiny model with random (non-zero) LoRA weights and a trained, saved projector copy."""
    base = build_model("tiny", seed=0)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=TARGETS,
        modules_to_save=["img_projection"],
        init_lora_weights=False,
        use_dora=use_dora,
    )
    torch.manual_seed(1)
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "modules_to_save" in name:
                parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


@pytest.mark.parametrize("use_dora", [False, True])
def test_merge_export_reloads_with_the_adapter_logits(processor, tmp_path, use_dora: bool) -> None:
    model = adapter_model(use_dora)
    model.base_model.model.config.auto_map = {"AutoModelForCausalLM": "modeling_phi3_v.Phi3VForCausalLM"}
    samples = verification_samples(processor, None, None)
    reference = sample_logits(model, samples, 32000)
    base_logits = sample_logits(build_model("tiny", seed=0), samples, 32000)
    assert max(float((a - b).abs().max()) for a, b in zip(reference, base_logits, strict=True)) > 1e-2

    out = tmp_path / "merged"
    result = export_loaded(model, processor, out, source="run", merge=True, verify=True)
    assert result.merged and result.num_crops == 1
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4

    for loaded in (
        phi3v_train.Phi3VForCausalLM.from_pretrained(out),
        AutoModelForCausalLM.from_pretrained(out),
    ):
        assert type(loaded) is phi3v_train.Phi3VForCausalLM
        for got, want in zip(sample_logits(loaded, samples, 32000), reference, strict=True):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)

    config = json.loads((out / "config.json").read_text())
    assert "auto_map" not in config
    assert config["model_type"] == "phi3_v" and config["architectures"] == ["Phi3VForCausalLM"]
    assert json.loads((out / "preprocessor_config.json").read_text())["num_crops"] == 1
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [32007, 32000] and generation["pad_token_id"] == 32000
    info = json.loads((out / "phi3v_export.json").read_text())
    assert info["merged"] is True and info["num_crops"] == 1 and info["verify"]["samples"] == 2
    with safe_open(out / "model.safetensors", "pt") as weights:
        keys = set(weights.keys())
    assert "model.layers.0.self_attn.qkv_proj.weight" in keys
    assert "model.layers.1.mlp.gate_up_proj.weight" in keys
    assert "model.vision_embed_tokens.img_projection.0.weight" in keys
    assert not [k for k in keys if "lora" in k or "base_layer" in k or "modules_to_save" in k]
    assert not list(tmp_path.glob(".*incomplete"))


def test_adapter_without_merge_is_refused(processor, tmp_path) -> None:
    with pytest.raises(ExportError, match="pass --merge"):
        export_loaded(adapter_model(), processor, tmp_path / "out", source="run")
    assert not (tmp_path / "out").exists()


def test_failed_verification_writes_nothing(processor, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(export_module, "max_abs_difference", lambda reference, exported: 0.5)
    with pytest.raises(ExportError, match=r"differ from run's by up to 0\.5 \(tolerance 0\.001\)"):
        export_loaded(adapter_model(), processor, tmp_path / "out", source="run", merge=True, verify=True)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(processor, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("x")
    with pytest.raises(ExportError, match="already exists"):
        export_loaded(build_model("tiny", seed=0), processor, out, source="tiny")
    assert (out / "old.txt").exists()
    export_loaded(build_model("tiny", seed=0), processor, out, source="tiny", overwrite=True)
    assert not (out / "old.txt").exists() and (out / "model.safetensors").is_file()


def test_push_to_hub_calls_the_upload_api(tmp_path, monkeypatch) -> None:
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, token=None) -> None:
            calls.append(("init", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = push_folder_to_hub(tmp_path, "me/phi35v-demo", private=True)
    assert url == "https://huggingface.co/me/phi35v-demo"
    assert calls[1] == ("create_repo", "me/phi35v-demo", {"private": True, "exist_ok": True})
    assert calls[2][1]["repo_id"] == "me/phi35v-demo" and calls[2][1]["folder_path"] == str(tmp_path)


HUB_REPO = "microsoft/Phi-3.5-vision-instruct"
HUB_MAP = {
    "AutoConfig": f"{HUB_REPO}--configuration_phi3_v.Phi3VConfig",
    "AutoModelForCausalLM": f"{HUB_REPO}--modeling_phi3_v.Phi3VForCausalLM",
}
TF448_PYTHON = Path(os.environ.get("PHI3V_TF448_PYTHON", "/tmp/tf448/bin/python"))


def hub_like_checkpoint(folder: Path) -> Path:
    """The tiny model saved as the hub ships Phi-3.5-vision: every hub key (CLIP's unused last layer and
    post-norm with values of their own) and a hub config.json loaded from the hub (prefixed auto_map)."""
    model = build_model("tiny", seed=0)
    model.save_pretrained(folder)
    weights = load_file(folder / "model.safetensors")
    generator = torch.Generator().manual_seed(5)
    clip = "model.vision_embed_tokens.img_processor.vision_model."
    for key in [k for k in weights if k.startswith((clip + "post_layernorm.", clip + "encoder.layers.2."))]:
        weights[key] = torch.randn(weights[key].shape, generator=generator)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = HUB_MAP
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_export_holds_every_source_tensor_and_hub_metadata(processor, tmp_path) -> None:
    source = hub_like_checkpoint(tmp_path / "source")
    out = tmp_path / "export"
    export_loaded(phi3v_train.Phi3VForCausalLM.from_pretrained(source), processor, out, source=str(source))
    before, after = load_file(source / "model.safetensors"), load_file(out / "model.safetensors")
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in before.items()}
    assert all(torch.equal(after[key], before[key]) for key in before)
    assert len([k for k in after if "post_layernorm" in k or ".encoder.layers.2." in k]) == 18

    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"] == HUB_MAP
    assert config["torch_dtype"] == config["dtype"] == "float32"
    assert config["tie_word_embeddings"] is False
    assert config["embd_layer"]["hd_transform_order"] == "sub_glb"
    assert config["img_processor"]["num_img_tokens"] == 144
    assert config["rope_scaling"]["type"] == "su"
    processor_map = f"{HUB_REPO}--processing_phi3_v.Phi3VProcessor"
    preprocessor = json.loads((out / "preprocessor_config.json").read_text())
    assert preprocessor["auto_map"] == {
        "AutoImageProcessor": f"{HUB_REPO}--processing_phi3_v.Phi3VImageProcessor",
        "AutoProcessor": processor_map,
    }
    assert (preprocessor["processor_class"], preprocessor["num_crops"], preprocessor["num_img_tokens"]) == (
        "Phi3VProcessor",
        1,
        144,
    )
    assert json.loads((out / "processor_config.json").read_text()) == {
        "auto_map": {"AutoProcessor": processor_map},
        "num_crops": 1,
        "processor_class": "Phi3VProcessor",
    }
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    assert tokenizer_config["auto_map"] == {"AutoProcessor": processor_map}


def test_export_without_a_hub_base_has_no_auto_map(processor, tmp_path) -> None:
    export_loaded(build_model("tiny", seed=0), processor, tmp_path / "out", source="tiny")
    for name in ("config.json", "preprocessor_config.json", "processor_config.json", "tokenizer_config.json"):
        assert "auto_map" not in json.loads((tmp_path / "out" / name).read_text()), name


def test_tokenizer_config_has_the_fields_transformers_4_needs(reference_dir, tmp_path) -> None:
    source = Phi3VProcessor.from_pretrained(reference_dir)
    source.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "tokenizer_config.json").read_text())
    hub = json.loads((reference_dir / "tokenizer_config.json").read_text())
    assert saved["tokenizer_class"] == "LlamaTokenizer"
    assert saved["added_tokens_decoder"] == hub["added_tokens_decoder"]
    assert saved["additional_special_tokens"] == hub["additional_special_tokens"]
    assert "extra_special_tokens" not in saved
    for key in ("bos_token", "eos_token", "pad_token", "unk_token", "chat_template", "add_bos_token", "add_eos_token"):
        assert saved[key] == hub[key], key
    text = "<|user|>\n<|image_1|>\nWhat is shown?<|end|>\n<|assistant|>\nYes<|end|>\n<|endoftext|>"
    for loaded in (
        PreTrainedTokenizerFast.from_pretrained(tmp_path),
        Phi3VProcessor.from_pretrained(tmp_path).tokenizer,
    ):
        assert loaded(text)["input_ids"] == source.tokenizer(text)["input_ids"]


@pytest.mark.skipif(not TF448_PYTHON.is_file(), reason=f"no transformers 4.48 environment at {TF448_PYTHON}")
def test_transformers_4_48_loads_the_saved_tokenizer_with_the_same_ids(reference_dir, tmp_path) -> None:
    source = Phi3VProcessor.from_pretrained(reference_dir)
    source.save_pretrained(tmp_path)
    text = "<|user|>\n<|image_1|>\nWhat is shown?<|end|>\n<|assistant|>\nYes<|end|>\n<|endoftext|>"
    script = (
        "import json, sys, transformers\n"
        "from transformers import AutoTokenizer, LlamaTokenizerFast\n"
        "assert transformers.__version__ == '4.48.0', transformers.__version__\n"
        "folder, text = sys.argv[1], sys.argv[2]\n"
        "auto = AutoTokenizer.from_pretrained(folder)\n"
        "fast = LlamaTokenizerFast.from_pretrained(folder)\n"
        "messages = [{'role': 'user', 'content': 'hi'}]\n"
        "chat = auto.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)\n"
        "print(json.dumps([type(auto).__name__, auto(text).input_ids, fast(text).input_ids, chat,"
        " auto.additional_special_tokens]))\n"
    )
    done = subprocess.run([str(TF448_PYTHON), "-c", script, str(tmp_path), text], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    name, auto_ids, fast_ids, chat, extra = json.loads(done.stdout.strip().splitlines()[-1])
    expected = source.tokenizer(text)["input_ids"]
    assert name == "LlamaTokenizerFast"
    assert auto_ids == fast_ids == expected
    assert chat == "<|user|>\nhi<|end|>\n<|assistant|>\n"
    assert extra == ["<|system|>", "<|end|>", "<|user|>", "<|end|>"]
