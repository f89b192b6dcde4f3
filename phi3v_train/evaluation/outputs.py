"""Writing an evaluation: per-record predictions JSONL and a summary JSON, both atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from phi3v_data.io import atomic_write_text
from phi3v_train.evaluation.evaluate import EvalResult

PREDICTIONS_FILE = "predictions.jsonl"
SUMMARY_FILE = "summary.json"


def default_output_dir(model: str, data: Path) -> Path:
    """``<model dir>/eval/<data file stem>``, or ``eval/<stem>`` when the model is not a local folder."""
    base = Path(model) if Path(model).is_dir() else Path()
    return base / "eval" / Path(data).stem


def _json_ready(value: Any) -> Any:
    """NaN (an undefined metric, e.g. AUROC with one class present) becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    return value


def write_eval_outputs(result: EvalResult, directory: Path) -> tuple[Path, Path]:
    """Writes ``predictions.jsonl`` and ``summary.json`` into ``directory``; returns their paths."""
    directory = Path(directory)
    predictions = directory / PREDICTIONS_FILE
    summary = directory / SUMMARY_FILE
    lines = [json.dumps(_json_ready(row), ensure_ascii=False) + "\n" for row in result.predictions]
    atomic_write_text(predictions, "".join(lines))
    atomic_write_text(summary, json.dumps(_json_ready(result.summary), indent=2, sort_keys=True) + "\n")
    return predictions, summary
