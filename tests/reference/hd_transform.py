"""The hub processor's HD transform, step by step as ``image_processing_phi3_v.py`` writes it.

PIL transpose, scale search, PIL bilinear resize, white pad, ToTensor, Normalize; then the bicubic
global view, the 336x336 crops, and zero crops up to ``num_crops + 1``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from phi3v_train.model.image_processing import CLIP_MEAN, CLIP_STD


def reference_hd_transform(image: Image.Image, num_crops: int) -> torch.Tensor:
    """The normalised HD image, [3, H, W]."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    transposed = image.width < image.height
    if transposed:
        image = image.transpose(Image.Transpose.TRANSPOSE)
    width, height = image.size
    ratio = width / height
    scale = 1
    while scale * np.ceil(scale / ratio) <= num_crops:
        scale += 1
    scale -= 1
    new_w = int(scale * 336)
    new_h = int(new_w / ratio)
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    target = int(np.ceil(new_h / 336) * 336)
    canvas = Image.new("RGB", (new_w, target), (255, 255, 255))
    canvas.paste(image, (0, int((target - new_h) / 2)))
    if transposed:
        canvas = canvas.transpose(Image.Transpose.TRANSPOSE)
    tensor = torch.from_numpy(np.array(canvas)).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    mean = torch.tensor(CLIP_MEAN)[:, None, None]
    std = torch.tensor(CLIP_STD)[:, None, None]
    return tensor.sub_(mean).div_(std)


def reference_pixel_values(image: Image.Image, num_crops: int) -> torch.Tensor:
    """One image's pixel values, [num_crops + 1, 3, 336, 336]: global view, crops, zero crops."""
    hd = reference_hd_transform(image, num_crops)
    h, w = hd.shape[1:]
    global_view = F.interpolate(hd.unsqueeze(0), size=(336, 336), mode="bicubic")
    crops = hd.reshape(1, 3, h // 336, 336, w // 336, 336).permute(0, 2, 4, 1, 3, 5).reshape(-1, 3, 336, 336)
    stacked = torch.cat([global_view, crops])
    return torch.cat([stacked, torch.zeros(num_crops + 1 - len(stacked), 3, 336, 336)])
