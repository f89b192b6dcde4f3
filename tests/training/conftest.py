"""Fixtures of the trainer tests: small record sets on disk and a quick tiny-model run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import TrainerCallback

from phi3v_train.training.config import load_config
from phi3v_train.training.trainer import train

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def write_records(folder: Path, records: list[dict], name: str = "train.jsonl") -> Path:
    path = folder / name
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.fixture
def colour_data(tmp_path: Path) -> Path:
    """Three one-image records (a plain colour, answered by its name) and one text-only record."""
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    records = []
    for index, (name, rgb) in enumerate(COLOURS.items()):
        Image.new("RGB", (40, 30), rgb).save(images / f"{name}.png")
        turn = {"images": [f"{name}.png"], "user": "Colour?", "assistant": name.capitalize()}
        records.append({"id": f"img{index}", "source": "colours", "conversations": [turn]})
    records.append({"id": "txt", "source": "colours", "conversations": [{"user": "Say hi.", "assistant": "Hi"}]})
    return write_records(tmp_path / "data", records)


class ParameterSnapshots(TrainerCallback):
    """Copies of every parameter at the start and at the end of training."""

    def __init__(self) -> None:
        self.model = None
        self.before: dict[str, torch.Tensor] = {}
        self.after: dict[str, torch.Tensor] = {}

    @staticmethod
    def _copy(model) -> dict[str, torch.Tensor]:
        return {name: parameter.detach().float().clone() for name, parameter in model.named_parameters()}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.model = model
        self.before = self._copy(model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = self._copy(model)

    def changed(self) -> set[str]:
        return {name for name, value in self.before.items() if not torch.equal(value, self.after[name])}


def quick_config(train_file: Path, output_dir: Path, **overrides):
    """The tiny model at one crop, logging every step; the report_to list is empty to keep tests quiet."""
    values = {
        "model": "tiny",
        "train_files": [train_file],
        "output_dir": output_dir,
        "num_crops": 1,
        "logging_steps": 1,
        "report_to": [],
        "workers": 0,
    }
    values.update(overrides)
    return load_config(None, values)


def run_quick(train_file: Path, output_dir: Path, callbacks=None, **overrides):
    return train(quick_config(train_file, output_dir, **overrides), callbacks=callbacks)


@pytest.fixture
def write_jsonl():
    """``write_jsonl(folder, records, name="train.jsonl")`` -> the path of the written JSONL file."""
    return write_records


@pytest.fixture
def snapshots() -> ParameterSnapshots:
    return ParameterSnapshots()


@pytest.fixture
def quick_run():
    """``quick_run(train_file, output_dir, callbacks, **config)`` -> TrainResult."""
    return run_quick


@pytest.fixture
def make_config():
    """``make_config(train_file, output_dir, **config)`` -> TrainConfig of a quick tiny run."""
    return quick_config
