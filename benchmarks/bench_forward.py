"""Forward+backward step time of a randomly initialised preset at the DocVQA shape, per attention backend.

One document page at ``num_crops`` 16 (a 4x4 grid, 2,509 image tokens) plus a short question and
answer: about 2.5k tokens, batch 1, random pixels, loss on the answer only. Prints one JSON line per
attention backend: device, versions, settings, median step time, tokens/s and peak memory (CUDA:
max allocated, reset per backend; CPU: the process's peak RSS, which only grows, so compare CPU
memory across separate runs with one ``--attn`` each).

Examples::

    python benchmarks/bench_forward.py                      # tiny preset on CPU, sdpa vs eager
    python benchmarks/bench_forward.py --preset phi-3.5-vision-instruct --device cuda --dtype bf16
    python benchmarks/bench_forward.py --preset phi-3.5-vision-instruct --device cuda --dtype bf16 \\
        --attn sdpa --gradient-checkpointing
"""

import argparse
import json
import platform
import resource
import statistics
import time

import torch
import transformers
from bench_common import cpu_model

from phi3v_data.image_tokens import CROP_SIZE, tokens_for_grid
from phi3v_train.model.sizes import SIZE_NAMES, build_model

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
QUESTION = [1, 29871, 13, 5618, 338, 278, 2635, 310, 278, 1842, 29973, 32007, 29871, 13, 32001]
ANSWER = [29871, 29896, 29929, 29947, 29945, 32007, 29871, 13, 32000]


def docvqa_batch(rows: int, cols: int, num_crops: int, device: str, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.zeros(1, num_crops + 1, 3, CROP_SIZE, CROP_SIZE)
    used = 1 + rows * cols
    pixel_values[0, :used] = torch.randn(used, 3, CROP_SIZE, CROP_SIZE, generator=generator)
    ids = [1, 32010, 29871, 13] + [-1] * tokens_for_grid(rows, cols) + QUESTION + ANSWER
    labels = [-100] * (len(ids) - len(ANSWER)) + ANSWER
    return {
        "input_ids": torch.tensor([ids], device=device),
        "labels": torch.tensor([labels], device=device),
        "pixel_values": pixel_values.to(device),
        "image_sizes": torch.tensor([[rows * CROP_SIZE, cols * CROP_SIZE]], device=device),
    }


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return f"{torch.get_num_threads()}-thread CPU, {cpu_model()}"


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def run(args: argparse.Namespace, attention: str) -> dict:
    model = build_model(
        args.preset, dtype=DTYPES[args.dtype], attn_implementation=attention, seed=args.seed, device=args.device
    )
    model.train()
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    batch = docvqa_batch(args.rows, args.cols, args.num_crops, args.device, args.seed)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(args.device)
    times, loss = [], None
    for step in range(args.warmup + args.steps):
        synchronize(args.device)
        start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        synchronize(args.device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    step_s = statistics.median(times)
    tokens = batch["input_ids"].numel()
    result = {
        "bench": "forward_backward",
        "device": device_name(args.device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "preset": args.preset,
        "dtype": args.dtype,
        "attn_implementation": model.config._attn_implementation,
        "gradient_checkpointing": args.gradient_checkpointing,
        "num_crops": args.num_crops,
        "grid": f"{args.rows}x{args.cols}",
        "tokens": tokens,
        "steps": args.steps,
        "step_s_median": round(step_s, 4),
        "step_s_min": round(min(times), 4),
        "tokens_per_s": round(tokens / step_s, 1),
        "peak_memory_mb": round(peak_memory_mb(args.device), 1),
        "memory_kind": "cuda_max_allocated" if args.device.startswith("cuda") else "process_max_rss",
        "loss": round(loss.item(), 4),
    }
    del model
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=SIZE_NAMES, default="tiny", help="model preset (random weights)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="parameter dtype")
    parser.add_argument("--attn", default="sdpa,eager", help="comma-separated attention backends to compare")
    parser.add_argument("--num-crops", type=int, default=16, help="crops the processor pads to")
    parser.add_argument("--rows", type=int, default=4, help="HD grid rows (4x4 = a page at num_crops 16)")
    parser.add_argument("--cols", type=int, default=4, help="HD grid columns")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="checkpoint decoder and CLIP layers")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and pixels")
    args = parser.parse_args()
    if args.rows * args.cols > args.num_crops:
        parser.error(f"a {args.rows}x{args.cols} grid needs num_crops >= {args.rows * args.cols}")
    for attention in args.attn.split(","):
        print(json.dumps(run(args, attention.strip())), flush=True)


if __name__ == "__main__":
    main()
