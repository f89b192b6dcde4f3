"""Edge cases of the HD layout beyond the SPEC table (tests/data covers every table row)."""

from __future__ import annotations

import pytest
from PIL import Image

from phi3v_data.image_check import check_image
from phi3v_data.image_tokens import hd_layout


def test_too_elongated_image_is_rejected_with_a_reason() -> None:
    with pytest.raises(ValueError, match="too elongated"):
        hd_layout(400, 1, 1)
    assert hd_layout(336, 1, 1).resized_height == 1


def test_image_check_flags_an_extreme_aspect_ratio(tmp_path) -> None:
    path = tmp_path / "strip.png"
    Image.new("RGB", (700, 2)).save(path)
    info = check_image(str(path), False)
    assert info.problem == "corrupt_image"
    assert "aspect ratio" in info.message
