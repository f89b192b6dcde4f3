"""export: LoRA/DoRA merge with saved non-LoRA weights, hub layout, reload, verification, hub upload call."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors import safe_open
from transformers import AutoModelForCausalLM

import phi3v_train
from phi3v_train import export as export_module
from phi3v_train.errors import ExportError
from phi3v_train.export import export_loaded, push_folder_to_hub, sample_logits, verification_samples
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
