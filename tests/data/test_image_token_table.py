"""num_image_tokens and hd_layout against every row of SPEC section 3 (HD size W x H, grid rows x cols)."""

from __future__ import annotations

import pytest

from phi3v_data.image_tokens import hd_layout, num_image_tokens

# (width, height, num_crops, HD width, HD height, rows, cols, tokens), copied from SPEC section 3.
SPEC_TABLE = [
    (336, 336, 1, 336, 336, 1, 1, 313),
    (336, 336, 4, 672, 672, 2, 2, 757),
    (336, 336, 16, 1344, 1344, 4, 4, 2509),
    (320, 240, 1, 336, 336, 1, 1, 313),
    (320, 240, 4, 672, 672, 2, 2, 757),
    (320, 240, 16, 1344, 1008, 3, 4, 1921),
    (640, 480, 1, 336, 336, 1, 1, 313),
    (640, 480, 4, 672, 672, 2, 2, 757),
    (640, 480, 16, 1344, 1008, 3, 4, 1921),
    (1024, 768, 1, 336, 336, 1, 1, 313),
    (1024, 768, 4, 672, 672, 2, 2, 757),
    (1024, 768, 16, 1344, 1008, 3, 4, 1921),
    (1700, 2200, 1, 336, 336, 1, 1, 313),
    (1700, 2200, 4, 672, 672, 2, 2, 757),
    (1700, 2200, 16, 1344, 1344, 4, 4, 2509),
    (2200, 1700, 1, 336, 336, 1, 1, 313),
    (2200, 1700, 4, 672, 672, 2, 2, 757),
    (2200, 1700, 16, 1344, 1344, 4, 4, 2509),
    (1000, 200, 1, 336, 336, 1, 1, 313),
    (1000, 200, 4, 1344, 336, 1, 4, 745),
    (1000, 200, 16, 2688, 672, 2, 8, 2485),
    (200, 1000, 1, 336, 336, 1, 1, 313),
    (200, 1000, 4, 336, 1344, 4, 1, 781),
    (200, 1000, 16, 672, 2688, 8, 2, 2557),
    (500, 375, 1, 336, 336, 1, 1, 313),
    (500, 375, 4, 672, 672, 2, 2, 757),
    (500, 375, 16, 1344, 1008, 3, 4, 1921),
]


@pytest.mark.parametrize(
    ("width", "height", "num_crops", "hd_width", "hd_height", "rows", "cols", "tokens"), SPEC_TABLE
)
def test_spec_table(
    width: int, height: int, num_crops: int, hd_width: int, hd_height: int, rows: int, cols: int, tokens: int
) -> None:
    layout = hd_layout(width, height, num_crops)
    assert (layout.padded_width, layout.padded_height) == (hd_width, hd_height)
    assert (layout.rows, layout.cols) == (rows, cols)
    assert num_image_tokens(width, height, num_crops) == tokens
