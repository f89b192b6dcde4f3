"""Throughput of `phi3v-data validate`: records/s schema-only, and with header image checks.

Generates, in a temporary folder, a JSONL file of --records lines (default 100,000; one image per
record, a mix of one-turn and two-turn records) and two image layouts:

* ``shared``: the records reference --distinct small JPEGs (default 64), as frame datasets do; each
  header is read once and cached, so this measures the per-record cost of the image check;
* ``unique``: every record has its own image file (a copy of one small JPEG), so records/s equals
  image headers read per second.

Baselines measured in the same run: ``json.loads`` of every line (the floor of any JSON validator)
and a bare ``PIL.Image.open`` header loop over the unique images in one process.

Prints one JSON line per case: device, versions, settings, the best wall time of --repeat runs and
the CPU time of this process in that run, as records (or headers) per wall second and, for the
one-process cases, per CPU second. On a shared machine the wall rates drop with the load average,
which each line records; the CPU rates much less.

  python benchmarks/bench_validate.py
  python benchmarks/bench_validate.py --records 20000 --repeat 1
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import PIL
import pydantic
from bench_common import cpu_model
from PIL import Image

from phi3v_data.validate import validate_files


def small_jpeg(index: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (index * 37 % 256, index * 91 % 256, 128)).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def line_for(index: int, image: str) -> str:
    if index % 4 == 3:
        conversations = [
            {"images": [image], "user": f"<|image_1|>\nWhat happens in clip {index}?", "assistant": "Juggling."},
            {"user": "Are you sure?", "assistant": "Yes."},
        ]
    else:
        conversations = [{"images": [image], "user": "What action is shown?", "assistant": f"Class{index % 101}"}]
    record = {"id": f"rec-{index:07d}", "source": "bench", "conversations": conversations}
    if index % 2:
        record["metadata"] = {"frame": index % 8, "video": f"v_{index // 8}.avi"}
    return json.dumps(record)


def make_dataset(folder: Path, records: int, distinct: int, unique: bool) -> Path:
    images = folder / "images"
    images.mkdir(parents=True)
    count = records if unique else distinct
    payloads = [small_jpeg(i) for i in range(min(count, 64))]
    for i in range(count):
        (images / f"{i:07d}.jpg").write_bytes(payloads[i % len(payloads)])
    path = folder / "bench.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(records):
            handle.write(line_for(i, f"{i % count:07d}.jpg") + "\n")
    return path


def cpu_seconds() -> float:
    """CPU time of this process (the image-check workers are forked by a fork server: not counted)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def best_time(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """The best wall time of ``repeat`` runs, and the CPU time of that run."""
    runs = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), cpu_seconds()
        run()
        runs.append((time.perf_counter() - wall, cpu_seconds() - cpu))
    return min(runs)


def validate_clean(path: Path, **options: object) -> None:
    report = validate_files([path], **options)  # type: ignore[arg-type]
    if not report.ok or report.records == 0:
        raise SystemExit(f"the generated file did not validate cleanly: {report.problems[:3]}")


def json_loads_all(path: Path) -> None:
    with open(path, "rb") as handle:
        for line in handle:
            json.loads(line)


def open_headers(folder: Path) -> None:
    for name in sorted(os.listdir(folder)):
        with Image.open(folder / name) as image:
            image.size  # noqa: B018 - reading the size is the work being timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000, help="lines in the generated file")
    parser.add_argument("--distinct", type=int, default=64, help="distinct images in the shared layout")
    parser.add_argument("--repeat", type=int, default=2, help="runs per case; the best is reported")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts for image checks")
    parser.add_argument("--skip-unique", action="store_true", help="skip the one-image-per-record layout")
    args = parser.parse_args()

    common = {
        "bench": "validate",
        "device": f"cpu ({os.cpu_count()} cores, {cpu_model()})",
        "python": platform.python_version(),
        "pydantic": pydantic.VERSION,
        "pillow": PIL.__version__,
        "records": args.records,
        "repeat": args.repeat,
    }

    def emit(case: str, timing: tuple[float, float], count: int, **settings: object) -> None:
        wall, cpu = timing
        unit = "headers" if case == "baseline_pil_open" else "records"
        result = {**common, "case": case, **settings, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
        result[f"{unit}_per_s"] = round(count / wall)
        if settings.get("workers", 1) == 1 or not settings.get("check_images", True):
            result[f"{unit}_per_cpu_s"] = round(count / cpu)
        result["loadavg_1m"] = round(os.getloadavg()[0], 2)  # other processes on the machine skew wall times
        print(json.dumps(result), flush=True)

    root = Path(tempfile.mkdtemp(prefix="bench_validate_"))
    try:
        shared = make_dataset(root / "shared", args.records, args.distinct, unique=False)
        n = args.records
        emit("baseline_json_loads", best_time(lambda: json_loads_all(shared), args.repeat), n)
        timing = best_time(lambda: validate_clean(shared, check_images=False), args.repeat)
        emit("schema_only", timing, n, check_images=False, workers=1)
        for workers in args.workers:
            timing = best_time(lambda w=workers: validate_clean(shared, workers=w), args.repeat)
            emit("header_checks_shared_images", timing, n, distinct_images=args.distinct, workers=workers)
        if not args.skip_unique:
            unique = make_dataset(root / "unique", n, args.distinct, unique=True)
            timing = best_time(lambda: open_headers(unique.parent / "images"), args.repeat)
            emit("baseline_pil_open", timing, n, workers=1)
            for workers in args.workers:
                timing = best_time(lambda w=workers: validate_clean(unique, workers=w), args.repeat)
                emit("header_checks_unique_images", timing, n, distinct_images=n, workers=workers)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
