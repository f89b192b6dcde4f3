"""Writers: `conversations` JSONL out to other toolkits' formats (`phi3v-data export FILE --to FORMAT OUT`).

* ``llava``: ``OUT/<stem>.json``, a JSON array of ``{"id", "image": path | [paths], "conversations":
  [{"from": "human", "value": "<image>\\n…"}, {"from": "gpt", "value": …}], "source", "metadata"}``;
* ``sharegpt``: ``OUT/<stem>.jsonl`` of ``{"id", "messages": [{"role", "content"}], "images": [...], "source",
  "metadata"}``, with ``metadata.system`` as a leading system message;
* ``hf``: a ``datasets`` DatasetDict with an ``Image`` feature (``save_to_disk`` into OUT, parquet shards under
  ``OUT/data/`` with ``parquet=True``, or pushed to the hub).

Image tags become ``<image>`` placeholders (a user text without tags gets one per image, then a newline, where the
prompt puts the tags). Image paths are relative to OUT: they point at the original files, or at ``OUT/images/``
copies with ``copy_images=True``. ``source`` and ``metadata`` ride along, so the readers restore the records.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from phi3v_data.converters.chat import placeholder_text
from phi3v_data.converters.images import write_once
from phi3v_data.errors import Phi3vDataError
from phi3v_data.io import atomic_write_text
from phi3v_data.paths import image_root_for
from phi3v_data.schema import Record

Format = Literal["llava", "sharegpt", "hf"]
FORMATS: tuple[str, ...] = ("llava", "sharegpt", "hf")


class ExportError(Phi3vDataError):
    """The records cannot be exported (an invalid record, a missing image, an unreachable hub)."""

    hint = "Run `phi3v-data validate FILE` first: export reads only valid records whose images exist."


@dataclass
class ExportSummary:
    records: int
    images: int
    written: list[Path]


def read_records(path: Path) -> Iterator[Record]:
    """The records of a JSONL file; the first invalid line stops the export with its line number."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield Record.model_validate_json(line)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ExportError(f"{path} line {number}: not a valid record ({where}: {first['msg']})") from exc


def default_split(jsonl: Path) -> str:
    """``chartqa_val.jsonl`` -> ``val``; a stem without ``_`` -> ``train``."""
    stem = Path(jsonl).stem
    return stem.rsplit("_", 1)[1] if "_" in stem else "train"


class _Images:
    """Resolves a record's image paths: relative to OUT, pointing at the original or at a copy under OUT/images."""

    def __init__(self, root: Path, out: Path, copy: bool) -> None:
        self.root, self.out, self.copy = root, out, copy
        self.count = 0

    def source_file(self, rel: str) -> Path:
        path = self.root / rel
        if not path.is_file():
            raise ExportError(f"image {rel} not found under {self.root} (pass --image-root)")
        return path

    def reference(self, rel: str) -> str:
        path = self.source_file(rel)
        self.count += 1
        if self.copy:
            write_once(self.out / "images" / rel, path.read_bytes())
            return f"images/{rel}"
        return Path(os.path.relpath(path.resolve(), self.out.resolve())).as_posix()


def _user_texts(record: Record) -> list[str]:
    return [placeholder_text(turn.user, len(turn.images)) for turn in record.conversations]


def _extras(record: Record) -> dict[str, Any]:
    return {"source": record.source, "metadata": record.metadata or {}}


def llava_item(record: Record, images: _Images) -> dict[str, Any]:
    paths = [images.reference(rel) for rel in record.images]
    item: dict[str, Any] = {"id": record.id}
    if paths:
        item["image"] = paths[0] if len(paths) == 1 else paths
    item["conversations"] = [
        message
        for turn, user in zip(record.conversations, _user_texts(record), strict=True)
        for message in ({"from": "human", "value": user}, {"from": "gpt", "value": turn.assistant})
    ]
    return {**item, **_extras(record)}


def sharegpt_item(record: Record, images: _Images) -> dict[str, Any]:
    extras = _extras(record)
    metadata = dict(extras["metadata"])
    messages = [{"role": "system", "content": metadata.pop("system")}] if "system" in metadata else []
    for turn, user in zip(record.conversations, _user_texts(record), strict=True):
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": turn.assistant}]
    item = {"id": record.id, "messages": messages, "images": [images.reference(rel) for rel in record.images]}
    return {**item, "source": record.source, "metadata": metadata}


def _datasets():
    from phi3v_data.converters.hf import datasets_module

    return datasets_module()


def hf_features():
    """The layout the ``hf`` reader restores records from (its ``PHI3V_COLUMNS``)."""
    datasets = _datasets()
    turn = {
        "user": datasets.Value("string"),
        "assistant": datasets.Value("string"),
        "num_images": datasets.Value("int32"),
    }
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "source": datasets.Value("string"),
            "images": datasets.List(datasets.Image()),
            "conversations": datasets.List(turn),
            "metadata": datasets.Value("string"),
        }
    )


def hf_rows(jsonl: Path, root: Path) -> Iterator[dict[str, Any]]:
    images = _Images(root, root, copy=False)
    for record in read_records(jsonl):
        yield {
            "id": record.id,
            "source": record.source,
            "images": [{"bytes": images.source_file(rel).read_bytes(), "path": rel} for rel in record.images],
            "conversations": [
                {"user": turn.user, "assistant": turn.assistant, "num_images": len(turn.images)}
                for turn in record.conversations
            ],
            "metadata": json.dumps(record.metadata, ensure_ascii=False) if record.metadata is not None else "",
        }


def _replace_dir(tmp: Path, out: Path) -> None:
    """Moves the finished folder ``tmp`` to ``out``; an older ``out`` is removed only after the move."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def export_hf(jsonl: Path, out: Path, root: Path, split: str, parquet: bool, push_to_hub: str | None) -> list[Path]:
    datasets = _datasets()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.", suffix=".incomplete") as work:
        dataset = datasets.Dataset.from_generator(
            hf_rows,
            gen_kwargs={"jsonl": jsonl, "root": root},
            features=hf_features(),
            cache_dir=str(Path(work) / "cache"),
        )
        if push_to_hub:
            try:
                datasets.DatasetDict({split: dataset}).push_to_hub(push_to_hub)
            except Exception as exc:  # offline, no token, no rights: the hub client raises many types
                raise ExportError(f"could not push to {push_to_hub} ({type(exc).__name__}: {exc})") from exc
            return []
        if parquet:
            target = out / "data" / f"{split}-00000-of-00001.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.incomplete")
            try:
                dataset.to_parquet(str(tmp))
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            return [target]
        saved = Path(work) / "saved"
        datasets.DatasetDict({split: dataset}).save_to_disk(str(saved))
        _replace_dir(saved, out)
        return [out]


def export_records(
    jsonl: Path,
    to: Format,
    out: Path,
    *,
    image_root: Path | None = None,
    copy_images: bool = False,
    parquet: bool = False,
    push_to_hub: str | None = None,
    split: str | None = None,
) -> ExportSummary:
    """Writes the records of ``jsonl`` in format ``to`` under ``out`` (see the module docstring)."""
    jsonl, out = Path(jsonl), Path(out)
    root = image_root_for(jsonl, image_root)
    if to not in FORMATS:
        raise ExportError(f"unknown format {to!r}; choose one of {', '.join(FORMATS)}")
    if to == "hf":
        records = sum(1 for _ in read_records(jsonl))
        written = export_hf(jsonl, out, root, split or default_split(jsonl), parquet, push_to_hub)
        images = sum(len(r.images) for r in read_records(jsonl))
        return ExportSummary(records=records, images=images, written=written)
    out.mkdir(parents=True, exist_ok=True)
    images = _Images(root, out, copy_images)
    make = llava_item if to == "llava" else sharegpt_item
    items = [make(record, images) for record in read_records(jsonl)]
    if to == "llava":
        target = out / f"{jsonl.stem}.json"
        atomic_write_text(target, json.dumps(items, ensure_ascii=False, indent=1) + "\n")
    else:
        target = out / f"{jsonl.stem}.jsonl"
        atomic_write_text(target, "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items))
    return ExportSummary(records=len(items), images=images.count, written=[target])
