"""Frame sampling and decoding of video clips: PyAV with seeks, decord, and the recipe's full decode.

Every backend returns the wanted frames as RGB arrays keyed by frame index, or raises
:class:`CorruptVideoError` when one of them cannot be decoded (a truncated or garbage file).
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from phi3v_data.errors import MissingDependencyError

SAMPLING_POLICIES = ("uniform", "center", "random", "fps")
DECODERS = ("auto", "pyav", "decord")
# `auto` tries PyAV first: benchmarks/bench_convert.py measured PyAV with seeks at 1.2-5.2x decord's
# per-core rate on 10 s 320x240 XviD clips (decord was slower than the full decode in most cases).
AUTO_ORDER = ("pyav", "decord")
# A clip whose header and stream disagree is sampled from its decodable frames, unless fewer than this share
# of the declared frames decode: then the file is truncated or damaged, not merely mis-counted.
MIN_DECODED_SHARE = 0.9


class CorruptVideoError(Exception):
    """The clip cannot be opened or read."""


class MissingFramesError(CorruptVideoError):
    """Some wanted frames, which the header declares, cannot be decoded: the clip is truncated or damaged."""


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    """T: the frame count the header declares, or the decoded count when it declares none or disagrees."""
    fps: float
    counted: bool
    """True when T was counted by decoding."""
    declared: int | None = None
    """The header's frame count when it disagrees with the decoded count."""


def sample_indices(
    total: int,
    num: int,
    policy: str = "uniform",
    *,
    seed: int = 0,
    key: str = "",
    fps: float | None = None,
    video_fps: float | None = None,
) -> list[int]:
    """Frame indices to keep from a clip of ``total`` frames.

    ``uniform`` is ``floor(i*T/N)`` (the recipe's formula), ``center`` the centre of each of the N equal
    segments, ``random`` a random offset within each segment seeded by ``seed`` and ``key`` (the clip),
    ``fps`` one frame every ``video_fps/fps`` frames from the start, at most N.
    """
    if total <= 0:
        raise ValueError("the clip has no frames")
    if num <= 0:
        raise ValueError("the number of frames must be positive")
    if policy == "uniform":
        return [i * total // num for i in range(num)]
    if policy == "center":
        return [min(total - 1, ((2 * i + 1) * total) // (2 * num)) for i in range(num)]
    if policy == "random":
        rng = random.Random(f"{seed}:{key}")
        starts = [i * total // num for i in range(num + 1)]
        return [starts[i] + rng.randrange(max(1, starts[i + 1] - starts[i])) for i in range(num)]
    if policy == "fps":
        if not fps or fps <= 0 or not video_fps or video_fps <= 0:
            raise ValueError("fps sampling needs a positive --fps and a clip frame rate")
        step = Fraction(video_fps).limit_denominator(1001) / Fraction(fps).limit_denominator(1001)
        indices = []
        j = 0
        while len(indices) < num and int(j * step) < total:
            indices.append(int(j * step))
            j += 1
        return indices
    raise ValueError(f"unknown sampling policy {policy!r}; choose one of {', '.join(SAMPLING_POLICIES)}")


def _open(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise CorruptVideoError(f"cannot open: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise CorruptVideoError("no video stream")
    return container


class _Clock:
    """Maps timestamps to frame indices with integer arithmetic: index = round((pts - origin) * time_base * rate).

    ``origin`` is the timestamp of the first frame decoded from the start, which is frame 0 by definition
    (the recipe counts decoded frames). It is not always the stream's start time: in an AVI with B-frames
    the first frame carries pts 1.
    """

    def __init__(self, stream, origin: int) -> None:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or stream.time_base is None:
            raise CorruptVideoError("the stream declares no frame rate")
        factor = Fraction(stream.time_base) * Fraction(rate)
        self.origin = origin
        self.num, self.den = factor.numerator, factor.denominator

    def index(self, pts: int) -> int:
        return (2 * (pts - self.origin) * self.num + self.den) // (2 * self.den)


def _from_keyframe(frames: Iterator) -> Iterator:
    """The frames a decoder outputs after a seek, from the first keyframe on: B-frames shown before it
    lack their references."""
    started = False
    for frame in frames:
        if frame.pts is None:
            raise CorruptVideoError("frames carry no timestamps")
        started = started or frame.key_frame
        if started:
            yield frame


def count_frames(path: Path) -> int:
    """The number of frames that decode, from the start of the clip."""
    import av

    container = _open(path)
    try:
        return sum(1 for _ in container.decode(container.streams.video[0]))
    except av.FFmpegError as exc:
        raise CorruptVideoError(f"decoding failed while counting frames: {exc}") from exc
    finally:
        container.close()


def recounted(path: Path, info: VideoInfo) -> VideoInfo:
    """``info`` with T counted by decoding; MissingFramesError when too few of the declared frames decode."""
    decoded = count_frames(path)
    if decoded < MIN_DECODED_SHARE * info.frames or decoded <= 0:
        raise MissingFramesError(
            f"the header declares {info.frames} frames, {decoded} decode (truncated or damaged file)"
        )
    return VideoInfo(
        frames=decoded, fps=info.fps, counted=True, declared=info.frames if decoded != info.frames else None
    )


def probe(path: Path) -> VideoInfo:
    """Reads T from the header. When it declares 0 frames, or a count other than the index's, counts them
    by decoding the whole clip (a header that under-reports would otherwise sample the start only)."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        total = stream.frames
        packets = len(stream.index_entries)
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
    finally:
        container.close()
    if total <= 0:
        total = count_frames(path)
        if total <= 0:
            raise CorruptVideoError("the clip has no decodable frames")
        return VideoInfo(frames=total, fps=fps, counted=True)
    info = VideoInfo(frames=total, fps=fps, counted=False)
    return recounted(path, info) if packets and packets != total else info


def _check_complete(wanted: Sequence[int], got: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    missing = sorted(set(wanted) - set(got))
    if missing:
        shown = ", ".join(map(str, missing[:8])) + (" …" if len(missing) > 8 else "")
        raise MissingFramesError(f"frames {shown} could not be decoded (truncated or damaged file)")
    return got


def decode_baseline(path: Path, wanted: Sequence[int]) -> dict[int, np.ndarray]:
    """The recipe's method: decode from the start up to the last wanted frame, keeping the wanted ones."""
    import av

    targets = set(wanted)
    last = max(targets)
    got: dict[int, np.ndarray] = {}
    container = _open(path)
    try:
        for index, frame in enumerate(container.decode(container.streams.video[0])):
            if index in targets:
                got[index] = frame.to_ndarray(format="rgb24")
            if index >= last:
                break
    except av.FFmpegError as exc:
        raise CorruptVideoError(f"decoding failed: {exc}") from exc
    finally:
        container.close()
    return _check_complete(wanted, got)


def decode_pyav(path: Path, wanted: Sequence[int]) -> dict[int, np.ndarray]:
    """PyAV with seeks: when the keyframe before a wanted frame lies ahead of the decoder, jump to it.

    A keyframe's place in the index is its decoding position; with B-frames it may be shown after the
    wanted frame, so the jump then goes one keyframe further back. Decoding and the RGB conversion are
    single-threaded (PyAV's scaler would start a thread per core): parallelism comes from worker processes, one
    clip each.
    """
    import av
    from av.video.reformatter import VideoReformatter

    targets = sorted(set(wanted))
    keep = set(targets)
    got: dict[int, np.ndarray] = {}
    # One reformatter for the clip: `frame.to_ndarray` builds a new swscale context per frame, which
    # costs more than decoding a 320x240 frame.
    rgb = VideoReformatter()
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        frames = _from_keyframe(container.decode(stream))
        frame = next(frames, None)
        if frame is None:
            raise MissingFramesError("no frame could be decoded")
        clock = _Clock(stream, frame.pts)
        position = 0
        keyframes = sorted((clock.index(e.timestamp), e.timestamp) for e in stream.index_entries if e.is_keyframe)
        for target in targets:
            k = bisect.bisect_right(keyframes, (target, math.inf)) - 1
            if frame is not None and k >= 0 and keyframes[k][0] > position + 1:
                while True:
                    container.seek(keyframes[k][1] if k >= 0 else stream.start_time or 0, stream=stream, backward=True)
                    frames = _from_keyframe(container.decode(stream))
                    frame = next(frames, None)
                    if frame is None:
                        break
                    position = clock.index(frame.pts)
                    if position <= target or k < 0:
                        break
                    k -= 1
            while frame is not None:
                if position in keep and position not in got:
                    got[position] = rgb.reformat(frame, format="rgb24", threads=1).to_ndarray()
                if position >= target:
                    break
                frame = next(frames, None)
                if frame is not None:
                    position = clock.index(frame.pts)
    except av.FFmpegError as exc:
        raise CorruptVideoError(f"decoding failed: {exc}") from exc
    finally:
        container.close()
    return _check_complete(targets, got)


def decode_decord(path: Path, wanted: Sequence[int], total: int) -> dict[int, np.ndarray]:
    """decord's random access. It clamps indices past the end, so a short clip is caught by its length."""
    import decord

    targets = sorted(set(wanted))
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except (decord.DECORDError, RuntimeError) as exc:
        raise CorruptVideoError(f"decord cannot open: {exc}") from exc
    try:
        if len(reader) < total and targets[-1] >= len(reader):
            raise MissingFramesError(f"decord finds {len(reader)} frames, the header declares {total}")
        try:
            batch = reader.get_batch(targets).asnumpy()
        except (decord.DECORDError, RuntimeError, IndexError) as exc:
            raise CorruptVideoError(f"decord failed: {exc}") from exc
    finally:
        del reader
    return _check_complete(targets, {index: batch[i] for i, index in enumerate(targets)})


def _decord_installed() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


def decoder_chain(choice: str) -> list[str]:
    """The backends to try in order: the one named, or `auto`'s installed ones, fastest first."""
    if choice == "auto":
        return [name for name in AUTO_ORDER if name != "decord" or _decord_installed()]
    if choice not in DECODERS:
        raise ValueError(f"unknown decoder {choice!r}; choose one of {', '.join(DECODERS)}")
    if choice == "decord" and not _decord_installed():
        raise MissingDependencyError("--decoder decord needs decord; install it with `pip install 'phi3v[video]'`")
    return [choice]


_BACKENDS: dict[str, Callable[[Path, Sequence[int], int], dict[int, np.ndarray]]] = {
    "pyav": lambda path, wanted, total: decode_pyav(path, wanted),
    "decord": decode_decord,
}


def read_frames(path: Path, wanted: Sequence[int], total: int, chain: Sequence[str]) -> tuple[str, dict]:
    """Decodes ``wanted`` with the first backend of ``chain`` that succeeds; returns (backend, frames).

    A clip whose header-declared frames are missing is corrupt for every backend, so there is no
    fallback then; other failures (the backend cannot open or read the file) try the next one.
    """
    reasons = []
    for name in chain:
        try:
            return name, _BACKENDS[name](path, wanted, total)
        except MissingFramesError as exc:
            raise MissingFramesError("; ".join([*reasons, f"{name}: {exc}"])) from exc
        except CorruptVideoError as exc:
            reasons.append(f"{name}: {exc}")
    raise CorruptVideoError("; ".join(reasons))
