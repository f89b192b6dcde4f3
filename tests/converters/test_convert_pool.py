"""The shared writer's worker pool: a hung item is killed by the timeout, a crashed worker is replaced."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from convert_helpers import read_jsonl

from phi3v_data.converters import Converter, Plan, Task, run_conversion


@dataclass
class ScriptedConverter(Converter):
    """Text-only records; the task named ``hang`` sleeps, ``crash`` kills its process."""

    keys: tuple[str, ...]

    name: ClassVar[str] = "scripted"
    splits: ClassVar[tuple[str, ...]] = ("train",)

    def options(self) -> dict[str, Any]:
        return {"keys": list(self.keys)}

    def plan(self) -> Plan:
        return Plan(tasks=[Task(key, "train", key) for key in self.keys])

    def process(self, task: Task, images_dir: Path) -> list[dict[str, Any]]:
        if task.payload == "hang":
            time.sleep(120)
        if task.payload == "crash":
            os._exit(3)
        return [{"conversations": [{"user": f"Say {task.key}.", "assistant": task.key}]}]


def test_hung_and_crashed_items_are_skipped(tmp_path: Path) -> None:
    converter = ScriptedConverter(("a", "hang", "b", "crash", "c", "d"))
    summary = run_conversion(converter, tmp_path, workers=2, timeout=3)

    reasons = {entry["item"]: entry["reason"] for entry in summary.skipped}
    assert reasons == {
        "hang": "timed out after 3 s (hung decoder?); its process was killed",
        "crash": "the worker process died (exit code 3)",
    }
    records = read_jsonl(tmp_path / "scripted_train.jsonl")
    assert [(r["id"], r["conversations"][0]["assistant"]) for r in records] == [
        ("train-0000000000", "a"),
        ("train-0000000001", "b"),
        ("train-0000000002", "c"),
        ("train-0000000003", "d"),
    ]
