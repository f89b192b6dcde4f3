"""Fixtures of the evaluation tests: the random tiny model, its processor at one crop, small images."""

from __future__ import annotations

import pytest
from PIL import Image

from phi3v_train.model.sizes import build_model
from phi3v_train.model.tiny_tokenizer import tiny_processor


@pytest.fixture(scope="module")
def tiny_model():
    return build_model("tiny", seed=0).eval()


@pytest.fixture(scope="module")
def processor():
    return tiny_processor(num_crops=1)


def solid_image(color: str, size: tuple[int, int] = (40, 30)) -> Image.Image:
    return Image.new("RGB", size, color)


@pytest.fixture
def solid():
    """Makes a one-colour RGB image: ``solid("red", (40, 30))``."""
    return solid_image
