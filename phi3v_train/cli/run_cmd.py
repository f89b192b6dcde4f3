"""`phi3v-train run`: fine-tune from `conversations` JSONL files (full, frozen parts, LoRA, QLoRA)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer
from rich.console import Console

from phi3v_train.training.config import load_config

console = Console(stderr=True, highlight=False)


def _groups(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def setup_logging() -> None:
    """Library logs (phi3v_train) at INFO on stderr; transformers' own chatter at warnings only."""
    import transformers

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("phi3v_train").setLevel(logging.INFO)
    transformers.logging.set_verbosity_warning()


def run(
    model: str | None = typer.Option(
        None,
        "--model",
        help="Preset (tiny), hub id (microsoft/Phi-3.5-vision-instruct), checkpoint folder or run folder.",
    ),
    train_file: list[Path] | None = typer.Option(
        None, "--train-file", help="Training JSONL (repeat for several files)."
    ),
    eval_file: list[Path] | None = typer.Option(
        None, "--eval-file", help="Evaluation JSONL (repeatable): eval loss, and the task metric with --eval-metric."
    ),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", help="Folder for checkpoints, logs and the final model."
    ),
    mode: str | None = typer.Option(None, "--mode", help="full | lora | qlora (default lora)."),
    config_file: Path | None = typer.Option(
        None, "--config", exists=True, dir_okay=False, help="YAML with any of these options (CLI values win)."
    ),
    preset: str | None = typer.Option(
        None, "--preset", help="Recipe settings of a task: docvqa | hateful-memes | nlvr2 | ucf101."
    ),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Optimizer steps to run (overrides --epochs)."),
    epochs: float | None = typer.Option(None, "--epochs", help="Passes over the training data (default 1)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the data order, init of random presets and LoRA."),
    num_crops: int | None = typer.Option(
        None, "--num-crops", help="HD crops per image, 1-16 (default: the processor's; 16 for documents, 4 for video)."
    ),
    tokenizer: Path | None = typer.Option(
        None, "--tokenizer", file_okay=False, help="Processor folder, needed for full-size random presets."
    ),
    image_root: Path | None = typer.Option(
        None, "--image-root", file_okay=False, help="Image folder (default: `images` beside each JSONL)."
    ),
    freeze: str | None = typer.Option(
        None,
        "--freeze",
        help="Comma list of vision, projector, separators, embeddings, llm; `image-model` = the recipe's "
        "frozen image model (vision, projector, separators and token embeddings).",
    ),
    also_train: str | None = typer.Option(
        None,
        "--also-train",
        help="LoRA modes: groups trained in full and saved with the adapter (projector, embeddings).",
    ),
    vision_lr: float | None = typer.Option(None, "--vision-lr", help="Learning rate of the vision tower (full mode)."),
    projector_lr: float | None = typer.Option(None, "--projector-lr", help="Learning rate of the projector."),
    lora_rank: int | None = typer.Option(None, "--lora-rank", help="LoRA rank (default 64)."),
    lora_alpha: float | None = typer.Option(None, "--lora-alpha", help="LoRA alpha (default 128 = 2 x rank)."),
    lora_dropout: float | None = typer.Option(None, "--lora-dropout", help="LoRA dropout (default 0)."),
    lora_targets: str | None = typer.Option(
        None, "--lora-targets", help="Comma list of module names replacing the default targets."
    ),
    dora: bool | None = typer.Option(None, "--dora/--no-dora", help="Weight-decomposed LoRA (DoRA)."),
    rslora: bool | None = typer.Option(None, "--rslora/--no-rslora", help="Rank-stabilised LoRA scaling."),
    double_quant: bool | None = typer.Option(
        None, "--double-quant/--no-double-quant", help="QLoRA double quantization."
    ),
    precision: str | None = typer.Option(
        None, "--precision", help="auto | bf16 | fp16 | fp32 (auto: bf16 GPU, fp32 CPU)."
    ),
    attn: str | None = typer.Option(None, "--attn", help="sdpa | flash_attention_2 | eager."),
    gradient_checkpointing: bool | None = typer.Option(
        None, "--gradient-checkpointing/--no-gradient-checkpointing", help="Non-reentrant checkpointing (default on)."
    ),
    max_length: int | None = typer.Option(
        None, "--max-length", help="Skip (never cut) records longer than this many tokens, images included."
    ),
    on_overflow: str | None = typer.Option(None, "--on-overflow", help="skip (default, with a warning) | error."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Per-device micro-batch (default 1)."),
    global_batch_size: int | None = typer.Option(
        None, "--global-batch-size", help="Samples per optimizer step over all GPUs; sets gradient accumulation."
    ),
    learning_rate: float | None = typer.Option(
        None, "--learning-rate", "--lr", help="Peak learning rate (default 4e-5)."
    ),
    weight_decay: float | None = typer.Option(None, "--weight-decay", help="AdamW weight decay (default 0.01)."),
    warmup_steps: int | None = typer.Option(None, "--warmup-steps", help="Linear warmup steps (default 50)."),
    logging_steps: int | None = typer.Option(None, "--logging-steps", help="Log every N steps (default 10)."),
    save_steps: int | None = typer.Option(None, "--save-steps", help="Save a checkpoint every N steps."),
    save_total_limit: int | None = typer.Option(None, "--save-total-limit", help="Keep only the last N checkpoints."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the newest checkpoint-N in --output-dir (optimizer, data position, RNG)."
    ),
    resume_from: Path | None = typer.Option(
        None, "--resume-from", file_okay=False, help="Continue from this checkpoint folder instead."
    ),
    eval_steps: int | None = typer.Option(None, "--eval-steps", help="Evaluate the loss on --eval-file every N steps."),
    eval_metric: str | None = typer.Option(
        None,
        "--eval-metric",
        help="Task metric on --eval-file after training, and every --eval-steps (auto, accuracy, anls...).",
    ),
    eval_limit: int | None = typer.Option(
        None, "--eval-limit", help="Score a seeded sample of N eval records with the metric."
    ),
    workers: int | None = typer.Option(None, "--workers", help="DataLoader workers decoding images (GPU 4, CPU 0)."),
    group_by_length: bool | None = typer.Option(
        None, "--group-by-length/--no-group-by-length", help="Batch records of similar token counts together."
    ),
    deepspeed: str | None = typer.Option(None, "--deepspeed", help="zero2 | zero3 | PATH to a DeepSpeed JSON."),
    fsdp: str | None = typer.Option(None, "--fsdp", help="FSDP options for accelerate, e.g. 'full_shard auto_wrap'."),
    validate: bool | None = typer.Option(
        None, "--validate/--no-validate", help="Validate the files first, as `phi3v-data validate` (default on)."
    ),
) -> None:
    """Fine-tune Phi-3(.5)-vision on record files.

    Examples:

      phi3v-train run --model tiny --mode lora --train-file data/ucf101_train.jsonl --output-dir runs/demo
      --num-crops 1 --max-steps 40

      torchrun --nproc_per_node 8 $(which phi3v-train) run --model microsoft/Phi-3.5-vision-instruct
      --preset docvqa --mode lora --train-file docvqa_train.jsonl --output-dir runs/docvqa --precision bf16
      --attn flash_attention_2

      phi3v-train run --config phi3v_train/configs/nlvr2_frozen.yaml --resume
    """
    overrides = {
        "model": model,
        "train_files": train_file or None,
        "eval_files": eval_file or None,
        "output_dir": output_dir,
        "mode": mode,
        "preset": preset,
        "max_steps": max_steps,
        "epochs": epochs,
        "seed": seed,
        "num_crops": num_crops,
        "tokenizer": tokenizer,
        "image_root": image_root,
        "freeze": _groups(freeze),
        "also_train": _groups(also_train),
        "vision_lr": vision_lr,
        "projector_lr": projector_lr,
        "lora_rank": lora_rank,
        "lora_alpha": lora_alpha,
        "lora_dropout": lora_dropout,
        "lora_targets": _groups(lora_targets),
        "dora": dora,
        "rslora": rslora,
        "double_quant": double_quant,
        "precision": precision,
        "attn": attn,
        "gradient_checkpointing": gradient_checkpointing,
        "max_length": max_length,
        "on_overflow": on_overflow,
        "batch_size": batch_size,
        "global_batch_size": global_batch_size,
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "warmup_steps": warmup_steps,
        "logging_steps": logging_steps,
        "save_steps": save_steps,
        "save_total_limit": save_total_limit,
        "resume": str(resume_from) if resume_from is not None else ("latest" if resume else None),
        "eval_steps": eval_steps,
        "eval_metric": eval_metric,
        "eval_limit": eval_limit,
        "workers": workers,
        "group_by_length": group_by_length,
        "deepspeed": deepspeed,
        "fsdp": fsdp,
        "validate_data": validate,
    }
    config = load_config(config_file, overrides)
    setup_logging()
    from phi3v_train.training.trainer import train

    result = train(config)
    if os.environ.get("RANK", "0") != "0":
        return
    if result.skipped_records:
        console.print(f"[yellow]Skipped {len(result.skipped_records)} over-long record(s)[/] (see the warning above)")
    if result.first_loss is not None:
        console.print(
            f"loss: first {result.first_loss:.4f} -> last {result.last_loss:.4f} over {result.global_step} steps"
        )
    if result.eval_loss is not None:
        console.print(f"eval loss: {result.eval_loss:.4f}")
    console.print(f"[green]Done.[/] Model and logs in {result.output_dir}")


def register(app: typer.Typer) -> None:
    """Adds `run` to `app`."""
    app.command("run")(run)
