"""Throughput of the image processor: images/s at num_crops 4 and 16, document-sized and small images.

For each image size and ``num_crops`` it times, on the same pre-decoded PIL images (noise, so no
content shortcut; JPEG decoding is not included):

* ``phi3v``: ``Phi3VImageProcessor`` (portrait images resized without the two full-size transposes,
  a lookup table for ToTensor+Normalize, white padding written directly, crops cut by one
  reshape/permute straight into the preallocated output tensor);
* ``hub_style``: the baseline, the hub processor's steps as written there (PIL transpose, resize,
  PIL white pad, transpose back, ToTensor, Normalize, bicubic global view, crops, ``torch.cat``
  with zero crops, ``torch.stack``): ``tests/reference/hd_transform.py``, the tests' reference;
* ``processor_call``: the whole ``Phi3VProcessor`` call (tiny tokenizer) on a one-image chat prompt.

Both image paths produce identical tensors (checked before timing). Single process; torch threads
from ``--threads`` (default 1, as in a DataLoader worker). Prints one JSON line per case with the
best wall-clock time per image and the best process CPU time per image (the steadier figure on a
shared machine).

  python benchmarks/bench_processor.py
  python benchmarks/bench_processor.py --images 8 --repeats 2 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

import numpy as np
import PIL
import torch
import transformers
from bench_common import cpu_model
from PIL import Image
from reference.hd_transform import reference_pixel_values

from phi3v_train.model.image_processing import Phi3VImageProcessor
from phi3v_train.model.tiny_tokenizer import tiny_processor

SIZES = ((1700, 2200), (320, 240))
NUM_CROPS = (4, 16)
PROMPT = "<|user|>\n<|image_1|>\nWhat is written in the document?<|end|>\n<|assistant|>\n"


def hub_style(images: list[Image.Image], num_crops: int) -> torch.Tensor:
    """The hub's ``Phi3VImageProcessor.preprocess`` steps (the tests' reference), image by image, then stacked."""
    return torch.stack([reference_pixel_values(image, num_crops) for image in images])


def time_per_image(
    run: Callable[[Image.Image], object], images: list[Image.Image], repeats: int
) -> tuple[float, float]:
    """Best wall-clock and best process-CPU seconds per image over ``repeats`` passes."""
    run(images[0])
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for image in images:
            run(image)
        best_wall = min(best_wall, (time.perf_counter() - wall) / len(images))
        best_cpu = min(best_cpu, (time.process_time() - cpu) / len(images))
    return best_wall, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16, help="distinct images per size (default 16)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the best is reported (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise images")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    common = {
        "bench": "processor",
        "device": f"cpu: {cpu_model()}",
        "cpu_count": len(os.sched_getaffinity(0)),
        "torch_threads": args.threads,
        "versions": {"torch": torch.__version__, "pillow": PIL.__version__, "transformers": transformers.__version__},
        "images": args.images,
        "repeats": args.repeats,
    }
    for width, height in SIZES:
        images = [Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)) for _ in range(args.images)]
        for num_crops in NUM_CROPS:
            processor = Phi3VImageProcessor(num_crops=num_crops)
            full = tiny_processor(num_crops=num_crops)
            if not torch.equal(processor(images[:1])["pixel_values"], hub_style(images[:1], num_crops)):
                raise SystemExit(f"phi3v and hub_style differ at {width}x{height}, num_crops {num_crops}")
            cases = {
                "hub_style": lambda image, n=num_crops: hub_style([image], n),
                "phi3v": lambda image, p=processor: p([image]),
                "processor_call": lambda image, p=full: p(PROMPT, [image]),
            }
            for method, run in cases.items():
                wall, cpu = time_per_image(run, images, args.repeats)
                record = {
                    **common,
                    "method": method,
                    "image_size": f"{width}x{height}",
                    "num_crops": num_crops,
                    "ms_per_image": round(wall * 1e3, 2),
                    "images_per_s": round(1 / wall, 1),
                    "cpu_ms_per_image": round(cpu * 1e3, 2),
                }
                print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
