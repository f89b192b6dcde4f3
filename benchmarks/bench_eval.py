"""Evaluation speed on the tiny preset (CPU) or a full-size preset: batched generation and label scoring.

Two measurements, each against its baseline in the same run:

* generation: records/s answering ``--records`` prompts (half text-only, half with one image) with
  ``--max-new-tokens`` greedy tokens, one prompt at a time (the recipe's per-device batch of 1) vs
  ``--batch-size`` prompts per left-padded batch;
* label scoring: seconds per record to score ``--labels`` candidate answers, one full forward per
  candidate (prompt + answer) vs one prompt forward whose KV cache the candidates share.

Prints one JSON line per measurement: device, versions, settings, baseline and ours.

Examples::

    python benchmarks/bench_eval.py
    python benchmarks/bench_eval.py --batch-size 16 --records 32 --max-new-tokens 32
"""

import argparse
import json
import platform
import time

import torch
import transformers
from bench_common import cpu_model
from PIL import Image
from reference.scoring import full_forward_score

from phi3v_train.evaluation.generation import SpecialIds, generate_tokens
from phi3v_train.evaluation.predict import PromptTurn
from phi3v_train.evaluation.scoring import candidate_token_ids, score_candidates
from phi3v_train.model.sizes import build_model
from phi3v_train.model.tiny_tokenizer import tiny_processor


def device_name() -> str:
    return f"{torch.get_num_threads()}-thread CPU, {cpu_model()}"


def prompts(processor, count: int) -> list:
    encoded = []
    for index in range(count):
        images = [Image.new("RGB", (320, 240), (index * 20 % 256, 90, 160))] if index % 2 else []
        turn = PromptTurn(
            user=f"Question number {index}: what is shown?" * (1 + index % 3), images=("0",) * len(images)
        )
        encoded.append(processor.encode_conversation([turn], images, for_generation=True))
    return encoded


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--num-crops", type=int, default=4)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = build_model("tiny", seed=0).eval()
    processor = tiny_processor(args.num_crops)
    special = SpecialIds.from_tokenizer(processor.tokenizer)
    encoded = prompts(processor, args.records)
    common = {
        "device": device_name(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "preset": "tiny",
        "num_crops": args.num_crops,
    }

    def one_by_one() -> None:
        for prompt in encoded:
            generate_tokens(model, [prompt], special, max_new_tokens=args.max_new_tokens)

    def batched() -> None:
        for start in range(0, len(encoded), args.batch_size):
            generate_tokens(
                model, encoded[start : start + args.batch_size], special, max_new_tokens=args.max_new_tokens
            )

    baseline, ours = timed(one_by_one), timed(batched)
    print(
        json.dumps(
            common
            | {
                "measure": "generation records/s",
                "records": args.records,
                "max_new_tokens": args.max_new_tokens,
                "batch_size": args.batch_size,
                "baseline_batch_1": round(args.records / baseline, 3),
                "ours": round(args.records / ours, 3),
                "speedup": round(baseline / ours, 2),
            }
        )
    )

    labels = [f"Class{index}Name" for index in range(args.labels)]
    candidates = [candidate_token_ids(processor.tokenizer, label) for label in labels]
    image_prompts = [prompt for prompt in encoded if prompt.pixel_values is not None][:4]
    baseline = timed(lambda: [[full_forward_score(model, p, c) for c in candidates] for p in image_prompts])
    ours = timed(
        lambda: [
            score_candidates(model, p, candidates, pad_id=special.pad, chunk_size=args.batch_size)
            for p in image_prompts
        ]
    )
    print(
        json.dumps(
            common
            | {
                "measure": "label scoring s/record",
                "labels": args.labels,
                "records": len(image_prompts),
                "baseline_full_forward_per_label": round(baseline / len(image_prompts), 4),
                "ours_shared_prompt_cache": round(ours / len(image_prompts), 4),
                "speedup": round(baseline / ours, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
