"""Re-scoring a predictions file without a model (`phi3v-train score`).

Each line is a JSON object with ``id`` and either

* ``prediction`` plus ``answers`` (ground truths, a list of strings) or ``reference`` (one string), or
* ``reference`` plus ``label_probs`` (``{label: probability}``, the same labels on every line),

as `phi3v-train eval` writes them in ``predictions.jsonl`` (``score``, ``correct`` and ``source`` are
read only where noted and otherwise ignored). ``source`` picks the registered positive class of a
binary label set (:mod:`phi3v_data.datasets`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from phi3v_data.io import iter_jsonl_lines
from phi3v_train.errors import PredictionsFileError
from phi3v_train.evaluation.metrics import ANLS_DEFINITIONS
from phi3v_train.evaluation.summary import label_index, summarize_rows

SCORE_METRICS = ("anls", "accuracy", "auroc", "f1")
EXTRA_KEYS = ("anls_definition", "positive_label", "confusion_matrix")


def _is_text_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, str) for item in value)


def _is_probability_map(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) >= 2
        and all(
            isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p) and 0 <= p <= 1
            for p in value.values()
        )
    )


def _line_problem(row: Any, metrics: Sequence[str]) -> str | None:
    """What keeps ``row`` from being scored by ``metrics``; None when nothing does."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    if not isinstance(row.get("id"), str | int) or isinstance(row.get("id"), bool):
        return "`id` is missing (a string)"
    for key in ("prediction", "reference"):
        if key in row and not isinstance(row[key], str):
            return f"`{key}` must be a string, got {json.dumps(row[key])}"
    if "answers" in row and not _is_text_list(row["answers"]):
        return "`answers` must be a non-empty list of strings"
    if "label_probs" in row and not _is_probability_map(row["label_probs"]):
        return "`label_probs` must map at least two labels to probabilities between 0 and 1"
    has_truth = "answers" in row or "reference" in row
    if "anls" in metrics and not ("prediction" in row and has_truth):
        return "anls needs `prediction` and `answers` (or `reference`)"
    if "accuracy" in metrics and not (
        ("prediction" in row and has_truth) or ("label_probs" in row and "reference" in row)
    ):
        return "accuracy needs `prediction` and `reference` (or `answers`), or `reference` and `label_probs`"
    if ("auroc" in metrics or "f1" in metrics) and not ("label_probs" in row and "reference" in row):
        return "auroc and f1 need `reference` and `label_probs`"
    return None


def read_prediction_rows(path: Path, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of ``path`` that ``metrics`` can score, in file order.

    Raises:
        PredictionsFileError: a line is not JSON, lacks what a metric needs, or has labels other than
            the first line's; or the file has no lines. The message names the file and line.
    """
    rows: list[dict[str, Any]] = []
    labels: list[str] | None = None
    for number, raw in iter_jsonl_lines(Path(path)):
        where = f"{path}:{number}"
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PredictionsFileError(f"{where}: not valid JSON ({exc})") from None
        problem = _line_problem(row, metrics)
        if problem is None and "label_probs" in row and ("auroc" in metrics or "f1" in metrics):
            if labels is None:
                labels = list(row["label_probs"])
            if set(row["label_probs"]) != set(labels):
                problem = f"`label_probs` has labels {sorted(row['label_probs'])}, line 1 has {sorted(labels)}"
            elif label_index(labels, row["reference"]) is None:
                problem = f"`reference` {row['reference']!r} is not one of the labels {labels}"
        if problem is not None:
            raise PredictionsFileError(f"{where}: {problem}")
        rows.append(row)
    if not rows:
        raise PredictionsFileError(f"{path}: no predictions (the file is empty)")
    return rows


def score_predictions(path: Path, metrics: Sequence[str], *, anls: str = "standard") -> dict[str, Any]:
    """``{metric: value}`` for each of ``metrics`` over the predictions file ``path``, plus
    ``num_records``, ``anls_definition`` (with anls), and ``positive_label``/``confusion_matrix`` (with
    auroc or f1)."""
    unknown = [metric for metric in metrics if metric not in SCORE_METRICS]
    if unknown or anls not in ANLS_DEFINITIONS:
        raise ValueError(f"unknown metric {unknown} or ANLS definition {anls!r}")
    rows = read_prediction_rows(path, metrics)
    labels = references = None
    if "auroc" in metrics or "f1" in metrics:
        labels = list(rows[0]["label_probs"])
        references = [label_index(labels, row["reference"]) for row in rows]
    summary = summarize_rows(rows, metrics, anls=anls, labels=labels, references=references)
    result: dict[str, Any] = {metric: summary[metric] for metric in metrics}
    result["num_records"] = len(rows)
    result.update({key: summary[key] for key in EXTRA_KEYS if key in summary})
    return result
