"""The run configuration: a Pydantic model, loaded from YAML with command-line overrides.

Precedence, lowest first: the recipe defaults below, the `tiny` model's demo defaults (when
``model: tiny``), the task preset (``preset:``), the YAML file, the command line. Every problem is
reported at once in one :class:`~phi3v_train.errors.ConfigError`. The resolved configuration is
saved as ``run_config.yaml`` in the output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from phi3v_data.io import atomic_write_text
from phi3v_train.errors import ConfigError
from phi3v_train.training.task_presets import (
    FREEZE_ALIASES,
    TASK_PRESETS,
    TINY_MODEL_DEFAULTS,
    expand_freeze,
    task_preset,
)

RUN_CONFIG_FILE = "run_config.yaml"
FREEZE_GROUPS = ("vision", "projector", "separators", "embeddings", "llm")
ALSO_TRAIN_GROUPS = ("projector", "embeddings")
DEEPSPEED_NAMES = ("zero2", "zero3")
FSDP_SHARDING = {"full_shard", "shard_grad_op"}
FSDP_WORDS = {*FSDP_SHARDING, "offload", "auto_wrap"}

Mode = Literal["full", "lora", "qlora"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
Attention = Literal["sdpa", "flash_attention_2", "eager"]
TaskPreset = Literal["docvqa", "hateful-memes", "nlvr2", "ucf101"]


class TrainConfig(BaseModel):
    """Everything one `phi3v-train run` needs; field names are the CLI options with `_` for `-`."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(description="Preset name (tiny), hub id, local checkpoint folder, or a run folder.")
    tokenizer: Path | None = Field(None, description="Processor/tokenizer folder, for full-size presets.")
    train_files: list[Path] = Field(min_length=1, description="Training record files (JSONL).")
    eval_files: list[Path] = Field(default_factory=list, description="Evaluation record files (JSONL).")
    image_root: Path | None = Field(None, description="Image folder; default: `images` beside each JSONL.")
    output_dir: Path
    mode: Mode = "lora"
    preset: TaskPreset | None = None

    freeze: list[str] = Field(default_factory=list, description="Groups to freeze; `image-model` = the recipe's.")
    also_train: list[str] = Field(default_factory=list, description="LoRA modes: groups trained in full as well.")
    vision_lr: float | None = Field(None, gt=0)
    projector_lr: float | None = Field(None, gt=0)

    lora_rank: int = Field(64, ge=1)
    lora_alpha: float = Field(128, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_targets: list[str] | None = None
    dora: bool = False
    rslora: bool = False
    double_quant: bool = False

    precision: Precision = "auto"
    model_dtype: Precision = Field(
        "auto", description="Weights dtype; auto: fp32 in full mode, else the compute dtype."
    )
    attn: Attention = "sdpa"
    gradient_checkpointing: bool = True
    num_crops: int | None = Field(None, ge=1, le=16)
    max_length: int | None = Field(None, ge=1)
    on_overflow: Literal["skip", "error"] = "skip"

    batch_size: int = Field(1, ge=1, description="Per-device micro-batch.")
    global_batch_size: int | None = Field(None, ge=1, description="Samples per optimizer step over all ranks.")
    max_steps: int | None = Field(None, ge=1)
    epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(4e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.95, ge=0, lt=1)
    adam_epsilon: float = Field(1e-7, gt=0)
    lr_scheduler: str = "linear"
    warmup_steps: int = Field(50, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 0

    logging_steps: int = Field(10, ge=1)
    save_steps: int | None = Field(None, ge=1)
    save_total_limit: int | None = Field(None, ge=1)
    resume: str | None = Field(None, description="`latest` (newest checkpoint in output_dir) or a checkpoint path.")
    eval_steps: int | None = Field(None, ge=1)
    eval_metric: str | None = Field(
        None,
        description="Task metric (`auto`, `accuracy`...) after training, and at every evaluation with eval_steps.",
    )
    eval_limit: int | None = Field(None, ge=1)
    workers: int | None = Field(None, ge=0, description="DataLoader workers; default 4 on GPU, 0 on CPU.")
    group_by_length: bool = False
    deepspeed: str | None = None
    fsdp: str | None = Field(
        None, description="FSDP through accelerate: `full_shard` or `shard_grad_op`, optionally with `offload`."
    )
    validate_data: bool = True
    vision_every_step: Literal["auto", "always", "never"] = "auto"
    report_to: list[str] = Field(default_factory=lambda: ["tensorboard"])

    @property
    def frozen_groups(self) -> list[str]:
        return expand_freeze(self.freeze)

    @property
    def lora(self) -> bool:
        return self.mode in ("lora", "qlora")


def _problems_of(config: TrainConfig, cli_keys: set[str]) -> list[str]:
    """Checks across fields (each field on its own is already valid)."""
    problems = []
    for group in config.freeze:
        if group not in FREEZE_GROUPS and group not in FREEZE_ALIASES:
            problems.append(f"freeze: unknown group {group!r}; choose from {', '.join(FREEZE_GROUPS)} or image-model")
    for group in config.also_train:
        if group not in ALSO_TRAIN_GROUPS:
            problems.append(f"also_train: unknown group {group!r}; choose from {', '.join(ALSO_TRAIN_GROUPS)}")
    if config.also_train and not config.lora:
        problems.append("also_train: only for --mode lora/qlora (in full mode every unfrozen group trains)")
    frozen = set(config.frozen_groups)
    if config.lora and "llm" in frozen and not config.lora_targets:
        problems.append("freeze: `llm` in LoRA mode leaves the default targets without the language model")
    if config.vision_lr is not None and (config.lora or "vision" in frozen):
        problems.append("vision_lr: needs --mode full with the vision tower trainable")
    if config.projector_lr is not None and (
        "projector" in frozen or (config.lora and "projector" not in config.also_train)
    ):
        problems.append("projector_lr: needs a trainable projector (full mode, or --also-train projector)")
    if config.double_quant and config.mode != "qlora":
        problems.append("double_quant: only with --mode qlora")
    if config.attn == "flash_attention_2" and config.precision == "fp16":
        problems.append("attn: flash_attention_2 does not work with fp16; use --precision bf16")
    if config.deepspeed and config.fsdp:
        problems.append("deepspeed and fsdp: choose one")
    if config.fsdp is not None:
        words = config.fsdp.split()
        unknown = sorted(set(words) - FSDP_WORDS)
        if unknown or len(set(words) & FSDP_SHARDING) != 1:
            problems.append(
                f"fsdp: {config.fsdp!r} must name one of full_shard or shard_grad_op, optionally with offload "
                f"(and the accepted no-op auto_wrap){'; unknown: ' + ', '.join(unknown) if unknown else ''}"
            )
    if config.deepspeed and config.mode == "qlora":
        problems.append("deepspeed: not supported with --mode qlora (bitsandbytes 4-bit); use DDP")
    if config.deepspeed and config.deepspeed not in DEEPSPEED_NAMES and not Path(config.deepspeed).is_file():
        problems.append(f"deepspeed: {config.deepspeed!r} is neither zero2, zero3 nor an existing JSON file")
    if {"max_steps", "epochs"} <= cli_keys:
        problems.append("max_steps and epochs: give one of them")
    if config.eval_steps is not None and not config.eval_files:
        problems.append("eval_steps: needs --eval-file")
    if config.eval_metric is not None and not config.eval_files:
        problems.append("eval_metric: needs --eval-file")
    if config.save_total_limit is not None and config.save_steps is None:
        problems.append("save_total_limit: needs --save-steps")
    if config.global_batch_size is not None and config.global_batch_size % config.batch_size:
        problems.append(
            f"global_batch_size: {config.global_batch_size} is not a multiple of batch_size {config.batch_size}"
        )
    for path in [*config.train_files, *config.eval_files]:
        if not path.is_file():
            problems.append(f"{path}: no such file")
    if (
        config.tokenizer is not None
        and not (config.tokenizer / "tokenizer.json").is_file()
        and not (config.tokenizer / "tokenizer.model").is_file()
    ):
        problems.append(f"tokenizer: {config.tokenizer} holds no tokenizer.json")
    return problems


def _normalise_keys(data: dict[str, Any]) -> dict[str, Any]:
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def read_yaml(path: Path) -> dict[str, Any]:
    """The YAML file as a dict with `-` in keys turned into `_`."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of option: value")
    return _normalise_keys(data)


def _format_validation_error(error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "config"
        lines.append(f"{where}: {item['msg']}")
    return lines


def _layered(config_file: Path | None, overrides: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    from_file = read_yaml(config_file) if config_file is not None else {}
    cli = {key: value for key, value in _normalise_keys(overrides).items() if value is not None}
    top = {**from_file, **cli}
    layers: dict[str, Any] = {}
    if top.get("model") == "tiny":
        layers.update(TINY_MODEL_DEFAULTS)
    preset = top.get("preset")
    if preset in TASK_PRESETS:
        freeze = top.get("freeze") or []
        layers.update(
            task_preset(preset, str(top.get("mode", "lora")), list(freeze) if isinstance(freeze, list) else [])
        )
    layers.update(top)
    return layers, set(cli)


def load_config(config_file: Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Resolves a `TrainConfig` from the YAML file and the explicit CLI values (``None`` = not given).

    Raises:
        ConfigError: listing every problem, field errors and cross-field errors together.
    """
    data, cli_keys = _layered(config_file, overrides or {})
    problems: list[str] = []
    bad_fields: set[str] = set()
    try:
        config: TrainConfig | None = TrainConfig.model_validate(data)
    except ValidationError as exc:
        problems = _format_validation_error(exc)
        bad_fields = {str(item["loc"][0]) for item in exc.errors() if item["loc"]}
        config = _validate_or_none({key: value for key, value in data.items() if key not in bad_fields})
    if config is not None:
        problems += _problems_of(config, cli_keys - bad_fields)
    if problems or config is None:
        raise ConfigError("invalid run configuration:\n  " + "\n  ".join(problems))
    return config


def _validate_or_none(data: dict[str, Any]) -> TrainConfig | None:
    """The config without its invalid fields, so that cross-field checks can still run; None if impossible."""
    try:
        return TrainConfig.model_validate(data)
    except ValidationError:
        return None


def config_to_yaml(config: TrainConfig) -> str:
    """The resolved configuration as YAML (paths as strings, keys in field order)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def save_config(config: TrainConfig, folder: Path) -> Path:
    path = Path(folder) / RUN_CONFIG_FILE
    atomic_write_text(path, config_to_yaml(config))
    return path
