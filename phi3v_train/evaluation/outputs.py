"""Writing an evaluation: per-record predictions JSONL, a summary JSON and, for label sets, the plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from phi3v_data.io import atomic_write_text
from phi3v_train.evaluation.evaluate import EvalResult
from phi3v_train.evaluation.metrics import normalize_answer, roc_points

PREDICTIONS_FILE = "predictions.jsonl"
SUMMARY_FILE = "summary.json"
ROC_FILE = "roc.png"
CONFUSION_FILE = "confusion.png"


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


def write_eval_plots(result: EvalResult, directory: Path) -> list[Path]:
    """``confusion.png`` when the summary has a confusion matrix, and ``roc.png`` when the label set is
    binary; returns the paths written (none for generation-only metrics)."""
    from phi3v_train.evaluation.plots import write_confusion_png, write_roc_png

    confusion = result.summary.get("confusion_matrix")
    if confusion is None:
        return []
    directory = Path(directory)
    written = [directory / CONFUSION_FILE]
    write_confusion_png(written[0], confusion["labels"], confusion["matrix"])
    positive = result.summary.get("positive_label")
    if positive is not None:
        rows = result.predictions
        scores = [row["label_probs"][positive] for row in rows]
        positives = [normalize_answer(row["reference"]) == normalize_answer(positive) for row in rows]
        points = roc_points(scores, positives)
        if points:
            written.append(directory / ROC_FILE)
            write_roc_png(written[-1], points, result.summary["auroc"], positive)
    return written
