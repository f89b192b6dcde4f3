"""UCF-101 frame extraction speed: videos/s per decoding backend and worker count, against the recipe's method.

The clips are 320x240, 25 fps MPEG-4 part 2 (XviD) AVIs (10 s unless --seconds) written into a temporary
folder. Every method decodes the 8 uniform frames of each clip and encodes them as JPEG (quality 95) in
memory, as the converter does; `baseline` is the recipe's method (decode from the start up to the last
wanted frame). Frames of every method are compared with the baseline's. The end-to-end converter
(`run_conversion`) is timed as well.
One JSON line per measurement on stdout; with 1 and 2 workers, a last line per clip set gives the ratios:
2 workers over 1 worker end to end (wall clock, median of --trials, and from CPU times: what a machine with a
free core per worker would give), and the converter's method over the recipe's at 1 worker.

    OMP_NUM_THREADS=1 python benchmarks/bench_convert.py --clips 8 --gop 12 --gop 250
    OMP_NUM_THREADS=1 python benchmarks/bench_convert.py --clips 300 --repeats 1 --seconds 2 --gop 300 --gop 12 \
        --method baseline --method pyav --trials 9
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
from bench_common import cpu_model

from phi3v_data.converters import Ucf101Converter, run_conversion
from phi3v_data.converters.images import jpeg_bytes
from phi3v_data.converters.video import decode_baseline, decode_decord, decode_pyav, probe, sample_indices
from phi3v_data.samples.ucf101 import BAND, HEIGHT, WIDTH, synthetic_frame, write_avi

METHODS = ("baseline", "pyav", "decord")


def _versions() -> dict[str, str]:
    import av
    import decord
    import PIL

    return {"av": av.__version__, "decord": decord.__version__, "pillow": PIL.__version__, "numpy": np.__version__}


def _decode(method: str, path: Path, frames: int) -> dict[int, np.ndarray]:
    total = probe(path).frames
    wanted = sample_indices(total, frames)
    if method == "baseline":
        return decode_baseline(path, wanted)
    if method == "pyav":
        return decode_pyav(path, wanted)
    return decode_decord(path, wanted, total)


def _one_clip(path: Path, method: str, frames: int, jpeg: bool) -> int:
    decoded = _decode(method, path, frames)
    return sum(len(jpeg_bytes(frame, 95)) if jpeg else frame.size for frame in decoded.values())


def _cpu_rate(method: str, clips: list[Path], frames: int, repeats: int, jpeg: bool) -> float:
    """Videos per CPU-second of this process, decoder threads included: the per-core rate. CPU time, unlike
    wall time, hardly depends on what else the (shared) machine runs."""
    work = clips * repeats
    start = time.process_time()
    for clip in work:
        _one_clip(clip, method, frames, jpeg)
    return len(work) / (time.process_time() - start)


def _wall_rate(method: str, clips: list[Path], frames: int, workers: int, repeats: int) -> float:
    """Videos per wall-clock second with ``workers`` processes (decode and JPEG), after a warm-up."""
    work = clips * repeats
    job = partial(_one_clip, method=method, frames=frames, jpeg=True)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(job, clips[:workers])
        start = time.perf_counter()
        pool.map(job, work, chunksize=1)
        return len(work) / (time.perf_counter() - start)


def _textured_frames(seed: int, count: int) -> Iterator[np.ndarray]:
    """A camera pan over a smooth random texture with the class shape on top: P-frames carry real detail,
    unlike the flat sample frames, so decoding costs about what it costs on real footage."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (HEIGHT // 4 + 1, (WIDTH + 2 * count) // 4 + 1, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)
    noise = rng.integers(0, 40, texture.shape, dtype=np.uint8)
    texture = (texture // 2 + noise).astype(np.uint8)
    for t in range(count):
        frame = synthetic_frame(t, seed % 3, seed)
        shape = frame[..., 0] == 250
        pan = texture[:HEIGHT, 2 * t : 2 * t + WIDTH]
        frame[BAND:] = np.where(shape[BAND:, :, None], frame[BAND:], pan[BAND:])
        yield frame


def _write_clips(folder: Path, count: int, gop: int, content: str, b_frames: int, length: int) -> list[Path]:
    clips = []
    for i in range(count):
        path = folder / f"Bench{i % 2}" / f"v_Bench{i % 2}_g{8 + i // 2:02d}_c01.avi"
        frames = (
            _textured_frames(i, length)
            if content == "textured"
            else (synthetic_frame(t, i % 3, i) for t in range(length))
        )
        write_avi(path, frames, gop=gop, b_frames=b_frames)
        clips.append(path)
    return clips


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _end_to_end(folder: Path, clips: list[Path], frames: int, workers: int) -> dict[str, float]:
    """One conversion into a fresh OUT: videos/s (wall clock, worker start-up included), and the CPU seconds
    of this process and of the worker processes (all joined by the end), with the load average around it."""
    src = folder / "pre-split"
    for n, clip in enumerate(clips):
        target = src / "train" / clip.parent.name / f"v_{clip.parent.name}_g{n:02d}_c01.avi"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(clip, target)
    out = Path(tempfile.mkdtemp(dir=folder))
    load_before = os.getloadavg()[0]
    parent, children = _cpu_seconds(resource.RUSAGE_SELF), _cpu_seconds(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run_conversion(Ucf101Converter(src, frames=frames), out, workers=workers, timeout=120)
    wall = time.perf_counter() - start
    return {
        "videos_per_s": len(clips) / wall,
        "parent_cpu_s": _cpu_seconds(resource.RUSAGE_SELF) - parent,
        "workers_cpu_s": _cpu_seconds(resource.RUSAGE_CHILDREN) - children,
        "load_1min": max(load_before, os.getloadavg()[0]),
    }


def _idle_machine_seconds(run: dict[str, float], workers: int) -> float:
    """The wall time the run would take with a free core per worker: the parent's CPU time counted as serial,
    the workers' shared evenly. Unlike wall time, it does not depend on other jobs on a shared machine."""
    return run["parent_cpu_s"] + run["workers_cpu_s"] / workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8, help="Clips per measurement pass.")
    parser.add_argument("--repeats", type=int, default=2, help="Passes over the clips per measurement.")
    parser.add_argument("--frames", type=int, default=8, help="Frames sampled per clip.")
    parser.add_argument("--gop", type=int, action="append", help="Encoder keyframe interval(s) (default 12).")
    parser.add_argument("--workers", type=int, action="append", help="Worker counts (default 1 and 2).")
    parser.add_argument("--b-frames", type=int, default=0, help="B-frames between reference frames (XviD uses 2).")
    parser.add_argument(
        "--content", action="append", choices=("textured", "flat"), help="Clip content(s) (default textured)."
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="Clip length in seconds (25 fps).")
    parser.add_argument("--method", action="append", choices=METHODS, help="Methods to time (default all).")
    parser.add_argument("--no-cpu-rate", action="store_true", help="Skip the per-CPU-second (single process) rates.")
    parser.add_argument(
        "--trials", type=int, default=1, help="End-to-end runs per worker count, interleaved; ratios use medians."
    )
    args = parser.parse_args()
    base = {"bench": "convert", "device": f"{os.cpu_count()}-core CPU, {cpu_model()}", "versions": _versions()}
    with tempfile.TemporaryDirectory() as tmp:
        for content in args.content or ["textured"]:
            for gop in args.gop or [12]:
                _measure(Path(tmp) / f"{content}-gop{gop}", base, args, gop, content)


def _measure(folder: Path, base: dict, args: argparse.Namespace, gop: int, content: str) -> None:
    methods = tuple(args.method or METHODS)
    clips = _write_clips(folder, args.clips, gop, content, args.b_frames, round(args.seconds * 25))
    reference = [_decode("baseline", clip, args.frames) for clip in clips]
    identical = {
        method: all(
            all(np.array_equal(decoded[i], ref[i]) for i in ref)
            for decoded, ref in zip((_decode(method, c, args.frames) for c in clips), reference, strict=True)
        )
        for method in methods
    }
    settings = {
        "clips": args.clips,
        "repeats": args.repeats,
        "frames": args.frames,
        "gop": gop,
        "b_frames": args.b_frames,
        "content": content,
        "clip": f"{args.seconds:g} s 320x240 25 fps mpeg4/XVID",
        "avg_clip_kb": round(sum(c.stat().st_size for c in clips) / len(clips) / 1024),
    }
    for stage in () if args.no_cpu_rate else ("decode", "decode+jpeg"):
        baseline = None
        for method in methods:
            rate = _cpu_rate(method, clips, args.frames, args.repeats, jpeg=stage == "decode+jpeg")
            baseline = baseline or rate
            line = {"stage": stage, "method": method, "videos_per_cpu_s": round(rate, 2)}
            line.update(speedup_vs_baseline=round(rate / baseline, 2), frames_identical_to_baseline=identical[method])
            print(json.dumps({**base, "settings": settings, **line}), flush=True)
    wall: dict[tuple[str, int], float] = {}
    worker_counts = args.workers or [1, 2]
    for workers in worker_counts:
        for method in methods:
            rate = wall[method, workers] = _wall_rate(method, clips, args.frames, workers, args.repeats)
            line = {"stage": "decode+jpeg", "method": method, "workers": workers, "videos_per_s": round(rate, 2)}
            print(json.dumps({**base, "settings": settings, **line}), flush=True)
    rates: dict[int, list[float]] = {}
    idle: dict[int, list[float]] = {}
    for trial in range(args.trials):
        for workers in worker_counts:
            run = _end_to_end(folder, clips * args.repeats, args.frames, workers)
            rates.setdefault(workers, []).append(run["videos_per_s"])
            idle.setdefault(workers, []).append(_idle_machine_seconds(run, workers))
            line = {"stage": "convert ucf101 (auto, JPEG files, journal)", "workers": workers, "trial": trial}
            line.update({key: round(value, 2) for key, value in run.items()})
            line["idle_machine_s"] = round(idle[workers][-1], 2)
            print(json.dumps({**base, "settings": settings, **line}), flush=True)
    if 1 in rates and 2 in rates and ("baseline", 1) in wall and ("pyav", 1) in wall:
        line = {
            "stage": "ratios (medians of the trials)",
            "convert_2_workers_over_1": round(statistics.median(rates[2]) / statistics.median(rates[1]), 2),
            "convert_2_workers_over_1_idle_machine": round(statistics.median(idle[1]) / statistics.median(idle[2]), 2),
            "pyav_over_recipe_1_worker": round(wall["pyav", 1] / wall["baseline", 1], 2),
        }
        print(json.dumps({**base, "settings": settings, **line}), flush=True)


if __name__ == "__main__":
    main()
