"""The Phi-3(.5)-vision HD layout and image-token count, computed from an image's size alone.

Pure Python on purpose: the validator counts tokens without torch, and the image processor in
``phi3v_train`` resizes to exactly this layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

CROP_SIZE = 336
TOKENS_PER_CROP = 144
NEWLINE_TOKENS_PER_ROW = 12
# Beyond this aspect ratio the short side resizes to 0 px at num_crops=1 (the hub code then fails).
MAX_ASPECT_RATIO = CROP_SIZE


@dataclass(frozen=True)
class HDLayout:
    """Where an image of ``width`` x ``height`` lands after the HD transform.

    ``resized_*`` is the size before the white padding, ``padded_*`` after it (both in the
    original orientation). ``transposed`` tells that the transform ran on the transposed image.
    """

    resized_width: int
    resized_height: int
    padded_width: int
    padded_height: int
    transposed: bool

    @property
    def rows(self) -> int:
        return self.padded_height // CROP_SIZE

    @property
    def cols(self) -> int:
        return self.padded_width // CROP_SIZE


def hd_layout(width: int, height: int, num_crops: int) -> HDLayout:
    """Replicates ``HD_transform``: landscape transpose, scale search, resize, pad height to 336."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if num_crops < 1:
        raise ValueError(f"num_crops must be at least 1, got {num_crops}")
    transposed = width < height
    w, h = (height, width) if transposed else (width, height)
    ratio = w / h
    scale = 1
    while scale * math.ceil(scale / ratio) <= num_crops:
        scale += 1
    scale -= 1
    new_w = int(scale * CROP_SIZE)
    new_h = int(new_w / ratio)
    if new_h == 0:
        raise ValueError(
            f"a {width}x{height} image is too elongated for the HD transform at num_crops={num_crops} "
            f"(its short side would be resized to 0 px)"
        )
    padded_h = int(math.ceil(new_h / CROP_SIZE) * CROP_SIZE)
    if transposed:
        return HDLayout(new_h, new_w, padded_h, new_w, True)
    return HDLayout(new_w, new_h, new_w, padded_h, False)


def tokens_for_grid(rows: int, cols: int) -> int:
    """``(rows*cols + 1)*144 + 1 + (rows + 1)*12``: sub-crops, glb_GN, global image, newlines."""
    return (rows * cols + 1) * TOKENS_PER_CROP + 1 + (rows + 1) * NEWLINE_TOKENS_PER_ROW


@lru_cache(maxsize=1 << 16)
def num_image_tokens(width: int, height: int, num_crops: int) -> int:
    """Image tokens that an image of ``width`` x ``height`` costs at ``num_crops`` (cached: datasets repeat sizes)."""
    layout = hd_layout(width, height, num_crops)
    return tokens_for_grid(layout.rows, layout.cols)
