"""One-GPU training throughput at the DocVQA shape, next to the recipe's per-GPU A100 figures (SPEC section 7).

Run through ``benchmarks/gpu_suite.sh`` (which checks the packages first). For every mode (full, frozen
image model, LoRA, QLoRA) x attention (sdpa, and flash_attention_2 when flash-attn is installed) x layout
(padded, ``--packing``): the full-size preset with random weights, weights and autocast as
`phi3v-train run` sets them (fp32 master weights + bf16 autocast in full/frozen, bf16 base + fp32 adapters
in LoRA, nf4 base in QLoRA), non-reentrant activation checkpointing, AdamW, ``--batch-size`` DocVQA-like
records a step (one page at num_crops 16, letter and A4 pages, about 2,450 tokens each). The loss is the
labelled-positions loss and the crops are ragged, as in training.

Per case: img/s per GPU (records/s), tokens/s (real tokens), MFU and peak memory. MFU counts model FLOPs,
not hardware FLOPs (the checkpointing recompute is excluded): 2·P·T forward for each matmul parameter
and token (the vision tower's tokens are 577 per crop), the same again backward for activation gradients
wherever something before or at the layer trains, and again for weight gradients of trained weights;
causal attention 2·T²·width per layer forward (per record); ``lm_head`` only at labelled positions.

Where liger-kernel is importable (on CUDA), each model also runs packed with ``--liger``'s fused RMSNorm,
SwiGLU and cross-entropy, after the same fused-vs-unfused loss check as training (a refused check is
recorded as the case's error). liger-kernel is a pure-Python wheel (its kernels need Triton, which
ships with CUDA builds of torch).

``--smoke`` runs the tiny preset on CPU in fp32 (QLoRA and liger skipped: they need CUDA) so the script
itself is tested without a GPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from bench_common import cpu_model

from phi3v_data.image_tokens import CROP_SIZE, hd_layout, tokens_for_grid
from phi3v_train.data.collator import Phi3VDataCollator
from phi3v_train.data.packing import batch_token_count
from phi3v_train.errors import ConfigError
from phi3v_train.loading import quantized_copy
from phi3v_train.model.packed_attention import use_packed_sdpa
from phi3v_train.model.sizes import build_model
from phi3v_train.training.config import load_config
from phi3v_train.training.liger import apply_liger
from phi3v_train.training.modes import apply_mode

# SPEC section 7: 8x A100-80GB, DocVQA at num_crops 16, Phi-3-vision; img/s per GPU and peak GB per GPU.
RECIPE_A100_PER_GPU = {
    "full": {"img_s": {"no_flash_attn": 0.63, "flash_attn": 1.08}, "peak_gb": {"no_flash_attn": 42, "flash_attn": 36}},
    "frozen": {
        "img_s": {"no_flash_attn": 2.20, "flash_attn": 3.97},
        "peak_gb": {"no_flash_attn": 29, "flash_attn": 27},
    },
    "lora": {"img_s": {"no_flash_attn": 0.70, "flash_attn": 1.52}, "peak_gb": {"no_flash_attn": 50, "flash_attn": 16}},
    "qlora": {"img_s": {"no_flash_attn": 0.60, "flash_attn": 1.32}, "peak_gb": {"no_flash_attn": 32, "flash_attn": 10}},
}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}
PAGE_SIZES = [(1700, 2200), (1700, 2200), (1700, 2200), (2480, 3508)]  # letter, letter, letter, A4
USER = [1, 32010, 29871, 13]
ASSISTANT = [32007, 29871, 13, 32001]
CLIP_TOKENS_PER_CROP = 577
# (vision, language model) matmul passes of 2·P·T each: forward, activation gradients, weight gradients.
# Frozen image model: CLIP runs forward only. LoRA: the recipe's adapters sit in CLIP and the language
# model, so activation gradients flow through both; the adapters' own weight gradients are negligible.
PASSES = {"full": (3, 3), "frozen": (1, 3), "lora": (2, 2), "qlora": (2, 2)}


def docvqa_record(rng: random.Random, num_crops: int) -> dict[str, Any]:
    """One page, a question of 12-40 tokens and an answer of 4-12 tokens, as the dataset yields it."""
    width, height = rng.choice(PAGE_SIZES)
    layout = hd_layout(width, height, num_crops)
    used = 1 + layout.rows * layout.cols
    question = [rng.randrange(300, 30000) for _ in range(rng.randrange(12, 40))]
    prompt = USER + [-1] * tokens_for_grid(layout.rows, layout.cols) + [1, 29871, 13] + question + ASSISTANT
    answer = [rng.randrange(300, 30000) for _ in range(rng.randrange(4, 12))] + [32007, 32000]
    pixel_values = torch.zeros(1, num_crops + 1, 3, CROP_SIZE, CROP_SIZE)
    pixel_values[0, :used] = torch.randn(used, 3, CROP_SIZE, CROP_SIZE)
    return {
        "id": "page",
        "input_ids": prompt + answer,
        "labels": [-100] * len(prompt) + answer,
        "pixel_values": pixel_values,
        "image_sizes": torch.tensor([[layout.padded_height, layout.padded_width]]),
    }


def model_flops(model: torch.nn.Module, batch: dict[str, torch.Tensor], mode: str, lengths: list[int]) -> float:
    """Model FLOPs of one training step on ``batch`` (see the module docstring)."""
    config = model.config
    named = dict(model.named_parameters())
    vision = sum(p.numel() for n, p in named.items() if "vision_embed_tokens" in n and p.ndim >= 2)
    layers = sum(p.numel() for n, p in named.items() if ".layers." in n and "vision" not in n and p.ndim >= 2)
    head = config.vocab_size * config.hidden_size
    tokens = sum(lengths)
    crops = batch["pixel_values"].shape[0] if "pixel_values" in batch else 0
    supervised = int((batch["labels"][:, 1:] != -100).sum())
    attention = sum(2 * length**2 * config.hidden_size * config.num_hidden_layers for length in lengths)
    vision_passes, llm_passes = PASSES[mode]
    return (
        2 * vision * crops * CLIP_TOKENS_PER_CROP * vision_passes
        + 2 * layers * tokens * llm_passes
        + 2 * head * supervised * llm_passes
        + attention * llm_passes
    )


def peak_tflops(device_name: str, override: float | None) -> float | None:
    if override is not None:
        return override
    return next((value for key, value in PEAK_BF16_TFLOPS.items() if key in device_name), None)


def build(args: argparse.Namespace, mode: str, attn: str) -> torch.nn.Module:
    train_mode = "full" if mode == "frozen" else mode
    config = load_config(
        None,
        {
            "model": args.preset,
            "train_files": [args.scratch / "unused.jsonl"],
            "output_dir": args.scratch / "unused",
            "mode": train_mode,
            "freeze": ["image-model"] if mode == "frozen" else [],
            "attn": attn,
            "validate_data": False,
        },
    )
    weights = torch.float32 if train_mode == "full" or args.device == "cpu" else torch.bfloat16
    if mode == "qlora":
        model = quantized_copy(build_model(args.preset, dtype=weights, attn_implementation=attn), False, weights, attn)
    else:
        model = build_model(args.preset, dtype=weights, attn_implementation=attn, device=args.device)
    model.config.use_cache = False
    if mode != "qlora":  # prepare_model_for_kbit_training turns it on for QLoRA
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model = apply_mode(model, config).train()
    if attn == "sdpa":
        use_packed_sdpa(model)  # as `--packing` sets it; padded batches (with a mask) run plain sdpa
    return model


def to_device(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def run_case(
    args: argparse.Namespace, model: torch.nn.Module, optimizer, batches: list[tuple[dict, list[int]]], mode: str
) -> dict[str, Any]:
    """Timed steps over ``batches`` ((collated batch, record lengths) pairs) after ``args.warmup`` untimed ones."""
    autocast = torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.device == "cuda")

    def step(batch: dict[str, torch.Tensor]) -> None:
        with autocast:
            loss = model(**to_device(batch, args.device), use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batch, _ in batches[: args.warmup]:
        step(batch)
    timed = batches[args.warmup :]
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for batch, _ in timed:
        step(batch)
    if args.device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    records = len(timed) * args.batch_size
    tokens = sum(batch_token_count(batch) for batch, _ in timed)
    flops = sum(model_flops(model, batch, mode, lengths) for batch, lengths in timed)
    peak = peak_tflops(args.device_name, args.peak_tflops)
    result = {
        "img_s_per_gpu": round(records / seconds, 3),
        "tokens_s": round(tokens / seconds, 1),
        "step_s": round(seconds / len(timed), 4),
        "mfu": round(flops / seconds / (peak * 1e12), 4) if peak else None,
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if args.device == "cuda" else None,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="Tiny preset on CPU, one timed step per case.")
    parser.add_argument("--modes", default="full,frozen,lora,qlora")
    parser.add_argument("--batch-size", type=int, default=4, help="Records per step (default 4; smoke 2).")
    parser.add_argument("--max-length", type=int, default=8192, help="Packed row length.")
    parser.add_argument("--steps", type=int, default=None, help="Timed steps per case (default 4; smoke 1).")
    parser.add_argument("--warmup", type=int, default=None, help="Untimed steps per case (default 2; smoke 1).")
    parser.add_argument("--peak-tflops", type=float, default=None, help="Peak bf16 TFLOP/s (default: by GPU name).")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write.")
    args = parser.parse_args()
    args.preset = "tiny" if args.smoke else "phi-3.5-vision-instruct"
    args.device = "cpu" if args.smoke else "cuda"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device is visible; use --smoke for the CPU check")
    if args.smoke:
        args.batch_size = 2 if args.batch_size == 4 else args.batch_size
    args.steps = args.steps or (1 if args.smoke else 4)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 2)
    args.device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else cpu_model()
    with tempfile.TemporaryDirectory(prefix="phi3v-gpu-suite-") as scratch:
        args.scratch = Path(scratch)
        (args.scratch / "unused.jsonl").touch()  # TrainConfig wants a training file; the records are built here
        suite(args)


def suite(args: argparse.Namespace) -> None:
    num_crops = 1 if args.smoke else 16
    rng = random.Random(0)
    torch.manual_seed(0)
    items = [docvqa_record(rng, num_crops) for _ in range((args.warmup + args.steps) * args.batch_size)]
    groups = [items[i : i + args.batch_size] for i in range(0, len(items), args.batch_size)]
    collators = {
        "padded": Phi3VDataCollator(),
        "packed": Phi3VDataCollator(packing=True, max_length=args.max_length),
        "packed_one_row": Phi3VDataCollator(packing=True, single_row=True),  # what flash-attention 2 needs
    }
    layouts = {
        name: [(collate(group), [len(item["input_ids"]) for item in group]) for group in groups]
        for name, collate in collators.items()
    }

    attentions = ["sdpa"]
    try:
        import flash_attn  # noqa: F401

        attentions.append("flash_attention_2")
    except ImportError:
        print("flash-attn is not installed: sdpa only", file=sys.stderr)
    modes = args.modes.split(",")
    if "qlora" in modes and (args.device != "cuda" or not _has("bitsandbytes")):
        modes.remove("qlora")
        print("QLoRA skipped: it needs CUDA and bitsandbytes", file=sys.stderr)
    variants = [("padded", False), ("packed", False)]
    if args.device == "cuda" and importlib.util.find_spec("liger_kernel") is not None:
        variants.append(("packed", True))
    else:
        print("liger cases skipped: they need CUDA and liger-kernel", file=sys.stderr)

    cases = []
    for mode in modes:
        for attn in attentions:
            try:
                model = build(args, mode, attn)
                trainable = [p for p in model.parameters() if p.requires_grad]
                optimizer = torch.optim.AdamW(trainable, lr=1e-5, fused=args.device == "cuda")
                for layout, liger in variants:
                    one_row = layout == "packed" and attn == "flash_attention_2"
                    batches = layouts["packed_one_row" if one_row else layout]
                    if liger:
                        try:
                            apply_liger(model, batches[0][0], "bf16", torch.device("cuda"), sharded=False)
                        except ConfigError as exc:
                            cases.append(
                                {"mode": mode, "attn": attn, "layout": layout, "liger": True, "error": str(exc)}
                            )
                            print(f"{mode:7} {attn:18} liger refused: {exc}", flush=True)
                            continue
                    measured = run_case(args, model, optimizer, batches, mode)
                    case = {"mode": mode, "attn": attn, "layout": layout, "liger": liger, **measured}
                    recipe = RECIPE_A100_PER_GPU[mode]
                    key = "flash_attn" if attn == "flash_attention_2" else "no_flash_attn"
                    case["recipe_a100_img_s_per_gpu"] = recipe["img_s"][key]
                    case["recipe_a100_peak_gb"] = recipe["peak_gb"][key]
                    case["vs_recipe"] = round(case["img_s_per_gpu"] / recipe["img_s"]["flash_attn"], 2)
                    cases.append(case)
                    print(_row(case), flush=True)
            except torch.cuda.OutOfMemoryError as exc:
                cases.append({"mode": mode, "attn": attn, "error": f"out of memory: {str(exc).splitlines()[0]}"})
                print(f"{mode:7} {attn:18} out of memory", flush=True)
            finally:
                model = optimizer = None
                if args.device == "cuda":
                    torch.cuda.empty_cache()

    result = {
        "benchmark": "gpu_suite",
        "smoke": args.smoke,
        "device": args.device_name,
        "peak_bf16_tflops": peak_tflops(args.device_name, args.peak_tflops),
        "versions": {
            name: _version(name)
            for name in ("torch", "transformers", "peft", "bitsandbytes", "flash-attn", "liger-kernel")
        },
        "settings": {
            "preset": args.preset,
            "num_crops": num_crops,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "steps": args.steps,
            "warmup": args.warmup,
            "mean_tokens_per_record": round(sum(len(item["input_ids"]) for item in items) / len(items), 1),
        },
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


def _row(case: dict[str, Any]) -> str:
    mfu = f"{case['mfu']:.1%}" if case["mfu"] is not None else "n/a"
    peak = f"{case['peak_memory_gb']:.1f} GB" if case["peak_memory_gb"] is not None else "n/a"
    return (
        f"{case['mode']:7} {case['attn']:18} {case['layout']:7} {case['img_s_per_gpu']:8.3f} img/s/GPU "
        f"(recipe A100 {case['recipe_a100_img_s_per_gpu']:.2f}, x{case['vs_recipe']:.2f} vs its flash figure) "
        f"{case['tokens_s']:10.1f} tok/s  MFU {mfu}  peak {peak} (recipe {case['recipe_a100_peak_gb']} GB)"
        f"{'  liger' if case['liger'] else ''}"
    )


def _has(name: str) -> bool:
    return _version(name) is not None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
