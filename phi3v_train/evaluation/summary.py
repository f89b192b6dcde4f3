"""Metric values from scored rows, shared by `eval` (fresh predictions) and `score` (a predictions file).

A row is one record's outcome: ``prediction`` (generated or chosen answer), ``reference`` (the last
answer), ``answers`` (ANLS ground truths) and ``label_probs`` (``{label: probability}``). No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from phi3v_data.datasets import find_dataset
from phi3v_train.evaluation.metrics import (
    anls_score,
    auroc,
    confusion_matrix,
    exact_match,
    f1_per_class,
    macro_auroc,
    mean,
    normalize_answer,
)

POSITIVE_NAMES = ("yes", "true", "1", "positive")
CLASSIFICATION_KEYS = ("positive_label", "auroc", "f1", "confusion_matrix")


def positive_index(labels: Sequence[str], sources: Sequence[str] = ()) -> int:
    """The positive class of a binary label set: the registered one of ``sources``' dataset when it is
    in ``labels``, else a yes/true label, else the second label."""
    normalized = [normalize_answer(label) for label in labels]
    registered = {info.positive for info in map(find_dataset, set(sources)) if info and info.positive}
    if len(registered) == 1 and normalize_answer(next(iter(registered))) in normalized:
        return normalized.index(normalize_answer(next(iter(registered))))
    for index, label in enumerate(normalized):
        if label in POSITIVE_NAMES:
            return index
    return len(labels) - 1


def label_index(labels: Sequence[str], answer: str) -> int | None:
    """Position of ``answer`` in ``labels`` after the accuracy normalisation; None when absent."""
    normalized = [normalize_answer(label) for label in labels]
    key = normalize_answer(answer)
    return normalized.index(key) if key in normalized else None


def row_correct(row: dict[str, Any]) -> bool:
    """Exact match of the prediction with the reference (or any ground truth); without a prediction, the
    most probable label."""
    if "prediction" in row:
        targets = [row["reference"]] if "reference" in row else list(row["answers"])
        return any(exact_match(row["prediction"], target) for target in targets)
    probs = row["label_probs"]
    return exact_match(max(probs, key=probs.__getitem__), row["reference"])


def row_anls(row: dict[str, Any], definition: str) -> float:
    return anls_score(row["prediction"], row.get("answers") or [row["reference"]], definition)


def classification_summary(
    rows: Sequence[dict[str, Any]], labels: Sequence[str], references: Sequence[int], sources: Sequence[str] = ()
) -> dict[str, Any]:
    """AUROC, F1 and the confusion matrix from each row's ``label_probs`` over ``labels``.

    Binary sets: AUROC and F1 of the positive class (``positive_label``). More classes: one-vs-rest
    AUROC and F1 averaged over the classes.
    """
    probabilities = [[float(row["label_probs"][label]) for label in labels] for row in rows]
    predicted = [max(range(len(labels)), key=probs.__getitem__) for probs in probabilities]
    matrix = confusion_matrix(references, predicted, len(labels))
    f1_scores = f1_per_class(matrix)
    summary: dict[str, Any] = {}
    if len(labels) == 2:
        positive = positive_index(labels, sources)
        summary["positive_label"] = labels[positive]
        summary["auroc"] = auroc([probs[positive] for probs in probabilities], [r == positive for r in references])
        summary["f1"] = f1_scores[positive]
    else:
        summary["auroc"] = macro_auroc(probabilities, references)
        summary["f1"] = mean(f1_scores)
    summary["confusion_matrix"] = {"labels": list(labels), "matrix": matrix}
    return summary


def summarize_rows(
    rows: Sequence[dict[str, Any]],
    metrics: Sequence[str],
    *,
    anls: str = "standard",
    labels: Sequence[str] | None = None,
    references: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The requested ``metrics`` (anls, accuracy, auroc, f1) over ``rows``; with ANLS, its definition.

    ``labels`` and ``references`` (each row's reference as an index into ``labels``) are needed for
    auroc and f1; given, they also add the confusion matrix of the most probable labels.
    """
    summary: dict[str, Any] = {}
    if "anls" in metrics:
        summary["anls"] = mean([row_anls(row, anls) for row in rows])
        summary["anls_definition"] = anls
    if "accuracy" in metrics:
        summary["accuracy"] = mean([1.0 if row_correct(row) else 0.0 for row in rows])
    if labels is not None and references is not None:
        sources = [row["source"] for row in rows if isinstance(row.get("source"), str)]
        classification = classification_summary(rows, labels, references, sources)
        keep = CLASSIFICATION_KEYS if "auroc" in metrics or "f1" in metrics else ("confusion_matrix",)
        summary.update({key: value for key, value in classification.items() if key in keep})
    return summary
