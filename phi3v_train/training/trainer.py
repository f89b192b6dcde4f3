"""`train(config)`: the only place the Hugging Face Trainer is built.

The recipe's TrainingArguments (SPEC section 1) are the defaults: AdamW (0.9, 0.95, eps 1e-7), weight
decay 0.01, linear schedule with 50 warmup steps, clipping at 1.0, non-reentrant gradient
checkpointing, `remove_unused_columns=False`, `ddp_find_unused_parameters=False`. What the recipe
lacked is added: checkpoints with resume (model or adapter, optimizer, scheduler, sampler position,
RNG), tensorboard logs, images/s and tokens/s, progress with ETA, length grouping, per-group learning
rates, and a vision tower that runs on every rank every step. Distribution is torchrun + accelerate
(DDP), DeepSpeed ZeRO-2/3 or FSDP, all through the Trainer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from torch import nn
from torch.utils.data import Dataset, Sampler
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.modeling_utils import set_zero3_state
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.trainer_utils import get_last_checkpoint

from phi3v_data.io import atomic_write_text
from phi3v_data.paths import image_root_for
from phi3v_data.schema import Record
from phi3v_train.data.collator import Phi3VDataCollator
from phi3v_train.data.packing import batch_token_count
from phi3v_train.data.prepare import PreparedData, prepare_data
from phi3v_train.errors import ConfigError
from phi3v_train.evaluation import evaluate_records
from phi3v_train.loading import BASE_FILE, BASE_MODEL_FOLDER, load_model, load_processor, quantized_copy
from phi3v_train.model.packed_attention import use_packed_sdpa
from phi3v_train.model.processing import Phi3VProcessor
from phi3v_train.model.sizes import SIZE_NAMES
from phi3v_train.training.callbacks import (
    CheckpointExtras,
    LossHistory,
    RichProgress,
    TaskMetricDuringTraining,
    reporter_callbacks,
)
from phi3v_train.training.compile import compile_decoder_layers
from phi3v_train.training.config import RUN_CONFIG_FILE, TrainConfig, save_config, training_args_of
from phi3v_train.training.data_wait import DataWaitMonitor
from phi3v_train.training.distributed import check_engine, describe, engine_of, prepare_distributed
from phi3v_train.training.liger import apply_liger, liger_functions
from phi3v_train.training.modes import apply_mode, parameter_group
from phi3v_train.training.sampling import SeededLengthGroupedSampler
from phi3v_train.training.vision_guard import set_vision_every_forward

logger = logging.getLogger("phi3v_train")

RESULTS_FILE = "train_results.json"
EVAL_METRICS_FILE = "eval_metrics.json"
LOGS_FOLDER = "logs"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainResult:
    """What a run did; also written to ``train_results.json``."""

    output_dir: str
    mode: str
    global_step: int
    losses: list[tuple[int, float]]
    train_runtime: float
    images_per_second: float
    tokens_per_second: float
    train_records: int
    skipped_records: list[str] = field(default_factory=list)
    eval_loss: float | None = None
    eval_metrics: dict[str, Any] | None = None
    eval_metrics_during_training: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    distributed: dict[str, Any] = field(default_factory=dict)  # distributed.engine_of: engine, zero_stage, world_size

    @property
    def first_loss(self) -> float | None:
        return self.losses[0][1] if self.losses else None

    @property
    def last_loss(self) -> float | None:
        return self.losses[-1][1] if self.losses else None


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_precision(precision: str) -> str:
    """``auto``: bf16 on GPUs that have it, fp16 on other GPUs, fp32 on CPU."""
    if precision != "auto":
        return precision
    if not torch.cuda.is_available():
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def gradient_accumulation(config: TrainConfig, ranks: int) -> int:
    """Steps of accumulation so that batch_size x ranks x steps = global_batch_size."""
    if config.global_batch_size is None:
        return 1
    per_step = config.batch_size * ranks
    if config.global_batch_size % per_step:
        raise ConfigError(
            f"--global-batch-size {config.global_batch_size} is not divisible by --batch-size {config.batch_size} "
            f"x {ranks} process(es) = {per_step}"
        )
    return config.global_batch_size // per_step


def deepspeed_config_path(name: str | None) -> str | None:
    """``zero2``/``zero3`` name the JSON files shipped in ``phi3v_train/configs/deepspeed``; else a path."""
    if name is None or name not in ("zero2", "zero3"):
        return name
    return str(resources.files("phi3v_train") / "configs" / "deepspeed" / f"{name}.json")


def resume_checkpoint(config: TrainConfig) -> str | None:
    """The checkpoint to resume from: ``latest`` is the newest ``checkpoint-N`` in the output folder."""
    if config.resume is None:
        return None
    if config.resume == "latest":
        found = get_last_checkpoint(str(config.output_dir)) if config.output_dir.is_dir() else None
        if found is None:
            raise ConfigError(f"--resume: no checkpoint-N folder in {config.output_dir} (was --save-steps set?)")
        return found
    if not Path(config.resume).is_dir():
        raise ConfigError(f"--resume: checkpoint folder {config.resume} not found")
    return config.resume


def check_output_dir(config: TrainConfig) -> None:
    """A fresh run never writes over an earlier one."""
    if config.resume is None and (config.output_dir / RUN_CONFIG_FILE).exists():
        raise ConfigError(
            f"{config.output_dir} already holds a run; pass --resume to continue it or choose another --output-dir"
        )


def model_dtype(config: TrainConfig, precision: str) -> torch.dtype:
    """Full fine-tuning keeps fp32 master weights (AMP); LoRA bases are held in the compute dtype."""
    if config.model_dtype != "auto":
        return DTYPES[config.model_dtype]
    return torch.float32 if config.mode == "full" else DTYPES[precision]


def vision_every_step(config: TrainConfig, ranks: int) -> bool:
    if config.vision_every_step == "auto":
        return ranks > 1 or config.deepspeed is not None or config.fsdp is not None
    return config.vision_every_step == "always"


class Phi3VTrainer(Trainer):
    """The Trainer with per-group learning rates, length grouping on known lengths, and throughput logs."""

    def __init__(
        self, *args: Any, lengths: list[int] | None = None, group_lrs: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lengths = lengths
        self.group_lrs = group_lrs or {}
        self.save_dtype: torch.dtype | None = None
        self._seen_images = 0
        self._seen_tokens = 0
        self._window_start = time.perf_counter()

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """LoRA checkpoints hold the adapters (and --also-train modules) only, under every engine: PEFT would
        otherwise copy the untouched base ``lm_head`` and embeddings into every checkpoint, because ``lm_head``
        is a target. The final full model (not the checkpoints, which resume from exact master weights) is
        written in ``save_dtype``, the training dtype, rather than the fp32 master weights of mixed precision.

        Checkpoints come here too: ``Trainer._save_checkpoint`` calls ``save_model(folder, _internal_call=True)``.
        Runs on every rank: gathering sharded weights (ZeRO-3, FSDP) is a collective.
        """
        peft = isinstance(self.model, PeftModel)
        cast = self.save_dtype if not (peft or _internal_call) else None
        if not peft and cast is None:
            super().save_model(output_dir, _internal_call)
            return
        state_dict = None
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            state_dict = self.accelerator.get_state_dict(
                self.model_wrapped if self.is_deepspeed_enabled else self.model
            )
        if not self.args.should_save:
            return
        folder = output_dir if output_dir is not None else self.args.output_dir
        os.makedirs(folder, exist_ok=True)
        if peft:
            self.model.save_pretrained(folder, state_dict=state_dict, save_embedding_layers=False)
        else:
            state_dict = self.model.state_dict() if state_dict is None else state_dict
            state_dict = {**getattr(self.model, "carried_tensors", {}), **state_dict}  # the unbuilt CLIP layers too
            typed = {key: value.to(cast) if value.is_floating_point() else value for key, value in state_dict.items()}
            self.model.save_pretrained(folder, state_dict=typed)
        torch.save(self.args, os.path.join(folder, TRAINING_ARGS_NAME))

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if not self.group_lrs or self.optimizer is not None:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(model))
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        for name, parameter in model.named_parameters():
            if not parameter.requires_grad:
                continue
            lr = self.group_lrs.get(parameter_group(name), self.args.learning_rate)
            weight_decay = self.args.weight_decay if name in decay else 0.0
            groups.setdefault((lr, weight_decay), []).append(parameter)
        optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, model)
        optimizer_kwargs.pop("lr", None)
        param_groups = [{"params": params, "lr": lr, "weight_decay": wd} for (lr, wd), params in groups.items()]
        self.optimizer = optimizer_cls(param_groups, lr=self.args.learning_rate, **optimizer_kwargs)
        return self.optimizer

    # Private, and kept: transformers 5.24 has no public way to give LengthGroupedSampler precomputed lengths
    # for a torch Dataset (only a `datasets` column); `get_train_dataloader` would mean copying
    # `_get_dataloader`. tests/training/test_trainer_hooks.py fails if the hook's name or signature changes.
    def _get_train_sampler(self, train_dataset: Dataset | None = None) -> Sampler | None:
        if self.args.train_sampling_strategy == "group_by_length" and self.lengths is not None:
            return SeededLengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                lengths=self.lengths,
                seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
            )
        return super()._get_train_sampler(train_dataset)

    def training_step(self, model, inputs, num_items_in_batch=None):
        self._seen_tokens += batch_token_count(inputs)
        if "image_sizes" in inputs:
            self._seen_images += int(inputs["image_sizes"].shape[0])
        return super().training_step(model, inputs, num_items_in_batch)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            elapsed = max(time.perf_counter() - self._window_start, 1e-9)
            ranks = max(self.args.world_size, 1)
            logs["images_per_second"] = round(self._seen_images * ranks / elapsed, 3)
            logs["tokens_per_second"] = round(self._seen_tokens * ranks / elapsed, 1)
            self._seen_images = self._seen_tokens = 0
            self._window_start = time.perf_counter()
        super().log(logs, start_time)


def training_arguments(config: TrainConfig, precision: str, accumulation: int, has_eval: bool) -> TrainingArguments:
    """The fields declaring ``training_args`` pass on as they are; the rest is derived from several fields."""
    saving = config.save_steps is not None
    workers = config.workers if config.workers is not None else (4 if torch.cuda.is_available() else 0)
    return TrainingArguments(
        **training_args_of(config),
        output_dir=str(config.output_dir),
        gradient_accumulation_steps=accumulation,
        max_steps=config.max_steps if config.max_steps is not None else -1,
        optim="adamw_torch",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        activation_checkpointing=config.gradient_checkpointing and config.mode != "qlora" and config.fsdp is None,
        activation_checkpointing_kwargs={"use_reentrant": False},
        logging_first_step=True,
        save_strategy="steps" if saving else "no",
        save_steps=config.save_steps if saving else 500,
        eval_strategy="steps" if has_eval and config.eval_steps else "no",
        dataloader_num_workers=workers,
        dataloader_persistent_workers=workers > 0,  # both need workers: torch and transformers refuse them
        dataloader_prefetch_factor=config.prefetch if workers else None,
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        report_to="none",  # the reporters are built by reporter_callbacks, before training
        load_best_model_at_end=config.metric_for_best is not None,
        disable_tqdm=True,
        ddp_find_unused_parameters=False,
        ddp_backend="gloo" if world_size() > 1 and not torch.cuda.is_available() else None,
        use_cpu=not torch.cuda.is_available(),
        deepspeed=deepspeed_config_path(config.deepspeed),
        fsdp=config.fsdp is not None,
        fsdp_config=fsdp_config(config.fsdp, config.gradient_checkpointing) if config.fsdp is not None else None,
    )


def fsdp_config(options: str, checkpointing: bool) -> dict[str, Any]:
    """The FSDP2 ``fsdp_config`` of the ``--fsdp`` words (transformers deprecates passing the words).

    Under FSDP, activation checkpointing is FSDP's own: the Trainer's would add an all-gather per layer.
    """
    words = set(options.split())
    return {
        "reshard_after_forward": "full_shard" in words,
        "cpu_offload": "offload" in words,
        "activation_checkpointing": checkpointing,
    }


def _base_info(config: TrainConfig, processor: Phi3VProcessor) -> dict[str, Any]:
    if config.model in SIZE_NAMES:
        base = BASE_MODEL_FOLDER
    else:
        local = Path(config.model)
        base = str(local.resolve()) if local.exists() else config.model
    return {
        "base_model": base,
        "preset": config.model if config.model in SIZE_NAMES else None,
        "seed": config.seed,
        "mode": config.mode,
        "num_crops": processor.num_crops,
    }


def _write_run_files(folder: Path, config: TrainConfig, processor: Phi3VProcessor) -> None:
    """Processor files, and in LoRA modes phi3v_base.json, so ``folder`` loads on its own."""
    processor.save_pretrained(folder)
    if config.lora:
        info = _base_info(config, processor)
        if info["base_model"] == BASE_MODEL_FOLDER:
            info["base_model"] = str((config.output_dir / BASE_MODEL_FOLDER).resolve())
            if folder.resolve() == config.output_dir.resolve():
                info["base_model"] = BASE_MODEL_FOLDER
        atomic_write_text(folder / BASE_FILE, json.dumps(info, indent=2) + "\n")


def _eval_metrics(
    config: TrainConfig, model: nn.Module, processor: Phi3VProcessor, eval_records: list[list[Record]]
) -> dict[str, Any]:
    """The task metric per eval file (``eval_records``: each file's records, as prepared), on the seeded
    ``eval_limit`` sample when one is set."""
    summaries = {}
    for path, records in zip(config.eval_files, eval_records, strict=True):
        result = evaluate_records(
            model,
            processor,
            records,
            image_root=image_root_for(path, config.image_root),
            metric=config.eval_metric,
            limit=config.eval_limit,
            batch_size=max(config.batch_size, 1),
            seed=config.seed,
        )
        summaries[str(path)] = result.summary
    return summaries


def build_model_for_run(config: TrainConfig, precision: str, is_main: bool) -> nn.Module:
    """Loads the base, stores a random preset's weights for later exact reloads, applies the mode."""
    dtype = model_dtype(config, precision)
    quantization = "4bit" if config.mode == "qlora" else None
    if config.lora and config.model in SIZE_NAMES:
        with set_zero3_state():  # a preset's random weights are the same under ZeRO-3 (no zero.Init)
            model = load_model(config.model, dtype=torch.float32, attn_implementation=config.attn, seed=config.seed)
        if is_main:
            model.save_pretrained(config.output_dir / BASE_MODEL_FOLDER)
        quantize = quantization is not None
        model = quantized_copy(model, config.double_quant, dtype, config.attn) if quantize else model.to(dtype)
    else:
        preset = set_zero3_state() if config.model in SIZE_NAMES else contextlib.nullcontext()
        with preset:
            model = load_model(
                config.model,
                dtype=dtype,
                attn_implementation=config.attn,
                quantization=quantization,
                double_quant=config.double_quant,
                compute_dtype=dtype,
                seed=config.seed,
            )
    model.config.use_cache = False
    set_seed(config.seed)  # LoRA's random init draws from the global generator
    return apply_mode(model, config)


def train(
    config: TrainConfig, *, prepared: PreparedData | None = None, callbacks: list[TrainerCallback] | None = None
) -> TrainResult:
    """Runs the whole fine-tuning job described by ``config``; returns what it did.

    ``prepared`` replaces the data preparation (validation, reading, length filter); ``callbacks`` are
    added to the Trainer's.

    Raises:
        ConfigError: bad combinations found at run time (batch sizes vs world size, resume target).
        DataError: validation errors, over-long records with ``on_overflow="error"``, fully masked records.
    """
    ranks = world_size()
    accumulation = gradient_accumulation(config, ranks)
    check_output_dir(config)
    checkpoint = resume_checkpoint(config)
    precision = resolve_precision(config.precision)
    sharded = config.deepspeed is not None or config.fsdp is not None
    if config.liger:
        liger_functions(sharded)  # before the data and the model: no GPU, sharding or liger-kernel stops here
    is_main = int(os.environ.get("RANK", "0")) == 0
    prepare_distributed(config)
    reporters = reporter_callbacks(config.report_to, config.output_dir / LOGS_FOLDER)

    processor = load_processor(config.model, tokenizer=config.tokenizer, num_crops=config.num_crops)
    if prepared is None:
        prepared = prepare_data(
            config.train_files,
            config.eval_files,
            processor,
            image_root=config.image_root,
            max_length=config.max_length,
            on_overflow=config.on_overflow,
            validate=config.validate_data,
        )
    args = training_arguments(config, precision, accumulation, prepared.eval is not None)
    _wait_for_all_ranks()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    resolved = config.model_copy(update={"num_crops": processor.num_crops})
    if is_main:
        save_config(resolved, config.output_dir)

    model = build_model_for_run(config, precision, is_main)
    set_vision_every_forward(model, vision_every_step(config, ranks))
    if config.packing and config.attn == "sdpa":
        use_packed_sdpa(model)
    collator = Phi3VDataCollator(
        pad_token_id=processor.tokenizer.pad_token_id,
        packing=config.packing,
        max_length=config.max_length,
        single_row=config.attn == "flash_attention_2",
    )
    if config.liger:
        first = collator([prepared.train[i] for i in range(min(config.batch_size, len(prepared.train)))])
        unfused, fused = apply_liger(model, first, precision, args.device, sharded)
        if is_main:
            logger.info("--liger: first-batch loss %.6f fused, %.6f unfused", fused, unfused)
    if config.compile:
        compile_decoder_layers(model, config.mode)

    history = LossHistory()
    eval_records = prepared.eval_records
    task_metric = TaskMetricDuringTraining(lambda scored: _eval_metrics(config, scored, processor, eval_records))
    periodic = [task_metric] if config.eval_metric is not None and config.eval_steps else []
    group_lrs = {
        group: lr for group, lr in (("vision", config.vision_lr), ("projector", config.projector_lr)) if lr is not None
    }
    trainer = Phi3VTrainer(
        model=model,
        args=args,
        train_dataset=prepared.train,
        eval_dataset=prepared.eval,
        data_collator=collator,
        callbacks=[
            history,
            RichProgress(),
            CheckpointExtras(lambda f: _write_run_files(f, resolved, processor)),
            DataWaitMonitor(),
            *reporters,
            *periodic,
            *(callbacks or []),
        ],
        lengths=prepared.train_lengths,
        group_lrs=group_lrs,
    )
    trainer.remove_callback(PrinterCallback)
    engine = engine_of(trainer.accelerator)
    check_engine(config, engine)
    if is_main:
        logger.info(describe(engine))
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=checkpoint)
    runtime = time.perf_counter() - started
    if config.mode == "full" and model_dtype(config, precision) != DTYPES[precision]:
        trainer.save_dtype = DTYPES[precision]
    trainer.save_model(str(config.output_dir))

    eval_loss = None
    if prepared.eval is not None and len(prepared.eval):
        eval_loss = float(trainer.evaluate()["eval_loss"])
    if is_main:
        _write_run_files(config.output_dir, resolved, processor)
    metrics = None
    if config.eval_metric is not None and config.eval_files:
        metrics = _eval_metrics(config, trainer.model, processor, eval_records)  # every rank scores its shard
        if is_main:
            atomic_write_text(config.output_dir / EVAL_METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    result = TrainResult(
        output_dir=str(config.output_dir),
        mode=config.mode,
        global_step=output.global_step,
        losses=history.losses,
        train_runtime=round(runtime, 3),
        images_per_second=_throughput(trainer, "images_per_second"),
        tokens_per_second=_throughput(trainer, "tokens_per_second"),
        train_records=len(prepared.train),
        skipped_records=[item.where for item, _ in prepared.skipped],
        eval_loss=eval_loss,
        eval_metrics=metrics,
        eval_metrics_during_training=task_metric.history,
        distributed=engine,
    )
    if is_main:
        atomic_write_text(config.output_dir / RESULTS_FILE, json.dumps(asdict(result), indent=2) + "\n")
    return result


def _wait_for_all_ranks() -> None:
    """Every rank has checked the output folder before rank 0 writes into it."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _throughput(trainer: Trainer, key: str) -> float:
    """The mean of the logged rates over the run."""
    values = [entry[key] for entry in trainer.state.log_history if key in entry]
    return round(sum(values) / len(values), 3) if values else 0.0
