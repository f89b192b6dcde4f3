"""The Phi-3(.5)-vision image processor: the hub's HD transform, reproduced exactly and vectorised.

Per image: convert to RGB, transpose portrait images to landscape, PIL-bilinear resize to the layout
of :func:`phi3v_data.image_tokens.hd_layout`, pad the height with white (centred), transpose back,
normalise with the CLIP mean/std, then take a bicubic 336x336 global view of the padded image and
cut it into row-major 336x336 crops. Output per image: ``[global, crop_0, ..., crop_k-1]``,
zero-padded to ``num_crops + 1``. The result equals the hub's bit for bit; portrait images get
there without the two full-size transposes (see :func:`_resize_transposed`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor
from transformers.processing_utils import ImagesKwargs
from transformers.utils import TensorType

from phi3v_data.image_tokens import CROP_SIZE, TOKENS_PER_CROP, hd_layout, num_image_tokens, tokens_for_grid
from phi3v_data.io import atomic_write_text

IMAGE_PROCESSOR_FILE = "preprocessor_config.json"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PROCESSOR_CLASS_NAME = "Phi3VProcessor"
HUB_ONLY_KEYS = ("auto_map", "image_processor_type", "processor_class")


class Phi3VImageProcessorKwargs(ImagesKwargs, total=False):
    """The hub processor's own keys on top of transformers' image kwargs."""

    num_crops: int
    num_img_tokens: int


class Phi3VImageProcessor(BaseImageProcessor):
    """The hub's ``Phi3VImageProcessor`` as a transformers image processor (same config file, same outputs).

    ``__call__(images)`` returns a ``BatchFeature`` with ``pixel_values`` float32
    ``[n, num_crops+1, 3, 336, 336]``, ``image_sizes`` int64 ``[n, 2]`` (padded height, width) and
    ``num_img_tokens`` (a list of ints, the length of each image's ``-k`` run). ``return_tensors`` "pt"
    (the default) or "np" selects the array type of the first two. ``do_convert_rgb`` is kept for the
    config file only: like the hub code, every image is converted to RGB. The hub file's ``auto_map``
    (remote code the folder does not hold) is read and not written back; exports add their own.
    """

    model_input_names: ClassVar[list[str]] = ["pixel_values", "image_sizes"]
    valid_kwargs = Phi3VImageProcessorKwargs

    def __init__(
        self,
        num_crops: int = 4,
        num_img_tokens: int = TOKENS_PER_CROP,
        image_mean: Sequence[float] = CLIP_MEAN,
        image_std: Sequence[float] = CLIP_STD,
        do_convert_rgb: bool = True,
        **hub_only_keys: Any,
    ) -> None:
        unknown = sorted(set(hub_only_keys) - set(HUB_ONLY_KEYS))
        if unknown:
            raise TypeError(f"Phi3VImageProcessor got unknown argument(s): {', '.join(unknown)}")
        super().__init__()
        if num_img_tokens != TOKENS_PER_CROP:
            raise ValueError(
                f"num_img_tokens must be {TOKENS_PER_CROP} (CLIP ViT-L/14-336 with the 2x2 merge), got {num_img_tokens}"
            )
        if len(image_mean) != 3 or len(image_std) != 3:
            raise ValueError("image_mean and image_std need one value per RGB channel")
        self.num_crops = _checked_num_crops(num_crops)
        self.num_img_tokens = int(num_img_tokens)
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.do_convert_rgb = bool(do_convert_rgb)
        self._lut = _normalization_table(self.image_mean, self.image_std)

    def calc_num_image_tokens_from_image_size(self, width: int, height: int) -> int:
        """Image tokens an image of ``width`` x ``height`` costs at this processor's ``num_crops``."""
        return num_image_tokens(width, height, self.num_crops)

    def calc_num_image_tokens(self, images: Image.Image | Sequence[Image.Image]) -> list[int]:
        """Image tokens of each image, from its size alone (no pixels are processed)."""
        image_list = [images] if isinstance(images, Image.Image) else list(images)
        return [self.calc_num_image_tokens_from_image_size(*image.size) for image in image_list]

    def __call__(self, images: Image.Image | Sequence[Image.Image], **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, **kwargs)

    def preprocess(
        self,
        images: Image.Image | Sequence[Image.Image],
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        do_convert_rgb: bool | None = None,
        return_tensors: str | TensorType | None = "pt",
        num_crops: int | None = None,
    ) -> BatchFeature:
        """Processes one PIL image or a list of them (the hub's signature, plus ``num_crops``).

        ``image_mean``/``image_std``/``num_crops`` override this processor's values for the call;
        ``do_convert_rgb`` is accepted and ignored, as in the hub code.
        """
        tensor_type = _tensor_type(return_tensors)
        crops = self.num_crops if num_crops is None else _checked_num_crops(num_crops)
        lut = self._lut
        if image_mean is not None or image_std is not None:
            lut = _normalization_table(image_mean or self.image_mean, image_std or self.image_std)
        image_list = [images] if isinstance(images, Image.Image) else list(images)
        n = len(image_list)
        pixel_values = torch.empty(n, crops + 1, 3, CROP_SIZE, CROP_SIZE)
        image_sizes = torch.zeros(n, 2, dtype=torch.long)
        token_counts = []
        for i, image in enumerate(image_list):
            hd = _hd_image(self._as_rgb(image, i), crops, lut)
            rows, cols = hd.shape[1] // CROP_SIZE, hd.shape[2] // CROP_SIZE
            global_view = F.interpolate(hd[None], size=(CROP_SIZE, CROP_SIZE), mode="bicubic", align_corners=False)
            pixel_values[i, 0] = global_view[0]
            grid = hd.reshape(3, rows, CROP_SIZE, cols, CROP_SIZE).permute(1, 3, 0, 2, 4)
            pixel_values[i, 1 : 1 + rows * cols] = grid.reshape(rows * cols, 3, CROP_SIZE, CROP_SIZE)
            pixel_values[i, 1 + rows * cols :] = 0
            image_sizes[i, 0], image_sizes[i, 1] = hd.shape[1], hd.shape[2]
            token_counts.append(tokens_for_grid(rows, cols))
        data: dict[str, Any] = {"pixel_values": pixel_values, "image_sizes": image_sizes}
        if tensor_type == "np":
            data = {key: value.numpy() for key, value in data.items()}
        data["num_img_tokens"] = token_counts
        return BatchFeature(data)

    def hd_image(self, image: Image.Image) -> torch.Tensor:
        """The normalised, white-padded HD image ``[3, H, W]`` (H and W multiples of 336) of an RGB image."""
        return _hd_image(image, self.num_crops, self._lut)

    @staticmethod
    def _as_rgb(image: Any, index: int) -> Image.Image:
        """A plain ``convert("RGB")``, whatever ``do_convert_rgb`` says: the hub code converts unconditionally."""
        if not isinstance(image, Image.Image):
            raise TypeError(f"image {index} is a {type(image).__name__}, expected a PIL.Image.Image")
        return image if image.mode == "RGB" else image.convert("RGB")

    def to_dict(self) -> dict[str, Any]:
        """The hub's ``preprocessor_config.json`` keys (``processor_class`` included, which the hub code reads)."""
        return {
            "do_convert_rgb": self.do_convert_rgb,
            "image_mean": list(self.image_mean),
            "image_processor_type": type(self).__name__,
            "image_std": list(self.image_std),
            "num_crops": self.num_crops,
            "num_img_tokens": self.num_img_tokens,
            "processor_class": PROCESSOR_CLASS_NAME,
        }

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> list[str]:
        """Writes ``preprocessor_config.json`` (the hub's format) atomically; ``push_to_hub`` as in transformers."""
        if push_to_hub:
            return super().save_pretrained(save_directory, push_to_hub=True, **kwargs)
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / IMAGE_PROCESSOR_FILE
        atomic_write_text(path, self.to_json_string())
        return [str(path)]


def _checked_num_crops(num_crops: Any) -> int:
    if isinstance(num_crops, bool) or not isinstance(num_crops, int | np.integer) or num_crops < 1:
        raise ValueError(f"num_crops must be an integer of at least 1, got {num_crops!r}")
    return int(num_crops)


def _tensor_type(return_tensors: str | TensorType | None) -> str:
    """ "pt" or "np"; ``None`` keeps the default PyTorch tensors (the hub code returns them too)."""
    value = "pt" if return_tensors is None else getattr(return_tensors, "value", return_tensors)
    if value not in ("pt", "np"):
        raise ValueError(f"return_tensors must be 'pt' or 'np', got {return_tensors!r}")
    return value


def _hd_image(image: Image.Image, num_crops: int, lut: torch.Tensor) -> torch.Tensor:
    layout = hd_layout(*image.size, num_crops)
    width, height = layout.resized_width, layout.resized_height
    if min(width, height) < 1:
        raise ValueError(f"image of {image.width}x{image.height} is too elongated to resize to {width}x{height}")
    resized = _resize_transposed(image, width, height) if layout.transposed else _resize(image, width, height)
    pixels = np.asarray(resized)
    hd = torch.empty(3, layout.padded_height, layout.padded_width)
    white = lut[:, 255, None, None]
    if layout.transposed:
        left = (layout.padded_width - width) // 2
        hd[:, :, :left] = white
        hd[:, :, left + width :] = white
        body = hd[:, :, left : left + width]
    else:
        top = (layout.padded_height - height) // 2
        hd[:, :top] = white
        hd[:, top + height :] = white
        body = hd[:, top : top + height]
    table = lut.numpy()
    for channel in range(3):
        np.take(table[channel], pixels[:, :, channel], out=body[channel].numpy(), mode="clip")
    return hd


def _resize(image: Image.Image, width: int, height: int) -> Image.Image:
    return image if image.size == (width, height) else image.resize((width, height), Image.Resampling.BILINEAR)


def _resize_transposed(image: Image.Image, width: int, height: int) -> Image.Image:
    """What ``resize(transpose(image)).transpose()`` gives, bit for bit, without the two transposes.

    PIL resamples horizontally, rounds to 8 bits, then resamples vertically; on the transposed image
    that is a vertical-only resize of the original followed by a horizontal-only one.
    """
    return _resize(_resize(image, image.width, height), width, height)


def _normalization_table(mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``[3, 256]``: ``ToTensor`` then ``Normalize`` of every byte value, with the same float32 operations."""
    values = torch.arange(256, dtype=torch.float32).div(255)
    mean_t = torch.tensor(mean, dtype=torch.float32)[:, None]
    std_t = torch.tensor(std, dtype=torch.float32)[:, None]
    return (values[None, :] - mean_t).div(std_t).contiguous()
