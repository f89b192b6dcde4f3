"""Small deterministic PNG pictures for the image-dataset samples."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def picture(size: tuple[int, int], background: tuple[int, int, int], lines: list[str], shapes: int = 0) -> bytes:
    """A PNG with a flat background, ``shapes`` white discs and the given text lines (no metadata chunks)."""
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    for i in range(shapes):
        x = 12 + (i * 37) % max(1, size[0] - 30)
        y = size[1] - 28 - (i * 23) % max(1, size[1] // 2)
        draw.ellipse((x, y, x + 16, y + 16), fill=(255, 255, 255))
    for i, line in enumerate(lines):
        draw.text((10, 10 + 16 * i), line, fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
