"""Leakage between an eval file and a train file: images shared by content (not path), and UCF-101 video groups
(``v_<Class>_gGG_cCC``: clips of one group come from one long video, so a group on both sides leaks)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phi3v_data.paths import image_root_for

VIDEO_GROUP_RE = re.compile(r"v_([A-Za-z]+)_g(\d+)_c\d+", re.IGNORECASE)


@dataclass(frozen=True)
class Overlap:
    """An eval record that shares ``what`` (an image hash or a video group) with the train record ``train``."""

    file: str
    line: int
    id: str
    kind: str
    what: str
    train: str


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                record = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                continue  # the validator reports the line
            if isinstance(record, dict):
                yield number, record


def _images(record: dict[str, Any]) -> list[str]:
    turns = record.get("conversations")
    return (
        [p for t in turns if isinstance(t, dict) for p in t.get("images") or [] if isinstance(p, str)]
        if isinstance(turns, list)
        else []
    )


def video_group(record: dict[str, Any]) -> str | None:
    """``class/gGG`` of a UCF-101 record (from ``metadata.video``), lower case; None for other records."""
    metadata = record.get("metadata")
    video = metadata.get("video") if isinstance(metadata, dict) else None
    match = VIDEO_GROUP_RE.search(video) if isinstance(video, str) else None
    return f"{match.group(1).lower()}/g{int(match.group(2)):02d}" if match else None


class _Hasher:
    def __init__(self) -> None:
        self.cache: dict[Path, str | None] = {}

    def __call__(self, path: Path) -> str | None:
        if path not in self.cache:
            try:
                self.cache[path] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                self.cache[path] = None  # missing or unreadable: the validator reports it
        return self.cache[path]


def find_leakage(
    eval_files: Sequence[Path], train_files: Sequence[Path], image_root: Path | None = None
) -> list[Overlap]:
    """Every eval record sharing an image (by content hash) or a UCF-101 video group with a train record.

    ``image_root`` applies to the eval files; train images resolve against their own default root."""
    hasher = _Hasher()
    train_images: dict[str, str] = {}
    train_groups: dict[str, str] = {}
    for path in train_files:
        root = image_root_for(path, None)
        for number, record in _records(path):
            where = f"{Path(path).name}:{number} ({record.get('id')})"
            for rel in _images(record):
                digest = hasher(root / rel)
                if digest:
                    train_images.setdefault(digest, where)
            group = video_group(record)
            if group:
                train_groups.setdefault(group, where)
    overlaps = []
    for path in eval_files:
        root = image_root_for(path, image_root)
        for number, record in _records(path):
            record_id = str(record.get("id"))
            for rel in _images(record):
                digest = hasher(root / rel)
                if digest in train_images:
                    overlaps.append(Overlap(str(path), number, record_id, "image", rel, train_images[digest]))
            group = video_group(record)
            if group in train_groups:
                overlaps.append(Overlap(str(path), number, record_id, "video_group", group, train_groups[group]))
    return overlaps
