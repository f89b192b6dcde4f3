"""Fixtures for the processor tests: processors over the real and the tiny tokenizer, test images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from transformers import PreTrainedTokenizerFast

from phi3v_train.model.processing import Phi3VProcessor
from phi3v_train.model.tiny_tokenizer import tiny_processor


def make_image(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A deterministic noise image, so that resize or layout mistakes change the pixel values."""
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels)


@pytest.fixture(name="make_image", scope="session")
def make_image_fixture() -> Callable[..., Image.Image]:
    return make_image


@pytest.fixture(scope="session")
def real_tokenizer(reference_dir: Path) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast.from_pretrained(reference_dir)


@pytest.fixture(scope="session")
def real_processor(reference_dir: Path) -> Phi3VProcessor:
    return Phi3VProcessor.from_pretrained(reference_dir)


@pytest.fixture
def tiny() -> Phi3VProcessor:
    return tiny_processor(num_crops=4)
