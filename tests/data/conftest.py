"""Fixtures for the record-format tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from recordkit import IMAGE_SIZES


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """``tmp_path`` with ``images/`` holding the images of IMAGE_SIZES (solid colours, so deterministic)."""
    images = tmp_path / "images"
    images.mkdir()
    for name, size in IMAGE_SIZES.items():
        Image.new("RGB", size, (200, 30, 30)).save(images / name)
    return tmp_path
