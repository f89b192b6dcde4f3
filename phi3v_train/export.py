"""Export a trained model as a standalone checkpoint in the hub layout, optionally merging its LoRA adapter.

The folder written holds ``config.json`` (the hub's fields, ``model_type: phi3_v``, architecture
``Phi3VForCausalLM``, ``dtype`` and ``torch_dtype``), ``model.safetensors`` with exactly the source
checkpoint's key names and shapes (fused ``qkv_proj``/``gate_up_proj``, the CLIP tensors the model
does not run carried through), ``generation_config.json`` stopping at ``<|end|>`` and
``<|endoftext|>``, the processor files (a ``tokenizer_config.json`` that transformers 4.x and 5.x
both load, chat template, ``preprocessor_config.json``/``processor_config.json`` with ``num_crops``)
and ``phi3v_export.json`` (what was exported, and the verification result).

When the base model came from the hub, every ``auto_map`` points at that repository's remote code
(``microsoft/Phi-3.5-vision-instruct--configuration_phi3_v.Phi3VConfig``, ...), so
``trust_remote_code`` users of transformers 4.x get the hub code; otherwise there is no ``auto_map``.
phi3v users (``import phi3v_train.model``) and vLLM (with the plugin, :mod:`phi3v_train.vllm_plugin`)
get the native classes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from phi3v_data.io import atomic_write_text
from phi3v_train.errors import ExportError
from phi3v_train.evaluation.generation import SpecialIds, collate_left_padded, model_device
from phi3v_train.evaluation.predict import PromptTurn

EXPORT_INFO_FILE = "phi3v_export.json"
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_IMAGE_PROCESSING_MODULES = {"microsoft/Phi-3-vision-128k-instruct": "image_processing_phi3_v"}
"""Hub repos whose image processor lives in its own module (Phi-3.5-vision has both in processing_phi3_v)."""
DEFAULT_TOLERANCE = {torch.float32: 1e-3, torch.bfloat16: 5e-2, torch.float16: 1e-2}
SYNTHETIC_PROMPTS = (
    ("Describe the picture in one sentence.", 1),
    ("Answer with one word: is the sky blue?", 0),
)


@dataclass
class ExportResult:
    out_dir: Path
    merged: bool
    num_crops: int
    max_abs_diff: float | None = None
    tolerance: float | None = None
    hub_url: str | None = None


def _is_peft_model(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def synthetic_image(width: int = 96, height: int = 64) -> Image.Image:
    """A deterministic colour gradient, so verification exercises the vision path without any data."""
    xs = np.arange(width)[None, :].repeat(height, axis=0)
    ys = np.arange(height)[:, None].repeat(width, axis=1)
    rgb = np.stack([xs * 255 // width, ys * 255 // height, (xs + ys) * 127 // (width + height)], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8), mode="RGB")


def verification_samples(processor: Any, records: Sequence[Any] | None, image_root: Path | None) -> list[Any]:
    """Encoded samples to compare logits on: whole conversations of ``records``, or synthetic prompts."""
    if records:
        from phi3v_train.data.image_loading import load_images

        return [
            processor.encode_conversation(record.conversations, load_images(record, image_root or Path()))
            for record in records
        ]
    samples = []
    for text, image_count in SYNTHETIC_PROMPTS:
        images = [synthetic_image() for _ in range(image_count)]
        turn = PromptTurn(user=text, images=tuple(str(n) for n in range(image_count)))
        samples.append(processor.encode_conversation([turn], images, for_generation=True))
    return samples


@torch.no_grad()
def sample_logits(model: Any, samples: Sequence[Any], pad_id: int) -> list[torch.Tensor]:
    """Float32 logits of every sample, one forward each."""
    model.eval()
    logits = []
    for sample in samples:
        batch = collate_left_padded([sample], pad_id, model_device(model))
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
        logits.append(model(**batch).logits[0].float().cpu())
    return logits


def max_abs_difference(reference: Sequence[torch.Tensor], exported: Sequence[torch.Tensor]) -> float:
    return max(float((a - b).abs().max()) for a, b in zip(reference, exported, strict=True))


def hub_code_repo(config: Any, source: str) -> str | None:
    """The hub repository whose remote code the export's ``auto_map`` should name, if the base came from the hub.

    An ``auto_map`` already pointing at a repository (``repo--module.Class``, as transformers writes
    it for hub loads) names it; a hub-style ``auto_map`` of a model loaded by hub id names that id.
    """
    auto_map = getattr(config, "auto_map", None) or {}
    for reference in auto_map.values():
        if isinstance(reference, str) and "--" in reference:
            return reference.split("--")[0]
    for candidate in (source, getattr(config, "_name_or_path", "")):
        if auto_map and HUB_ID_RE.match(str(candidate)) and not Path(str(candidate)).exists():
            return str(candidate)
    return None


def hub_auto_maps(repo: str) -> dict[str, dict[str, str]]:
    """The ``auto_map`` of each exported file, pointing at ``repo``'s remote code."""
    image_module = HUB_IMAGE_PROCESSING_MODULES.get(repo, "processing_phi3_v")
    processor = f"{repo}--processing_phi3_v.Phi3VProcessor"
    return {
        "config.json": {
            "AutoConfig": f"{repo}--configuration_phi3_v.Phi3VConfig",
            "AutoModelForCausalLM": f"{repo}--modeling_phi3_v.Phi3VForCausalLM",
        },
        "preprocessor_config.json": {
            "AutoImageProcessor": f"{repo}--{image_module}.Phi3VImageProcessor",
            "AutoProcessor": processor,
        },
        "processor_config.json": {"AutoProcessor": processor},
        "tokenizer_config.json": {"AutoProcessor": processor},
    }


def _add_to_json(path: Path, values: dict[str, Any]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(values)
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _clean_model_config(model: Any, special: SpecialIds, bos_id: int, hub_repo: str | None) -> None:
    """``auto_map`` at the hub repo's code (or none); generation stops at ``<|end|>``/``<|endoftext|>``."""
    config = model.config
    if hub_repo is not None:
        config.auto_map = hub_auto_maps(hub_repo)["config.json"]
    elif getattr(config, "auto_map", None) is not None:
        del config.auto_map
    config.architectures = [type(model).__name__]
    generation = model.generation_config
    generation.eos_token_id = list(special.stop)
    generation.pad_token_id = special.pad
    generation.bos_token_id = bos_id


def _staging_dir(out_dir: Path) -> Path:
    staging = out_dir.parent / f".{out_dir.name}.incomplete"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if Path(out_dir).exists() and not overwrite:
        raise ExportError(f"{out_dir} already exists; choose another --out or pass --overwrite")


def _move_into_place(staging: Path, out_dir: Path, overwrite: bool) -> None:
    check_out_dir(out_dir, overwrite)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)


def export_loaded(
    model: Any,
    processor: Any,
    out_dir: Path,
    *,
    source: str,
    merge: bool = False,
    verify: bool = False,
    records: Sequence[Any] | None = None,
    image_root: Path | None = None,
    tolerance: float | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Exports an already loaded model (a ``PeftModel`` with ``merge``) into ``out_dir``.

    The folder appears only complete: it is written beside ``out_dir`` and renamed at the end, and
    not at all when verification fails.
    """
    from phi3v_train.model.modeling import Phi3VForCausalLM

    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite)
    is_adapter = _is_peft_model(model)
    if is_adapter and not merge:
        raise ExportError(
            f"{source} is a LoRA/DoRA adapter; pass --merge to fold it (and any saved non-LoRA weights) "
            "into the base weights, the only form servers load"
        )
    special = SpecialIds.from_tokenizer(processor.tokenizer)
    samples = verification_samples(processor, records, image_root) if verify else []
    reference = sample_logits(model, samples, special.pad) if verify else []
    if is_adapter:
        model = model.merge_and_unload()
    if not isinstance(model, Phi3VForCausalLM):
        raise ExportError(f"{source} loaded as {type(model).__name__}, not a Phi3VForCausalLM; cannot export it")
    hub_repo = hub_code_repo(model.config, source)
    _clean_model_config(model, special, processor.tokenizer.bos_token_id, hub_repo)
    staging = _staging_dir(out_dir)
    try:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        _add_to_json(staging / "config.json", {"torch_dtype": str(model.dtype).removeprefix("torch.")})
        if hub_repo is not None:
            for filename, auto_map in hub_auto_maps(hub_repo).items():
                if filename != "config.json":
                    _add_to_json(staging / filename, {"auto_map": auto_map})
        result = ExportResult(out_dir=out_dir, merged=is_adapter, num_crops=processor.num_crops)
        if verify:
            exported = Phi3VForCausalLM.from_pretrained(staging, dtype=model.dtype).to(model_device(model))
            result.max_abs_diff = max_abs_difference(reference, sample_logits(exported, samples, special.pad))
            result.tolerance = tolerance if tolerance is not None else DEFAULT_TOLERANCE.get(model.dtype, 1e-2)
            if not result.max_abs_diff <= result.tolerance:
                raise ExportError(
                    f"the exported model's logits differ from {source}'s by up to {result.max_abs_diff:.3g} "
                    f"(tolerance {result.tolerance:g}) on {len(samples)} sample(s); the export was not written"
                )
        info = {
            "source": source,
            "merged": result.merged,
            "num_crops": result.num_crops,
            "dtype": str(model.dtype).removeprefix("torch."),
            "verify": None
            if not verify
            else {"samples": len(samples), "max_abs_diff": result.max_abs_diff, "tolerance": result.tolerance},
        }
        atomic_write_text(staging / EXPORT_INFO_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")
        _move_into_place(staging, out_dir, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def push_folder_to_hub(folder: Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Creates ``repo_id`` (if needed) and uploads ``folder`` to it; returns the repo URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="Upload Phi-3(.5)-vision export")
    return str(url)


def export_model(
    model_dir: str,
    out_dir: Path,
    *,
    merge: bool = False,
    verify: bool = False,
    push_to_hub: str | None = None,
    private: bool = False,
    data: Path | None = None,
    image_root: Path | None = None,
    num_samples: int = 2,
    num_crops: int | None = None,
    dtype: torch.dtype | None = None,
    tolerance: float | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Loads ``model_dir`` (a run folder, checkpoint, hub id or preset) and exports it to ``out_dir``.

    ``verify`` compares logits on the first ``num_samples`` records of ``data`` (whole conversations),
    or on synthetic prompts, before and after the export. ``push_to_hub`` uploads the folder afterwards.
    """
    from phi3v_train.loading import load_model_and_processor

    check_out_dir(out_dir, overwrite)
    records = None
    if verify and data is not None:
        from phi3v_data.paths import default_image_root
        from phi3v_train.data.records import load_records

        records = load_records(data)[:num_samples]
        image_root = image_root or default_image_root(data)
    model, processor = load_model_and_processor(model_dir, num_crops=num_crops, dtype=dtype)
    result = export_loaded(
        model,
        processor,
        out_dir,
        source=str(model_dir),
        merge=merge,
        verify=verify,
        records=records,
        image_root=image_root,
        tolerance=tolerance,
        overwrite=overwrite,
    )
    if push_to_hub is not None:
        result.hub_url = push_folder_to_hub(result.out_dir, push_to_hub, private=private)
    return result
