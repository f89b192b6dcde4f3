"""Helpers for the record-format tests: build records, write JSONL lines, forge PNG headers.

(A module of its own, not conftest.py, so test files can import it; the name is unique across tests/.)
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

IMAGE_SIZES = {"a.jpg": (320, 240), "b.png": (100, 50), "c.jpg": (336, 336), "tall.png": (200, 1000)}


def record(
    record_id: str,
    images: list[str] | None = None,
    user: str = "What is shown?",
    assistant: str = "Yes",
    **extra: object,
) -> dict:
    """A one-turn record as a dict; ``images`` default to none (a text-only turn)."""
    return conversation(record_id, {"images": images or [], "user": user, "assistant": assistant}, **extra)


def turn(user: str, assistant: str, images: list[str] | None = None) -> dict:
    """One turn as a dict; without ``images`` the key is left out."""
    return (
        {"images": images, "user": user, "assistant": assistant} if images else {"user": user, "assistant": assistant}
    )


def conversation(record_id: str, *turns: dict, **extra: object) -> dict:
    """A record of ``turns`` as a dict; ``extra`` adds top-level keys (e.g. ``metadata``)."""
    return {"id": record_id, "source": "test", "conversations": list(turns), **extra}


def write_lines(path: Path, lines: list[dict | str | bytes]) -> Path:
    """Writes one line per item: dicts as JSON, str and bytes as they are."""
    with open(path, "wb") as handle:
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(line)
            handle.write((line.encode() if isinstance(line, str) else line) + b"\n")
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG with a valid header claiming ``width`` x ``height`` and no pixel data (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path
