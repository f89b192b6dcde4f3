"""Training throughput per mode: images/s, tokens/s and peak memory, through the real Trainer path.

CPU (default): the tiny preset at one crop. GPU: the full-size preset with random weights at the
DocVQA shape of the recipe's guide (one image at num_crops 16 = 2,509 image tokens, about 2.5k tokens
in all, bf16, sdpa, gradient checkpointing), printed next to the recipe's per-GPU A100 figures
(SPEC section 7; 8x A100-80GB, DocVQA, Phi-3-vision).

    python benchmarks/bench_train.py                       # CPU, tiny, modes full,frozen,lora,qlora
    python benchmarks/bench_train.py --preset phi-3.5-vision-instruct --device cuda   # lora,frozen,qlora

Prints one JSON line per mode (device, versions, settings, results).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import torch
from bench_common import cpu_model
from PIL import Image
from transformers import PrinterCallback, TrainerCallback

from phi3v_train.data.collator import Phi3VDataCollator
from phi3v_train.data.prepare import prepare_data
from phi3v_train.loading import quantized_copy
from phi3v_train.model.sizes import build_model
from phi3v_train.model.tiny_tokenizer import tiny_processor
from phi3v_train.training.config import load_config
from phi3v_train.training.modes import apply_mode
from phi3v_train.training.trainer import Phi3VTrainer, model_dtype, resolve_precision, training_arguments

# img/s per GPU of the recipe's guide, DocVQA at 16 crops, (without flash attention, with it).
RECIPE_A100_PER_GPU = {
    "full": (0.63, 1.08),
    "frozen": (2.20, 3.97),
    "lora": (0.70, 1.52),
    "qlora": (0.60, 1.32),
}
QUESTION = "What is the invoice number written at the top right of this page? Answer briefly."


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step (synchronised on CUDA)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._start)


def write_data(folder: Path, records: int) -> Path:
    """A 336x336 page image (2x2 grid at 4 crops, 4x4 = 2,509 tokens at 16) and `records` one-turn records."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (1700, 1700), (235, 235, 235)).save(folder / "images" / "page.png")
    line = {
        "id": "",
        "source": "bench",
        "conversations": [{"images": ["page.png"], "user": QUESTION, "assistant": "INV-20431"}],
    }
    path = folder / "train.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for index in range(records):
            handle.write(json.dumps({**line, "id": f"r{index}"}) + "\n")
    return path


def peak_memory_gb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def bench_mode(args: argparse.Namespace, mode: str, folder: Path) -> dict:
    train_mode = "full" if mode == "frozen" else mode
    values = {
        "model": args.preset,
        "train_files": [write_data(folder / "data", args.steps + args.warmup)],
        "output_dir": folder / mode,
        "mode": train_mode,
        "freeze": ["image-model"] if mode == "frozen" else [],
        "num_crops": args.num_crops,
        "max_steps": args.steps + args.warmup,
        "batch_size": 1,
        "precision": args.precision,
        "model_dtype": args.model_dtype,
        "attn": args.attn,
        "learning_rate": 1e-5,
        "warmup_steps": 0,
        "logging_steps": 1,
        "report_to": [],
        "workers": args.workers,
        "validate_data": False,
    }
    config = load_config(None, values)
    precision = resolve_precision(config.precision)
    weights_dtype = model_dtype(config, precision)
    processor = tiny_processor(num_crops=args.num_crops)
    prepared = prepare_data(config.train_files, [], processor, validate=False)
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if mode == "qlora":
        model = quantized_copy(build_model(args.preset, dtype=weights_dtype, attn_implementation=args.attn),
                               True, weights_dtype, args.attn)  # fmt: skip
    else:
        model = build_model(args.preset, dtype=weights_dtype, attn_implementation=args.attn, device=args.device)
    model.config.use_cache = False
    model = apply_mode(model, config)
    timer = StepTimer()
    trainer = Phi3VTrainer(
        model=model,
        args=training_arguments(config, precision, 1, False),
        train_dataset=prepared.train,
        data_collator=Phi3VDataCollator(pad_token_id=processor.tokenizer.pad_token_id),
        callbacks=[timer],
        lengths=prepared.train_lengths,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    measured = timer.times[args.warmup :]
    step_time = sum(measured) / len(measured)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result = {
        "mode": mode,
        "step_time_s": round(step_time, 4),
        "images_per_s": round(1 / step_time, 4),
        "tokens_per_s": round(prepared.train_lengths[0] / step_time, 1),
        "peak_memory_gb": round(peak_memory_gb(args.device), 2),
        "seq_len": prepared.train_lengths[0],
        "trainable_params": trainable,
        "precision": precision,
    }
    if args.device == "cuda":
        no_fa, fa = RECIPE_A100_PER_GPU[mode]
        result["recipe_a100_img_s_per_gpu"] = {"no_flash_attn": no_fa, "flash_attn": fa}
        result["speedup_vs_recipe_flash_attn"] = round(result["images_per_s"] / fa, 2)
    del trainer, model
    return result


def cpu_name() -> str:
    return f"{os.cpu_count()}-core CPU, {cpu_model()}"


def environment(args: argparse.Namespace) -> dict:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else cpu_name()
    return {
        "device": args.device,
        "device_name": device_name,
        "torch_threads": torch.get_num_threads(),
        **{name: version(name) for name in ("torch", "transformers", "peft", "accelerate", "bitsandbytes")},
        "preset": args.preset,
        "num_crops": args.num_crops,
        "attn": args.attn,
        "gradient_checkpointing": True,
        "batch_size": 1,
        "steps": args.steps,
        "warmup_steps_skipped": args.warmup,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", help="Model preset (random weights).")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--modes", default=None, help="Comma list of full, frozen, lora, qlora (the last one given wins)."
    )
    parser.add_argument("--num-crops", type=int, default=None, help="Default: 1 on CPU, 16 on CUDA (DocVQA).")
    parser.add_argument("--steps", type=int, default=None, help="Timed steps (default 5 CPU, 8 CUDA).")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed first steps.")
    parser.add_argument("--attn", default="sdpa", choices=("sdpa", "flash_attention_2", "eager"))
    parser.add_argument("--precision", default=None, help="Default: fp32 on CPU, bf16 on CUDA.")
    parser.add_argument(
        "--model-dtype", default="auto", help="Weights dtype; auto: fp32 master weights in full/frozen, else compute."
    )
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers.")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is visible")
    args.num_crops = args.num_crops or (16 if cuda else 1)
    args.steps = args.steps or (8 if cuda else 5)
    args.precision = args.precision or ("bf16" if cuda else "fp32")
    modes = (args.modes or ("lora,frozen,qlora" if cuda else "full,frozen,lora,qlora")).split(",")
    if len(modes) > 1:
        # one process per mode, so that each peak-memory figure is that mode's own
        for mode in modes:
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--modes", mode], check=True)
        return
    header = environment(args)
    with tempfile.TemporaryDirectory(prefix="phi3v-bench-train-") as folder:
        try:
            result = bench_mode(args, modes[0], Path(folder))
        except torch.cuda.OutOfMemoryError as exc:
            result = {"mode": modes[0], "error": f"out of memory: {str(exc).splitlines()[0]}"}
        print(json.dumps({**header, **result}), flush=True)


if __name__ == "__main__":
    main()
