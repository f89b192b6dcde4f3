"""`--packing` in a real run: the same losses as the padded run, and an exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from stop_at_step import StopAt

from phi3v_train.training.config import load_config
from phi3v_train.training.trainer import train

STEPS, HALF = 4, 2


@pytest.fixture
def mixed_data(tmp_path: Path) -> Path:
    """Three one-image records of different sizes and one text-only record."""
    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    records = []
    images_and_answers = [
        ((40, 30), (255, 0, 0), "Red"),
        ((700, 300), (0, 255, 0), "Green"),
        ((336, 900), (0, 0, 255), "Blue"),
    ]
    for index, (size, rgb, answer) in enumerate(images_and_answers):
        Image.new("RGB", size, rgb).save(images / f"{index}.png")
        turn = {"images": [f"{index}.png"], "user": "Colour?", "assistant": answer}
        records.append({"id": f"img{index}", "source": "colours", "conversations": [turn]})
    records.append({"id": "txt", "source": "colours", "conversations": [{"user": "Say hi.", "assistant": "Hi there"}]})
    path = tmp_path / "data" / "train.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def _run(train_file: Path, output_dir: Path, callbacks=None, **overrides):
    values = {
        "model": "tiny",
        "train_files": [train_file],
        "output_dir": output_dir,
        "num_crops": 4,
        "logging_steps": 1,
        "report_to": [],
        "workers": 0,
        "mode": "full",
        "batch_size": 2,
        "max_steps": STEPS,
        "learning_rate": 5e-3,
        "max_length": 1500,
        **overrides,
    }
    return train(load_config(None, values), callbacks=callbacks)


@pytest.mark.slow
def test_packed_run_matches_the_padded_run_and_resumes_exactly(mixed_data, tmp_path):
    padded = _run(mixed_data, tmp_path / "padded")
    packed = _run(mixed_data, tmp_path / "packed", packing=True, save_steps=HALF)
    assert [step for step, _ in packed.losses] == [1, 2, 3, 4]
    for (_, expected), (_, actual) in zip(padded.losses, packed.losses, strict=True):
        assert actual == pytest.approx(expected, abs=1e-5)
    assert packed.tokens_per_second > 0

    first = _run(mixed_data, tmp_path / "resumed", [StopAt(HALF)], packing=True, save_steps=HALF)
    resumed = _run(mixed_data, tmp_path / "resumed", packing=True, save_steps=HALF, resume="latest")
    assert first.losses + resumed.losses == packed.losses
