"""The run configuration: a Pydantic model, loaded from YAML with command-line overrides.

:class:`TrainConfig` is the one declaration of every `phi3v-train run` option: each field carries its
description, its default, and a :class:`RunOption` (help panel, flags, the ``TrainingArguments``
fields it fills). The command line and :func:`training_args_of` are derived from it.

Precedence, lowest first: the recipe defaults below, the `tiny` model's demo defaults (when
``model: tiny``), the task preset (``preset:``), the YAML file, the command line. Every problem is
reported at once in one :class:`~phi3v_train.errors.ConfigError`. The resolved configuration is
saved as ``run_config.yaml`` in the output folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

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

# Help panels of `phi3v-train run --help`, in display order.
DATA = "Data"
MODEL = "Model"
MODE = "Mode"
OPTIMISATION = "Optimisation"
DISTRIBUTION = "Distribution"
CHECKPOINTS = "Checkpoints"
EVALUATION = "Evaluation"
PANELS = (DATA, MODEL, MODE, OPTIMISATION, DISTRIBUTION, CHECKPOINTS, EVALUATION)


@dataclass(frozen=True)
class RunOption:
    """How a :class:`TrainConfig` field appears on `phi3v-train run` and in ``TrainingArguments``.

    ``flags`` default to ``--field-name`` (``--field-name/--no-field-name`` for booleans). A ``list[str]``
    field is a comma list on the command line, a ``list[Path]`` field a repeated option. ``training_args``
    are the ``TrainingArguments`` fields that take the value as it is; ``directory`` rejects files.
    ``on_cli=False`` keeps a field to the config file (its command-line form is written by hand).
    """

    panel: str
    flags: tuple[str, ...] = ()
    training_args: tuple[str, ...] = ()
    directory: bool = False
    on_cli: bool = True


class TrainConfig(BaseModel):
    """Everything one `phi3v-train run` needs; field names are the CLI options with `_` for `-`."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    train_files: Annotated[list[Path], RunOption(DATA, ("--train-file",))] = Field(
        min_length=1, description="Training JSONL (repeat for several files)."
    )
    image_root: Annotated[Path | None, RunOption(DATA, directory=True)] = Field(
        None, description="Image folder (default: `images` beside each JSONL)."
    )
    max_length: Annotated[int | None, RunOption(DATA)] = Field(
        None, ge=1, description="Skip (never cut) records longer than this many tokens, images included."
    )
    on_overflow: Annotated[Literal["skip", "error"], RunOption(DATA)] = Field(
        "skip", description="What an over-long record does: skip it (with a warning) or stop with an error."
    )
    validate_data: Annotated[bool, RunOption(DATA, ("--validate/--no-validate",))] = Field(
        True, description="Validate the files first, as `phi3v-data validate`."
    )
    workers: Annotated[int | None, RunOption(DATA)] = Field(
        None, ge=0, description="DataLoader workers decoding images (default: 4 on GPU, 0 on CPU)."
    )
    prefetch: Annotated[int, RunOption(DATA)] = Field(
        2, ge=1, description="Batches each DataLoader worker prepares ahead (with --workers above 0)."
    )
    group_by_length: Annotated[bool, RunOption(DATA)] = Field(
        False, description="Batch records of similar token counts together."
    )
    packing: Annotated[bool, RunOption(DATA)] = Field(
        False,
        description="Padding-free packing: a micro-batch's records share rows of at most --max-length tokens, "
        "attention kept within each record.",
    )

    model: Annotated[str, RunOption(MODEL)] = Field(
        description="Preset (tiny), hub id (microsoft/Phi-3.5-vision-instruct), checkpoint folder or run folder."
    )
    tokenizer: Annotated[Path | None, RunOption(MODEL, directory=True)] = Field(
        None, description="Processor folder, needed for full-size random presets."
    )
    num_crops: Annotated[int | None, RunOption(MODEL)] = Field(
        None,
        ge=1,
        le=16,
        description="HD crops per image, 1-16 (default: the processor's; 16 for documents, 4 for video).",
    )
    precision: Annotated[Precision, RunOption(MODEL)] = Field(
        "auto", description="Compute precision; auto: bf16 on GPUs that have it, fp16 on other GPUs, fp32 on CPU."
    )
    model_dtype: Annotated[Precision, RunOption(MODEL)] = Field(
        "auto", description="Weights dtype; auto: fp32 in full mode, else the compute dtype."
    )
    attn: Annotated[Attention, RunOption(MODEL)] = Field("sdpa", description="Attention implementation.")
    gradient_checkpointing: Annotated[bool, RunOption(MODEL)] = Field(
        True, description="Non-reentrant activation checkpointing."
    )
    compile: Annotated[bool, RunOption(MODEL)] = Field(
        False, description="torch.compile each decoder layer (not with QLoRA; on CPU it needs g++)."
    )
    liger: Annotated[bool, RunOption(MODEL)] = Field(
        False,
        description="liger-kernel's fused RMSNorm, SwiGLU and cross-entropy (CUDA); checked against the unfused "
        "loss on the first batch.",
    )

    mode: Annotated[Mode, RunOption(MODE)] = Field("lora", description="What trains: every weight, LoRA or QLoRA.")
    preset: Annotated[TaskPreset | None, RunOption(MODE)] = Field(
        None, description="Recipe settings of a task (learning rate, epochs, rank, crops, batch), under the options."
    )
    freeze: Annotated[list[str], RunOption(MODE)] = Field(
        default_factory=list,
        description="Comma list of vision, projector, separators, embeddings, llm; `image-model` = the recipe's "
        "frozen image model (vision, projector, separators and token embeddings).",
    )
    also_train: Annotated[list[str], RunOption(MODE)] = Field(
        default_factory=list,
        description="LoRA modes: groups trained in full and saved with the adapter (projector, embeddings).",
    )
    lora_rank: Annotated[int, RunOption(MODE)] = Field(64, ge=1, description="LoRA rank.")
    lora_alpha: Annotated[float, RunOption(MODE)] = Field(128, gt=0, description="LoRA alpha (2 x rank).")
    lora_dropout: Annotated[float, RunOption(MODE)] = Field(0.0, ge=0, lt=1, description="LoRA dropout.")
    lora_targets: Annotated[list[str] | None, RunOption(MODE)] = Field(
        None, description="Comma list of module names replacing the default targets."
    )
    dora: Annotated[bool, RunOption(MODE)] = Field(False, description="Weight-decomposed LoRA (DoRA).")
    rslora: Annotated[bool, RunOption(MODE)] = Field(False, description="Rank-stabilised LoRA scaling.")
    double_quant: Annotated[bool, RunOption(MODE)] = Field(False, description="QLoRA double quantization.")

    batch_size: Annotated[
        int, RunOption(OPTIMISATION, training_args=("per_device_train_batch_size", "per_device_eval_batch_size"))
    ] = Field(1, ge=1, description="Per-device micro-batch.")
    global_batch_size: Annotated[int | None, RunOption(OPTIMISATION)] = Field(
        None, ge=1, description="Samples per optimizer step over all GPUs; sets gradient accumulation."
    )
    max_steps: Annotated[int | None, RunOption(OPTIMISATION)] = Field(
        None, ge=1, description="Optimizer steps to run (overrides --epochs)."
    )
    epochs: Annotated[float, RunOption(OPTIMISATION, training_args=("num_train_epochs",))] = Field(
        1.0, gt=0, description="Passes over the training data."
    )
    learning_rate: Annotated[
        float, RunOption(OPTIMISATION, ("--learning-rate", "--lr"), training_args=("learning_rate",))
    ] = Field(4e-5, gt=0, description="Peak learning rate.")
    vision_lr: Annotated[float | None, RunOption(OPTIMISATION)] = Field(
        None, gt=0, description="Learning rate of the vision tower (full mode)."
    )
    projector_lr: Annotated[float | None, RunOption(OPTIMISATION)] = Field(
        None, gt=0, description="Learning rate of the projector."
    )
    weight_decay: Annotated[float, RunOption(OPTIMISATION, training_args=("weight_decay",))] = Field(
        0.01, ge=0, description="AdamW weight decay."
    )
    adam_beta1: Annotated[float, RunOption(OPTIMISATION, training_args=("adam_beta1",))] = Field(
        0.9, ge=0, lt=1, description="AdamW beta1."
    )
    adam_beta2: Annotated[float, RunOption(OPTIMISATION, training_args=("adam_beta2",))] = Field(
        0.95, ge=0, lt=1, description="AdamW beta2."
    )
    adam_epsilon: Annotated[float, RunOption(OPTIMISATION, training_args=("adam_epsilon",))] = Field(
        1e-7, gt=0, description="AdamW epsilon."
    )
    lr_scheduler: Annotated[str, RunOption(OPTIMISATION, training_args=("lr_scheduler_type",))] = Field(
        "linear", description="Learning-rate schedule, a transformers `lr_scheduler_type` (linear, cosine...)."
    )
    warmup_steps: Annotated[int, RunOption(OPTIMISATION, training_args=("warmup_steps",))] = Field(
        50, ge=0, description="Linear warmup steps."
    )
    max_grad_norm: Annotated[float, RunOption(OPTIMISATION, training_args=("max_grad_norm",))] = Field(
        1.0, gt=0, description="Gradient clipping norm."
    )
    seed: Annotated[int, RunOption(OPTIMISATION, training_args=("seed", "data_seed"))] = Field(
        0, description="Seed of the data order, init of random presets and LoRA."
    )

    deepspeed: Annotated[str | None, RunOption(DISTRIBUTION)] = Field(
        None, description="zero2 | zero3 | PATH to a DeepSpeed JSON."
    )
    fsdp: Annotated[str | None, RunOption(DISTRIBUTION)] = Field(
        None,
        description="FSDP through accelerate: `full_shard` or `shard_grad_op`, optionally with `offload`, "
        "e.g. 'full_shard offload'.",
    )
    vision_every_step: Annotated[Literal["auto", "always", "never"], RunOption(DISTRIBUTION)] = Field(
        "auto", description="Run the vision tower on text-only batches too; auto: with several ranks or sharding."
    )

    output_dir: Annotated[Path, RunOption(CHECKPOINTS)] = Field(
        description="Folder for checkpoints, logs and the final model."
    )
    logging_steps: Annotated[int, RunOption(CHECKPOINTS, training_args=("logging_steps",))] = Field(
        10, ge=1, description="Log every N steps."
    )
    report_to: Annotated[list[str], RunOption(CHECKPOINTS)] = Field(
        default_factory=lambda: ["tensorboard"],
        description="Comma list of loggers: tensorboard, wandb, mlflow... (transformers' names), or none.",
    )
    save_steps: Annotated[int | None, RunOption(CHECKPOINTS)] = Field(
        None, ge=1, description="Save a checkpoint every N steps."
    )
    save_total_limit: Annotated[int | None, RunOption(CHECKPOINTS, training_args=("save_total_limit",))] = Field(
        None, ge=1, description="Keep only the last N checkpoints (and always the best, with --metric-for-best)."
    )
    metric_for_best: Annotated[str | None, RunOption(CHECKPOINTS, training_args=("metric_for_best_model",))] = Field(
        None,
        description="Load the checkpoint best on this eval metric at the end: loss, or a task metric of "
        "--eval-metric (accuracy, anls...); higher is better except for losses.",
    )
    resume: Annotated[str | None, RunOption(CHECKPOINTS, on_cli=False)] = Field(
        None, description="`latest` (newest checkpoint in output_dir) or a checkpoint path."
    )

    eval_files: Annotated[list[Path], RunOption(EVALUATION, ("--eval-file",))] = Field(
        default_factory=list,
        description="Evaluation JSONL (repeatable): eval loss, and the task metric with --eval-metric.",
    )
    eval_steps: Annotated[int | None, RunOption(EVALUATION, training_args=("eval_steps",))] = Field(
        None, ge=1, description="Evaluate the loss on --eval-file every N steps."
    )
    eval_metric: Annotated[str | None, RunOption(EVALUATION)] = Field(
        None,
        description="Task metric on --eval-file after training, and every --eval-steps (auto, accuracy, anls...).",
    )
    eval_limit: Annotated[int | None, RunOption(EVALUATION)] = Field(
        None, ge=1, description="Score a seeded sample of N eval records with the metric."
    )

    @property
    def frozen_groups(self) -> list[str]:
        return expand_freeze(self.freeze)

    @property
    def lora(self) -> bool:
        return self.mode in ("lora", "qlora")


def run_options(config_class: type[TrainConfig] = TrainConfig) -> dict[str, tuple[FieldInfo, RunOption]]:
    """Every field of ``config_class`` with its :class:`RunOption`, in declaration order.

    Raises:
        TypeError: a field declares no RunOption (a programming error, not user input).
    """
    options = {}
    for name, info in config_class.model_fields.items():
        found = [item for item in info.metadata if isinstance(item, RunOption)]
        if not found:
            raise TypeError(f"{config_class.__name__}.{name} declares no RunOption")
        options[name] = (info, found[0])
    return options


def training_args_of(config: TrainConfig) -> dict[str, Any]:
    """The ``TrainingArguments`` values that fields pass on unchanged (see ``RunOption.training_args``)."""
    return {
        argument: getattr(config, name)
        for name, (_, option) in run_options(type(config)).items()
        for argument in option.training_args
    }


def shipped_configs() -> list[str]:
    """Names of the YAML configs shipped in ``phi3v_train/configs`` (``docvqa_lora``...)."""
    folder = resources.files("phi3v_train") / "configs"
    return sorted(item.name.removesuffix(".yaml") for item in folder.iterdir() if item.name.endswith(".yaml"))


def resolve_config_file(name_or_path: str | Path) -> Path:
    """A YAML path as given, or the shipped config of that name (``docvqa_lora``).

    Raises:
        ConfigError: neither an existing file nor a shipped config's name.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path).removesuffix(".yaml")
    if name in shipped_configs():
        return Path(str(resources.files("phi3v_train") / "configs" / f"{name}.yaml"))
    raise ConfigError(
        f"config {name_or_path}: no such file, and not a shipped config; shipped: {', '.join(shipped_configs())}"
    )


def _zero_stage(deepspeed: str | None) -> int | None:
    """The ZeRO stage of ``--deepspeed``: the shipped names, or the ``zero_optimization.stage`` of a JSON file."""
    if deepspeed is None or deepspeed in DEEPSPEED_NAMES:
        return None if deepspeed is None else int(deepspeed.removeprefix("zero"))
    try:
        return int(json.loads(Path(deepspeed).read_text(encoding="utf-8")).get("zero_optimization", {}).get("stage", 0))
    except (OSError, ValueError, AttributeError):
        return None  # reported by the deepspeed file check


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
    if config.mode == "qlora" and (config.fsdp is not None or _zero_stage(config.deepspeed) == 3):
        problems.append(
            "mode qlora: not with FSDP or ZeRO-3, which would have to shard the bitsandbytes 4-bit weights "
            "(only on GPUs, with bnb_4bit_quant_storage); use --deepspeed zero2 or plain DDP"
        )
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
    if config.metric_for_best is not None:
        if config.eval_steps is None or config.save_steps is None or config.save_steps % config.eval_steps:
            problems.append(
                "metric_for_best: needs --eval-steps and --save-steps a multiple of it (every checkpoint "
                "must have been evaluated)"
            )
        if config.metric_for_best.removeprefix("eval_") != "loss" and config.eval_metric is None:
            problems.append(f"metric_for_best: {config.metric_for_best!r} is a task metric and needs --eval-metric")
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


def load_config(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    config_class: type[TrainConfig] = TrainConfig,
) -> TrainConfig:
    """Resolves a `TrainConfig` from the YAML file and the explicit CLI values (``None`` = not given).

    ``config_class`` is a subclass of :class:`TrainConfig` with more fields, where one is used.

    Raises:
        ConfigError: listing every problem, field errors and cross-field errors together.
    """
    data, cli_keys = _layered(config_file, overrides or {})
    problems: list[str] = []
    bad_fields: set[str] = set()
    try:
        config: TrainConfig | None = config_class.model_validate(data)
    except ValidationError as exc:
        problems = _format_validation_error(exc)
        bad_fields = {str(item["loc"][0]) for item in exc.errors() if item["loc"]}
        config = _validate_or_none(config_class, {key: value for key, value in data.items() if key not in bad_fields})
    if config is not None:
        problems += _problems_of(config, cli_keys - bad_fields)
    if problems or config is None:
        raise ConfigError("invalid run configuration:\n  " + "\n  ".join(problems))
    return config


def _validate_or_none(config_class: type[TrainConfig], data: dict[str, Any]) -> TrainConfig | None:
    """The config without its invalid fields, so that cross-field checks can still run; None if impossible."""
    try:
        return config_class.model_validate(data)
    except ValidationError:
        return None


def config_to_yaml(config: TrainConfig) -> str:
    """The resolved configuration as YAML (paths as strings, keys in field order)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def save_config(config: TrainConfig, folder: Path) -> Path:
    path = Path(folder) / RUN_CONFIG_FILE
    atomic_write_text(path, config_to_yaml(config))
    return path
