"""A tiny UCF-101 look-alike: real MPEG-4 part 2 (XviD) AVIs in the official layout with ucfTrainTestlist.

Each class has a visual signature the 4M-parameter tiny model learns in a few hundred CPU steps (`make demo`):
the whole frame in its own colour (red, green, blue), striped its own way (rows, columns, checks), and its own
shape moving on its own path. Clips of a class differ a little (a seeded shift of the colour and the start of
the path), so the held-out groups are new clips of the same classes. A band of 10 black/white blocks at the
top encodes the frame index in binary, so tests can read back which frames a converter kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from phi3v_data.io import atomic_write_text

WIDTH, HEIGHT, FPS = 320, 240, 25
BITS = 10
BAND = 24
# (class folder as in classInd.txt, class name in the file names: the real data's HandStandPushups quirk)
CLASSES = (("ApplyEyeMakeup", "ApplyEyeMakeup"), ("Archery", "Archery"), ("HandstandPushups", "HandStandPushups"))
# frame colour of each class (cycled for more classes): far apart, so even random features tell them apart
PALETTE = ((220, 30, 30), (30, 200, 30), (30, 30, 220))
GROUPS = (1, 8, 15, 22)
CLIPS_PER_GROUP = 4
SECONDS = 2
STRIPE = 40


def index_band(index: int, width: int = WIDTH) -> np.ndarray:
    """The BAND-pixel-high strip encoding ``index`` as BITS blocks, most significant bit first."""
    band = np.zeros((BAND, width), np.uint8)
    block = width // BITS
    for bit in range(BITS):
        if index >> (BITS - 1 - bit) & 1:
            band[:, bit * block : (bit + 1) * block] = 255
    return band


def read_index(frame: np.ndarray) -> int:
    """Decodes the index from an RGB frame (robust to MPEG-4 and JPEG losses: block centres only)."""
    block = frame.shape[1] // BITS
    value = 0
    for bit in range(BITS):
        centre = frame[BAND // 4 : 3 * BAND // 4, bit * block + block // 4 : (bit + 1) * block - block // 4]
        value = value << 1 | int(centre.mean() > 128)
    return value


def synthetic_frame(
    index: int, class_index: int, clip_seed: int, width: int = WIDTH, height: int = HEIGHT
) -> np.ndarray:
    """One RGB frame: the class's colour in its stripes, its shape on its path, and the index band.
    ``clip_seed`` shifts the colour slightly and the path's phase."""
    y, x = np.mgrid[0:height, 0:width]
    shift = np.random.default_rng(clip_seed).integers(-12, 13, size=3)
    base = np.array(PALETTE[class_index % len(PALETTE)]) + shift
    stripes = ((y // STRIPE) % 2, (x // STRIPE) % 2, (x // STRIPE + y // STRIPE) % 2)[class_index % 3]
    frame = np.empty((height, width, 3), np.uint8)
    frame[...] = np.clip(base * (1 - stripes[..., None] / 2), 0, 255)
    t = index / FPS + (clip_seed % 7) / 7
    size = 18
    if class_index % 3 == 0:
        cx, cy = int(width * (0.15 + 0.7 * ((t / 2) % 1))), height // 2
        mask = (x - cx) ** 2 + (y - cy) ** 2 < size**2
    elif class_index % 3 == 1:
        cx, cy = width // 2, int(BAND + size + (height - BAND - 2 * size) * ((t / 2) % 1))
        mask = (abs(x - cx) < size) & (abs(y - cy) < size)
    else:
        cx = int(width * (0.2 + 0.6 * ((t / 2) % 1)))
        cy = int(BAND + size + (height - BAND - 2 * size) * ((t / 2) % 1))
        mask = (abs(x - cx) + abs(y - cy)) < size
    frame[mask] = (250, 220, 40)
    frame[:BAND] = index_band(index, width)[..., None]
    return frame


def write_avi(
    path: Path, frames: Iterable[np.ndarray], fps: int = FPS, gop: int = 12, bit_rate: int = 800_000, b_frames: int = 0
) -> None:
    """Encodes RGB frames as an MPEG-4 part 2 AVI with the XVID tag, single-threaded so bytes are reproducible.

    ``b_frames`` > 0 reorders frames as XviD's default settings do (decoding order differs from display order).
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.incomplete")
    with av.open(str(tmp), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.codec_tag = "XVID"
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bit_rate
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = b_frames
        stream.thread_count = 1
        first = True
        for array in frames:
            if first:
                stream.height, stream.width = array.shape[:2]
                first = False
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


def clip_name(file_class: str, group: int, clip: int) -> str:
    return f"v_{file_class}_g{group:02d}_c{clip:02d}.avi"


def write_ucf101_sample(
    out: Path,
    classes: tuple[tuple[str, str], ...] = CLASSES,
    groups: tuple[int, ...] = GROUPS,
    clips_per_group: int = CLIPS_PER_GROUP,
    seconds: float = SECONDS,
) -> list[Path]:
    """Writes ``out/<Class>/v_<Class>_gGG_cCC.avi`` and ``out/ucfTrainTestlist/``; returns the clips."""
    out = Path(out)
    clips = []
    lists = {f"{kind}0{n}": [] for kind in ("trainlist", "testlist") for n in (1, 2, 3)}
    num_frames = int(seconds * FPS)
    for class_index, (folder, file_class) in enumerate(classes):
        for group in groups:
            for clip in range(1, clips_per_group + 1):
                name = clip_name(file_class, group, clip)
                path = out / folder / name
                if not path.is_file():
                    seed = group * 10 + clip
                    write_avi(path, (synthetic_frame(i, class_index, seed) for i in range(num_frames)))
                clips.append(path)
                for n in (1, 2, 3):
                    tested = 7 * (n - 1) < group <= 7 * n
                    if tested:
                        lists[f"testlist0{n}"].append(f"{folder}/{name}")
                    else:
                        lists[f"trainlist0{n}"].append(f"{folder}/{name} {class_index + 1}")
    split_dir = out / "ucfTrainTestlist"
    atomic_write_text(
        split_dir / "classInd.txt", "".join(f"{i} {folder}\n" for i, (folder, _) in enumerate(classes, 1))
    )
    for list_name, lines in lists.items():
        atomic_write_text(split_dir / f"{list_name}.txt", "".join(f"{line}\n" for line in lines))
    return clips
