"""Loading a model and its processor from anything `--model` accepts.

``name_or_dir`` may be:

* a preset name (:data:`phi3v_train.model.sizes.SIZE_NAMES`): random weights from ``seed``. ``tiny``
  comes with the built-in tiny processor; full-size presets need ``tokenizer`` (a folder with the
  real tokenizer files, e.g. a download of ``microsoft/Phi-3.5-vision-instruct``);
* a hub id or a local checkpoint folder in the hub layout (``config.json``, safetensors, tokenizer and
  ``preprocessor_config.json``);
* the output folder of a `phi3v-train run` (or one of its ``checkpoint-N`` folders).

Layout of a run's output folder (``phi3v-train run --output-dir DIR``)::

    DIR/run_config.yaml            the resolved run configuration
    DIR/train_results.json         losses per logged step, steps, throughput, skipped records
    DIR/eval_metrics.json          task metric on --eval-file (when --eval-metric is given)
    DIR/logs/                      tensorboard event files
    DIR/checkpoint-<step>/         Trainer checkpoints (--save-steps): model or adapter, optimizer,
                                   scheduler, RNG and trainer state, plus processor files and, in LoRA
                                   modes, phi3v_base.json, so a checkpoint loads like DIR itself
    DIR/ (full mode)               config.json + model.safetensors (hub layout) + processor files
                                   (tokenizer, preprocessor_config.json with num_crops, chat template)
    DIR/ (lora, qlora)             adapter_config.json + adapter_model.safetensors (LoRA weights and the
                                   --also-train modules) + processor files + phi3v_base.json
    DIR/base_model/                the base weights, when the base was a random preset (so the
                                   adapter reloads onto exactly the weights it was trained on)

``phi3v_base.json`` is ``{"base_model": <hub id | absolute path | "base_model">, "preset": <name or
null>, "seed": S, "mode": "lora"|"qlora", "num_crops": N}``; a relative ``base_model`` is relative to
the folder holding the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from phi3v_train.errors import ConfigError, MissingDependencyError
from phi3v_train.model.modeling import Phi3VForCausalLM
from phi3v_train.model.processing import Phi3VProcessor
from phi3v_train.model.sizes import SIZE_NAMES, build_model
from phi3v_train.model.tiny_tokenizer import tiny_processor

BASE_FILE = "phi3v_base.json"
BASE_MODEL_FOLDER = "base_model"
ADAPTER_CONFIG_FILE = "adapter_config.json"
DEFAULT_TINY_CROPS = 4
VISION_SKIP_MODULES = ["model.vision_embed_tokens", "lm_head"]


def quantization_config(double_quant: bool = False, compute_dtype: torch.dtype | None = None):
    """The QLoRA ``BitsAndBytesConfig``: nf4, the vision tower, projector and lm_head left unquantised."""
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as exc:
        raise MissingDependencyError("QLoRA needs bitsandbytes: pip install 'phi3v[qlora]'") from exc
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=compute_dtype or torch.float32,
        llm_int8_skip_modules=VISION_SKIP_MODULES,
    )


def read_base_info(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / BASE_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def resolve_base(folder: Path, info: dict[str, Any]) -> str:
    """The base reference of an adapter folder: relative paths are relative to ``folder``."""
    base = str(info["base_model"])
    if base in SIZE_NAMES:
        return base
    candidate = Path(folder) / base
    return str(candidate) if candidate.exists() else base


def load_model_and_processor(
    name_or_dir: str | Path,
    *,
    num_crops: int | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str = "sdpa",
    quantization: str | None = None,
    double_quant: bool = False,
    compute_dtype: torch.dtype | None = None,
    seed: int = 0,
    tokenizer: str | Path | None = None,
    is_trainable: bool = False,
):
    """Returns ``(model, processor)``; for a LoRA run folder the model is a ``PeftModel``.

    ``quantization="4bit"`` loads the language model in nf4 (QLoRA). ``num_crops`` overrides the
    processor's saved value. ``is_trainable`` keeps a loaded adapter trainable.

    Raises:
        ConfigError: unknown name, unreadable folder, or a full-size preset without ``tokenizer``.
    """
    reference = str(name_or_dir)
    processor = load_processor(reference, tokenizer=tokenizer, num_crops=num_crops)
    model = load_model(
        reference,
        dtype=dtype,
        attn_implementation=attn_implementation,
        quantization=quantization,
        double_quant=double_quant,
        compute_dtype=compute_dtype,
        seed=seed,
        is_trainable=is_trainable,
    )
    return model, processor


def load_processor(
    name_or_dir: str | Path, *, tokenizer: str | Path | None = None, num_crops: int | None = None
) -> Phi3VProcessor:
    """The processor of a preset (``tiny``: built in; others: from ``tokenizer``), checkpoint or run folder."""
    reference = str(name_or_dir)
    if tokenizer is not None:
        return _load_processor(tokenizer, num_crops)
    if reference == "tiny":
        return tiny_processor(num_crops or DEFAULT_TINY_CROPS)
    if reference in SIZE_NAMES:
        raise ConfigError(
            f"the {reference!r} preset has random weights and no tokenizer; pass --tokenizer DIR with the real "
            "tokenizer files (e.g. a download of microsoft/Phi-3.5-vision-instruct), or --model a checkpoint"
        )
    return _load_processor(reference, num_crops)


def load_model(
    name_or_dir: str | Path,
    *,
    dtype: torch.dtype | None = None,
    attn_implementation: str = "sdpa",
    quantization: str | None = None,
    double_quant: bool = False,
    compute_dtype: torch.dtype | None = None,
    seed: int = 0,
    is_trainable: bool = False,
):
    """The model alone: a preset (random, from ``seed``), a checkpoint, or a run folder (base + adapter)."""
    if quantization not in (None, "4bit"):
        raise ConfigError(f"quantization must be '4bit' or None, got {quantization!r}")
    reference = str(name_or_dir)
    folder = Path(reference)
    options = {
        "dtype": dtype,
        "attn_implementation": attn_implementation,
        "quantization": quantization,
        "double_quant": double_quant,
        "compute_dtype": compute_dtype,
    }
    if folder.is_dir() and (folder / ADAPTER_CONFIG_FILE).is_file():
        from peft import PeftModel

        info = read_base_info(folder) or _base_from_adapter_config(folder)
        base = load_model(resolve_base(folder, info), seed=int(info.get("seed", 0)), **options)
        return PeftModel.from_pretrained(base, str(folder), is_trainable=is_trainable)
    if reference in SIZE_NAMES:
        model = build_model(reference, dtype=dtype or torch.float32, attn_implementation=attn_implementation, seed=seed)
        if quantization is not None:
            model = quantized_copy(model, double_quant, compute_dtype, attn_implementation)
        return model
    kwargs: dict[str, Any] = {"attn_implementation": attn_implementation}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if quantization is not None:
        kwargs.update(_quantized_kwargs(double_quant, compute_dtype))
    return _load_pretrained(reference, **kwargs)


def _quantized_kwargs(double_quant: bool, compute_dtype: torch.dtype | None) -> dict[str, Any]:
    """bitsandbytes quantizes while placing the weights: on this process's GPU when there is one."""
    kwargs: dict[str, Any] = {"quantization_config": quantization_config(double_quant, compute_dtype)}
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return kwargs


def _base_from_adapter_config(folder: Path) -> dict[str, Any]:
    adapter = json.loads((folder / ADAPTER_CONFIG_FILE).read_text(encoding="utf-8"))
    if not adapter.get("base_model_name_or_path"):
        raise ConfigError(f"{folder} holds an adapter but no {BASE_FILE} naming its base model")
    return {"base_model": adapter["base_model_name_or_path"]}


def _load_processor(source: str | Path, num_crops: int | None) -> Phi3VProcessor:
    try:
        return Phi3VProcessor.from_pretrained(str(source), num_crops=num_crops)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load the processor from {source}: {exc}. "
            "The folder needs tokenizer files and preprocessor_config.json; pass --tokenizer DIR otherwise."
        ) from exc


def _load_pretrained(source: str, **kwargs: Any) -> Phi3VForCausalLM:
    try:
        return Phi3VForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise ConfigError(
            f"cannot load model {source!r}: {exc}. Give a preset ({', '.join(SIZE_NAMES)}), "
            "a hub id (needs network or the hub cache), or a folder with config.json and safetensors."
        ) from exc


def quantized_copy(model: Phi3VForCausalLM, double_quant: bool, compute_dtype, attn_implementation: str):
    """A preset's random weights reloaded in nf4 (quantization happens while loading)."""
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory(prefix="phi3v-base-") as folder:
        # written directly: under torch.distributed, save_pretrained writes on rank 0 only, and each rank
        # reloads its own copy
        model.config.save_pretrained(folder)
        tensors = {**model.carried_tensors, **model.state_dict()}
        weights = {key: value.contiguous() for key, value in tensors.items()}
        save_file(weights, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        return _load_pretrained(
            folder,
            attn_implementation=attn_implementation,
            dtype=compute_dtype or torch.float32,
            **_quantized_kwargs(double_quant, compute_dtype),
        )
