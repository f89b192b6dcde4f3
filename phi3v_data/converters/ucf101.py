"""UCF-101: sample N frames per clip, one record per clip, the class folder name as the answer.

SRC is the official layout (``SRC/<Class>/v_<Class>_gGG_cCC.avi`` with ``ucfTrainTestlist/``) or the
recipe's pre-split layout (``SRC/{train,val,test}/<Class>/*.avi``). Output record (abridged)::

    {"id": "val-0000000012", "source": "ucf101", "conversations": [{"images": ["val/Archery/v_Archery_g22_c01.0.jpg",
     ...], "user": "Classify the video into one of the following classes: ApplyEyeMakeup, Archery.",
     "assistant": "Archery"}], "metadata": {"video": "Archery/v_Archery_g22_c01.avi", "frame_indices": [0, 12, 25, 37],
     "sampling": "uniform", "decoder": "pyav", "total_frames": 50}}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from phi3v_data.converters.base import Converter, ItemSkipped, Plan, Task
from phi3v_data.converters.images import jpeg_bytes, write_file
from phi3v_data.converters.video import (
    CorruptVideoError,
    MissingFramesError,
    VideoInfo,
    decoder_chain,
    probe,
    read_frames,
    recounted,
    sample_indices,
)
from phi3v_data.errors import SourceLayoutError

SPLITS_DIR_NAME = "ucfTrainTestlist"
PRE_SPLITS = ("train", "val", "test")
_GROUP = re.compile(r"_g(\d+)_c\d+$", re.IGNORECASE)


def classification_prompt(classes: list[str]) -> str:
    return f"Classify the video into one of the following classes: {', '.join(sorted(classes))}."


def clip_group(stem: str) -> int | None:
    match = _GROUP.search(stem)
    return int(match.group(1)) if match else None


def _subdirs(path: Path) -> dict[str, str]:
    """Lower-cased name -> real name of the sub-folders, for case-insensitive matching (the
    HandstandPushups/HandStandPushups quirk)."""
    return {p.name.lower(): p.name for p in path.iterdir() if p.is_dir()} if path.is_dir() else {}


@dataclass
class Ucf101Converter(Converter):
    src: Path
    frames: int = 8
    sampling: str = "uniform"
    fps: float | None = None
    split_list: int = 1
    splits_dir: Path | None = None
    classes: tuple[str, ...] = ()
    num_classes: int | None = None
    val_groups: int = 0
    decoder: str = "auto"
    seed: int = 0
    quality: int = 95

    name: ClassVar[str] = "ucf101"
    splits: ClassVar[tuple[str, ...]] = PRE_SPLITS

    def __post_init__(self) -> None:
        self.src = Path(self.src)
        if self.frames < 1:
            raise ValueError("--frames must be at least 1")
        if self.split_list not in (1, 2, 3):
            raise ValueError("--split-list must be 1, 2 or 3")
        if self.sampling == "fps" and not self.fps:
            raise ValueError("--sampling fps needs --fps F")
        if self.classes and self.num_classes:
            raise ValueError("give --classes or --num-classes, not both")
        sample_indices(max(self.frames, 1), self.frames, self.sampling, fps=self.fps or 1.0, video_fps=25.0)
        decoder_chain(self.decoder)

    def options(self) -> dict[str, Any]:
        return {
            "src": str(self.src),
            "frames": self.frames,
            "sampling": self.sampling,
            "fps": self.fps,
            "split_list": self.split_list,
            "splits_dir": str(self.splits_dir) if self.splits_dir else None,
            "classes": list(self.classes),
            "num_classes": self.num_classes,
            "val_groups": self.val_groups,
            "decoder": self.decoder,
            "seed": self.seed,
            "quality": self.quality,
        }

    def plan(self) -> Plan:
        if not self.src.is_dir():
            raise SourceLayoutError(f"{self.src} is not a folder")
        if any((self.src / split).is_dir() and any((self.src / split).glob("*/*.avi")) for split in PRE_SPLITS):
            entries, classes = self._pre_split_entries()
        else:
            entries, classes = self._official_entries()
        entries = self._carve_val(entries)
        prompt = classification_prompt(classes)
        order = {split: i for i, split in enumerate(PRE_SPLITS)}
        entries.sort(key=lambda e: (order[e[0]], e[1], e[2].lower()))
        return Plan(
            tasks=[Task(key=key, split=split, payload=(str(path), cls, prompt)) for split, cls, key, path in entries]
        )

    def _select(self, ordered: list[str]) -> list[str]:
        """The chosen class names (as spelled in ``ordered``): --classes, or the first --num-classes."""
        if self.classes:
            by_lower = {name.lower(): name for name in ordered}
            unknown = [c for c in self.classes if c.lower() not in by_lower]
            if unknown:
                raise SourceLayoutError(
                    f"unknown classes {', '.join(unknown)}; the source has {', '.join(ordered[:12])}"
                    + (" …" if len(ordered) > 12 else "")
                )
            return [by_lower[c.lower()] for c in self.classes]
        if self.num_classes is not None:
            if not 1 <= self.num_classes <= len(ordered):
                raise ValueError(f"--num-classes must be between 1 and {len(ordered)}")
            return ordered[: self.num_classes]
        return ordered

    def _pre_split_entries(self) -> tuple[list[tuple[str, str, str, Path]], list[str]]:
        folders = sorted({d.name for split in PRE_SPLITS for d in (self.src / split).glob("*") if d.is_dir()})
        chosen = {name.lower() for name in self._select(folders)}
        entries = []
        for split in PRE_SPLITS:
            for clip in sorted((self.src / split).glob("*/*.avi")):
                if clip.parent.name.lower() in chosen:
                    entries.append((split, clip.parent.name, f"{split}/{clip.parent.name}/{clip.name}", clip))
        classes = sorted({e[1] for e in entries})
        return entries, classes

    def _find_splits_dir(self) -> Path:
        candidates = (
            [self.splits_dir] if self.splits_dir else [self.src / SPLITS_DIR_NAME, self.src.parent / SPLITS_DIR_NAME]
        )
        for candidate in candidates:
            if candidate and (candidate / "classInd.txt").is_file():
                return candidate
        raise SourceLayoutError(
            f"no {SPLITS_DIR_NAME}/classInd.txt found in {' or '.join(str(c) for c in candidates)}; give the unpacked "
            "UCF101TrainTestSplits-RecognitionTask folder with --splits-dir, or use the pre-split layout "
            "SRC/{train,val,test}/<Class>/*.avi"
        )

    def _official_entries(self) -> tuple[list[tuple[str, str, str, Path]], list[str]]:
        lists = self._find_splits_dir()
        names = []
        for number, line in enumerate((lists / "classInd.txt").read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if len(parts) != 2:
                if line.strip():
                    raise SourceLayoutError(f"{lists / 'classInd.txt'} line {number}: expected '<index> <Class>'")
                continue
            names.append(parts[1])
        folders = _subdirs(self.src)
        chosen = self._select(names)
        missing = [name for name in chosen if name.lower() not in folders]
        if missing:
            raise SourceLayoutError(f"class folders missing from {self.src}: {', '.join(missing)}")
        class_of = {name.lower(): folders[name.lower()] for name in chosen}
        listings: dict[str, dict[str, str]] = {}
        entries = []
        for split, list_name in (("train", "trainlist"), ("test", "testlist")):
            list_path = lists / f"{list_name}0{self.split_list}.txt"
            if not list_path.is_file():
                raise SourceLayoutError(f"{list_path} not found")
            for line in list_path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                rel = line.split()[0].replace("\\", "/")
                cls_part, _, file_part = rel.partition("/")
                folder = class_of.get(cls_part.lower())
                if folder is None:
                    continue
                if folder not in listings:
                    listings[folder] = {p.name.lower(): p.name for p in (self.src / folder).iterdir()}
                file_name = listings[folder].get(file_part.lower(), file_part)
                entries.append((split, folder, f"{folder}/{file_name}", self.src / folder / file_name))
        return entries, sorted(class_of.values())

    def _carve_val(self, entries: list[tuple[str, str, str, Path]]) -> list[tuple[str, str, str, Path]]:
        """Moves the ``val_groups`` highest group numbers of train to val, the same groups for every class."""
        if not self.val_groups:
            return entries
        train_groups = sorted({g for s, _, _, p in entries if s == "train" and (g := clip_group(p.stem)) is not None})
        if self.val_groups >= len(train_groups):
            raise ValueError(
                f"--val-groups {self.val_groups} would leave no training groups (train has {len(train_groups)})"
            )
        moved = set(train_groups[-self.val_groups :])
        return [("val" if s == "train" and clip_group(p.stem) in moved else s, c, k, p) for s, c, k, p in entries]

    def _decode(self, path: Path, info: VideoInfo, key: str) -> tuple[list[int], str, dict]:
        indices = sample_indices(
            info.frames, self.frames, self.sampling, seed=self.seed, key=key, fps=self.fps, video_fps=info.fps
        )
        backend, frames = read_frames(path, indices, info.frames, decoder_chain(self.decoder))
        return indices, backend, frames

    def warnings(self, records: list[dict[str, Any]]) -> list[str]:
        lines = []
        totals = [r["metadata"]["total_frames"] for r in records]
        short = [t for t in totals if t < self.frames]
        if short and self.sampling != "fps":
            lines.append(
                f"{len(short):,} clips have fewer frames than --frames {self.frames} (the shortest has {min(short)}): "
                "their records repeat frames"
            )
        recounted_clips = [r for r in records if "header_frames" in r["metadata"]]
        if recounted_clips:
            lines.append(
                f"{len(recounted_clips):,} clips declare another frame count than decodes (e.g. "
                f"{recounted_clips[0]['metadata']['video']}: {recounted_clips[0]['metadata']['header_frames']} "
                f"declared, {recounted_clips[0]['metadata']['total_frames']} decoded); sampled from the decoded "
                "frames (metadata.header_frames)"
            )
        return lines

    def process(self, task: Task, images_dir: Path) -> list[dict[str, Any]]:
        path_str, cls, prompt = task.payload
        path = Path(path_str)
        if not path.is_file():
            raise ItemSkipped(f"missing video {path}")
        try:
            info = probe(path)
            try:
                indices, backend, frames = self._decode(path, info, task.key)
            except MissingFramesError as exc:
                # Frames the header (and index) declare but that do not decode: sample from those that do.
                try:
                    info = recounted(path, info)
                except MissingFramesError as recount:
                    raise MissingFramesError(f"{exc}; {recount}") from exc
                indices, backend, frames = self._decode(path, info, task.key)
        except (CorruptVideoError, ValueError) as exc:
            raise ItemSkipped(f"corrupt video: {exc}") from exc
        images = []
        for k, index in enumerate(indices):
            rel = f"{task.split}/{cls}/{path.stem}.{k}.jpg"
            write_file(images_dir / rel, jpeg_bytes(frames[index], self.quality))
            images.append(rel)
        metadata: dict[str, Any] = {
            "video": task.key,
            "frame_indices": indices,
            "sampling": self.sampling,
            "decoder": backend,
            "total_frames": info.frames,
        }
        if info.counted:
            metadata["total_frames_counted"] = True
        if info.declared is not None:
            metadata["header_frames"] = info.declared
        if self.sampling == "random":
            metadata["seed"] = self.seed
        return [{"conversations": [{"images": images, "user": prompt, "assistant": cls}], "metadata": metadata}]
