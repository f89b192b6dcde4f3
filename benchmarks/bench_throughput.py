"""Throughput of issue 14 on CPU, each figure with its baseline in the same run (tiny preset, fp32, sdpa).

The length mix: DocVQA-like records (one page at num_crops 16; letter, A4 and receipt page sizes),
UCF-like records (8 frames of 320x240 at num_crops 4) and text-only records, shuffled with a fixed seed
and cut into micro-batches of ``--batch-size``. Three measurements:

* **tokens/s**, one forward+backward per micro-batch, padded batches (the collator's default) against
  ``--packing`` rows of at most ``--max-length`` (sdpa one record at a time, as `--packing` sets it), both
  with the labelled-positions loss. The two layouts
  run alternately on the same micro-batches; tokens are real tokens (no pads).
* **peak memory of the loss** on the first micro-batch: a fresh process per case reports its peak RSS
  for forward+backward of the decoder alone (no ``lm_head``), with transformers' loss over the full
  logits, and with the labelled-positions loss. Loss memory = case minus decoder alone.
* **collator bytes** of ``pixel_values`` per micro-batch: ragged crops against the processor's padding
  (a padded batch cannot even mix num_crops 16 and 4; the ragged one can).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_throughput.py

Prints one JSON line (device, versions, settings, results).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from importlib import metadata
from typing import Any

import torch
from bench_common import cpu_model
from transformers.loss.loss_utils import ForCausalLMLoss

from phi3v_data.image_tokens import CROP_SIZE, hd_layout, tokens_for_grid
from phi3v_train.data.collator import Phi3VDataCollator
from phi3v_train.data.packing import batch_token_count
from phi3v_train.model.packed_attention import use_packed_sdpa
from phi3v_train.model.sizes import build_model

USER = [1, 32010, 29871, 13]
QUESTION = [1, 29871, 13, 5618, 338, 4318, 29973, 32007, 29871, 13, 32001]
PAGE_SIZES = [(1700, 2200)] * 6 + [(2480, 3508)] * 3 + [(800, 2400)]  # letter, A4, receipt
FRAME_SIZE = (320, 240)


def make_record(rng: random.Random, kind: str) -> dict[str, Any]:
    """A dataset item of ``kind`` (docvqa, ucf, text) with random pixels, as the dataset yields it."""
    if kind == "text":
        prompt = [1, 32010, 29871, 13] + [rng.randrange(300, 30000) for _ in range(rng.randrange(30, 200))] + [32007]
        prompt.append(32001)
        answer = [rng.randrange(300, 30000) for _ in range(rng.randrange(10, 60))] + [32007, 32000]
        sizes: list[tuple[int, int]] = []
        num_crops = 1
    else:
        num_crops = 16 if kind == "docvqa" else 4
        sizes = [rng.choice(PAGE_SIZES)] if kind == "docvqa" else [FRAME_SIZE] * 8
        prompt = list(USER)
        for k, (width, height) in enumerate(sizes, start=1):
            layout = hd_layout(width, height, num_crops)
            prompt += [-k] * tokens_for_grid(layout.rows, layout.cols) + [1]
        prompt += QUESTION[1:]
        answer = [rng.randrange(300, 30000) for _ in range(8 if kind == "docvqa" else 4)] + [32007, 32000]
    item: dict[str, Any] = {
        "id": kind,
        "input_ids": prompt + answer,
        "labels": [-100] * len(prompt) + answer,
        "pixel_values": None,
        "image_sizes": None,
    }
    if sizes:
        generator = torch.Generator().manual_seed(rng.randrange(1 << 30))
        pixel_values = torch.zeros(len(sizes), num_crops + 1, 3, CROP_SIZE, CROP_SIZE)
        grid_sizes = []
        for i, (width, height) in enumerate(sizes):
            layout = hd_layout(width, height, num_crops)
            used = 1 + layout.rows * layout.cols
            pixel_values[i, :used] = torch.randn(used, 3, CROP_SIZE, CROP_SIZE, generator=generator)
            grid_sizes.append([layout.padded_height, layout.padded_width])
        item["pixel_values"] = pixel_values
        item["image_sizes"] = torch.tensor(grid_sizes)
    return item


def length_mix(records: int, seed: int) -> list[dict[str, Any]]:
    """40% DocVQA-like, 30% UCF-like, 30% text-only, shuffled."""
    rng = random.Random(seed)
    kinds = ["docvqa"] * (records * 4 // 10) + ["ucf"] * (records * 3 // 10)
    kinds += ["text"] * (records - len(kinds))
    rng.shuffle(kinds)
    return [make_record(rng, kind) for kind in kinds]


def micro_batches(items: list[dict[str, Any]], batch_size: int) -> list[list[dict[str, Any]]]:
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def step(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Wall and CPU seconds of one forward+backward (CPU time is what the figure rests on when other
    processes share the cores; one thread)."""
    wall, cpu = time.perf_counter(), time.process_time()
    model(**batch, use_cache=False).loss.backward()
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    model.zero_grad(set_to_none=True)
    return elapsed


def bench_tokens_per_second(args: argparse.Namespace, batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
    models = {"padded": build_model("tiny", seed=0).train(), "packed": build_model("tiny", seed=0).train()}
    use_packed_sdpa(models["packed"])  # what `--packing` sets on sdpa
    collators = {
        "padded": Phi3VDataCollator(),
        "packed": Phi3VDataCollator(packing=True, max_length=args.max_length),
    }
    collated = {name: [collate(batch) for batch in batches] for name, collate in collators.items()}
    for name in collators:
        step(models[name], collated[name][0])  # warm-up
    seconds = {name: [0.0, 0.0] for name in collators}
    for index in range(len(batches)):
        order = list(collators) if index % 2 == 0 else list(reversed(collators))
        for name in order:
            wall, cpu = step(models[name], collated[name][index])
            seconds[name][0] += wall
            seconds[name][1] += cpu
    vision = [0.0, 0.0]  # the image embedding alone, the same work in both layouts
    embedding = models["padded"].model.vision_embed_tokens
    for batch in collated["padded"]:
        if "pixel_values" in batch:
            wall, cpu = time.perf_counter(), time.process_time()
            embedding(batch["pixel_values"], batch["image_sizes"]).sum().backward()
            vision[0] += time.perf_counter() - wall
            vision[1] += time.process_time() - cpu
            models["padded"].zero_grad(set_to_none=True)
    tokens = sum(batch_token_count(batch) for batch in collated["padded"])
    positions = {name: sum(batch["input_ids"].numel() for batch in collated[name]) for name in collators}
    result: dict[str, Any] = {
        name: {
            "wall_seconds": round(seconds[name][0], 2),
            "cpu_seconds": round(seconds[name][1], 2),
            "tokens_per_second": round(tokens / seconds[name][0], 1),
            "tokens_per_cpu_second": round(tokens / seconds[name][1], 1),
            "positions": positions[name],
            "rows": sum(batch["input_ids"].shape[0] for batch in collated[name]),
        }
        for name in collators
    }
    result["image_embedding_only"] = {"wall_seconds": round(vision[0], 2), "cpu_seconds": round(vision[1], 2)}
    result["real_tokens"] = tokens
    result["speedup_wall"] = round(seconds["padded"][0] / seconds["packed"][0], 2)
    result["speedup_cpu"] = round(seconds["padded"][1] / seconds["packed"][1], 2)
    return result


def memory_case(case: str, batch: dict[str, torch.Tensor]) -> int:
    """Peak RSS (bytes) of this process after one forward+backward of ``case``."""
    model = build_model("tiny", seed=0).train()
    if case == "decoder":
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        model.model(**inputs, use_cache=False).last_hidden_state.sum().backward()
    elif case == "full_logits":
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        logits = model(**inputs, use_cache=False).logits
        ForCausalLMLoss(logits, batch["labels"], model.config.vocab_size).backward()
    else:
        model(**batch, use_cache=False).loss.backward()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bench_loss_memory(args: argparse.Namespace, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    peaks = {}
    for case in ("decoder", "full_logits", "labelled"):
        command = [sys.executable, __file__, "--memory-case", case, *argv_of(args)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        peaks[case] = json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_bytes"]
    supervised = int((batch["labels"][:, 1:] != -100).sum())
    full = peaks["full_logits"] - peaks["decoder"]
    labelled = peaks["labelled"] - peaks["decoder"]
    return {
        "positions": batch["input_ids"].numel(),
        "supervised_positions": supervised,
        "supervised_share": round(supervised / batch["input_ids"].numel(), 5),
        "peak_rss_mb": {case: round(value / 2**20) for case, value in peaks.items()},
        "loss_memory_mb": {"full_logits": round(full / 2**20, 1), "labelled": round(labelled / 2**20, 1)},
        "logits_fp32_mb": round(batch["input_ids"].numel() * 32064 * 4 / 2**20, 1),
        "loss_memory_ratio": round(labelled / full, 4) if full > 0 else None,
    }


def bench_collator_bytes(batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """``pixel_values`` bytes per micro-batch. Padded: the items' processor tensors, which the padded
    collator concatenates (it cannot here: their num_crops differ, 16 and 4); ragged: what it sends."""
    collate = Phi3VDataCollator()
    sizes: dict[str, list[int]] = {"padded": [], "ragged": []}
    for batch in batches:
        sizes["padded"].append(sum(item["pixel_values"].nbytes for item in batch if item["pixel_values"] is not None))
        pixels = collate(batch).get("pixel_values")
        sizes["ragged"].append(0 if pixels is None else pixels.nbytes)
    mean = {name: sum(values) / len(values) for name, values in sizes.items()}
    return {
        "pixel_values_mb_per_batch": {name: round(value / 2**20, 1) for name, value in mean.items()},
        "ragged_over_padded": round(mean["ragged"] / mean["padded"], 4),
    }


def argv_of(args: argparse.Namespace) -> list[str]:
    return [
        f"--records={args.records}",
        f"--batch-size={args.batch_size}",
        f"--max-length={args.max_length}",
        f"--seed={args.seed}",
        f"--threads={args.threads}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory-case", choices=("decoder", "full_logits", "labelled"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    batches = micro_batches(length_mix(args.records, args.seed), args.batch_size)
    if args.memory_case:
        print(json.dumps({"peak_rss_bytes": memory_case(args.memory_case, Phi3VDataCollator()(batches[0]))}))
        return
    lengths = [len(item["input_ids"]) for batch in batches for item in batch]
    result = {
        "benchmark": "throughput",
        "device": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "torch": torch.__version__,
        "transformers": metadata.version("transformers"),
        "settings": {**vars(args), "lengths": lengths, "preset": "tiny", "dtype": "fp32", "attn": "sdpa"},
        "collator": bench_collator_bytes(batches),
        "loss_memory": bench_loss_memory(args, Phi3VDataCollator()(batches[0])),
        "tokens_per_second": bench_tokens_per_second(args, batches),
    }
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
