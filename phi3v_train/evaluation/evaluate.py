"""``evaluate_records``: generation or label scoring over records, then the task metrics.

Each record is evaluated on its last turn, given the earlier turns. Metrics per ``metric``:

* ``anls``: over ``metadata.answers`` when present, else the last assistant text;
* ``accuracy``: exact match after the recipe's normalisation;
* ``auroc``: needs a label set; adds ``f1`` and the confusion matrix, from label probabilities;
* ``auto``: by source: docvqa -> anls; hateful_memes -> auroc, accuracy, f1; anything else -> accuracy.

Under ``torch.distributed`` each rank evaluates a strided shard; all ranks return the gathered result.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from phi3v_data.schema import Record
from phi3v_train.errors import ConfigError, ImageTokenMismatchError
from phi3v_train.evaluation.generation import SpecialIds, generate_answers
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
from phi3v_train.evaluation.records import load_images
from phi3v_train.evaluation.scoring import candidate_token_ids, score_candidates, softmax

METRICS = ("auto", "anls", "accuracy", "auroc")
AUTO_METRICS = {"docvqa": ("anls",), "hateful_memes": ("auroc", "accuracy", "f1")}
DEFAULT_METRICS = ("accuracy",)
MAX_DATA_LABELS = 128
POSITIVE_NAMES = ("yes", "true", "1", "positive")
WINDOW_BATCHES = 4


@dataclass
class EvalResult:
    """``summary``: the metrics and settings (JSON-ready); ``predictions``: one dict per evaluated record."""

    summary: dict[str, Any]
    predictions: list[dict[str, Any]]


def resolve_metrics(metric: str, sources: Sequence[str]) -> tuple[str, ...]:
    """The metrics ``metric`` stands for on records of ``sources``."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if metric == "auroc":
        return ("auroc", "f1", "accuracy")
    if metric != "auto":
        return (metric,)
    chosen: list[str] = []
    for source in sorted(set(sources)):
        for name in AUTO_METRICS.get(source, DEFAULT_METRICS):
            if name not in chosen:
                chosen.append(name)
    return tuple(chosen)


def last_answer(record: Record) -> str:
    return record.conversations[-1].assistant


def reference_answers(record: Record) -> list[str]:
    """The ANLS ground truths: ``metadata.answers`` when it is a list of strings, else the last answer."""
    answers = (record.metadata or {}).get("answers")
    if isinstance(answers, list) and answers and all(isinstance(a, str) for a in answers):
        return answers
    return [last_answer(record)]


def label_set(records: Sequence[Record], labels: Sequence[str] | None) -> list[str]:
    """``labels`` as given, or the distinct last answers of ``records`` (one per normalised form, sorted)."""
    if labels:
        return list(labels)
    found: dict[str, str] = {}
    for record in records:
        found.setdefault(normalize_answer(last_answer(record)), last_answer(record))
    if len(found) > MAX_DATA_LABELS:
        raise ConfigError(
            f"the data has {len(found)} distinct answers, too many to use as a label set (limit {MAX_DATA_LABELS}); "
            "give the labels with --labels a,b,c or evaluate without --constrained/auroc"
        )
    return [found[key] for key in sorted(found)]


def positive_index(labels: Sequence[str]) -> int:
    """The positive class of a binary label set: a yes/true label, else the second label."""
    for index, label in enumerate(labels):
        if normalize_answer(label) in POSITIVE_NAMES:
            return index
    return len(labels) - 1


def sample_indices(total: int, limit: int | None, seed: int) -> list[int]:
    """All indices, or a seeded sample of ``limit`` of them in file order."""
    if limit is None or limit >= total:
        return list(range(total))
    if limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    return sorted(random.Random(seed).sample(range(total), limit))


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _gather(rows: list[dict[str, Any]], world_size: int) -> list[dict[str, Any]]:
    if world_size == 1:
        return rows
    parts: list[list[dict[str, Any]] | None] = [None] * world_size
    torch.distributed.all_gather_object(parts, rows)
    return [row for part in parts if part for row in part]


def encode_prompts(processor: Any, records: Sequence[Record], image_root: Path) -> list[Any]:
    """Each record's generation prompt: every turn, the last one without its answer."""
    prompts = []
    for record in records:
        images = load_images(record, image_root)
        try:
            prompts.append(processor.encode_conversation(record.conversations, images, for_generation=True))
        except ImageTokenMismatchError as exc:
            raise ImageTokenMismatchError(f"record {record.id!r}: {exc}") from exc
    return prompts


def windows(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """``items`` cut into consecutive slices of at most ``size``."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def _predict_window(
    model: Any,
    processor: Any,
    records: Sequence[tuple[int, Record]],
    *,
    image_root: Path,
    labels: list[str] | None,
    constrained: bool,
    batch_size: int,
    max_new_tokens: int,
    on_progress: Callable[[int], None] | None,
) -> list[dict[str, Any]]:
    prompts = encode_prompts(processor, [record for _, record in records], image_root)
    rows = [
        {"index": index, "id": record.id, "source": record.source, "reference": last_answer(record)}
        for index, record in records
    ]
    if labels is not None:
        special = SpecialIds.from_tokenizer(processor.tokenizer)
        candidates = [candidate_token_ids(processor.tokenizer, label) for label in labels]
        for row, prompt in zip(rows, prompts, strict=True):
            log_scores = score_candidates(model, prompt, candidates, pad_id=special.pad, chunk_size=batch_size)
            row["label_probs"] = dict(zip(labels, softmax(log_scores), strict=True))
            if constrained:
                row["prediction"] = labels[max(range(len(labels)), key=log_scores.__getitem__)]
                if on_progress is not None:
                    on_progress(1)
    if not constrained:
        answers = generate_answers(
            model,
            processor.tokenizer,
            prompts,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            on_batch=on_progress,
        )
        for row, answer in zip(rows, answers, strict=True):
            row["prediction"] = answer
    return rows


def _predict_shard(
    model: Any, processor: Any, records: Sequence[tuple[int, Record]], *, batch_size: int, **options: Any
) -> list[dict[str, Any]]:
    """Rows of a shard, encoded a window of ``WINDOW_BATCHES`` batches at a time to bound image memory."""
    rows: list[dict[str, Any]] = []
    for window in windows(records, batch_size * WINDOW_BATCHES):
        rows.extend(_predict_window(model, processor, window, batch_size=batch_size, **options))
    return rows


def _label_index(labels: Sequence[str], answer: str, record_id: str) -> int:
    normalized = [normalize_answer(label) for label in labels]
    try:
        return normalized.index(normalize_answer(answer))
    except ValueError:
        raise ConfigError(
            f"record {record_id!r}: the answer {answer!r} is not in the label set ({', '.join(labels)}); "
            "add it to --labels"
        ) from None


def _summarize(
    rows: list[dict[str, Any]], records: Sequence[Record], metrics: tuple[str, ...], labels: list[str] | None
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    by_index = {index: record for index, record in enumerate(records)}
    for row in rows:
        record = by_index[row["index"]]
        correct = exact_match(row["prediction"], row["reference"])
        if "anls" in metrics:
            row["answers"] = reference_answers(record)
            row["score"] = anls_score(row["prediction"], row["answers"])
        else:
            row["score"] = 1.0 if correct else 0.0
        row["correct"] = correct
    if "anls" in metrics:
        summary["anls"] = mean([row["score"] for row in rows])
    if "accuracy" in metrics:
        summary["accuracy"] = mean([1.0 if row["correct"] else 0.0 for row in rows])
    if labels is not None and ("auroc" in metrics or "f1" in metrics):
        references = [_label_index(labels, row["reference"], row["id"]) for row in rows]
        probabilities = [[row["label_probs"][label] for label in labels] for row in rows]
        predicted = [max(range(len(labels)), key=probs.__getitem__) for probs in probabilities]
        matrix = confusion_matrix(references, predicted, len(labels))
        f1_scores = f1_per_class(matrix)
        if len(labels) == 2:
            positive = positive_index(labels)
            summary["positive_label"] = labels[positive]
            summary["auroc"] = auroc([probs[positive] for probs in probabilities], [r == positive for r in references])
            summary["f1"] = f1_scores[positive]
        else:
            summary["auroc"] = macro_auroc(probabilities, references)
            summary["f1"] = mean(f1_scores)
        summary["confusion_matrix"] = {"labels": labels, "matrix": matrix}
    return summary


def evaluate_records(
    model: Any,
    processor: Any,
    records: Sequence[Record],
    *,
    image_root: Path,
    metric: str = "auto",
    limit: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    constrained: bool = False,
    labels: Sequence[str] | None = None,
    seed: int = 0,
    on_progress: Callable[[int], None] | None = None,
) -> EvalResult:
    """Evaluates ``model`` on ``records`` (or a seeded sample of ``limit`` of them).

    Greedy generation answers each record unless ``constrained``, where the answer is the most
    probable label. Labels are scored whenever ``constrained`` is set or the metrics need them
    (auroc/f1); they come from ``labels`` or from the distinct answers of all ``records``.
    ``on_progress`` is called with the number of records this rank has finished.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    records = list(records)
    selected = sample_indices(len(records), limit, seed)
    metrics = resolve_metrics(metric, [records[i].source for i in selected])
    needs_labels = constrained or "auroc" in metrics
    label_list = label_set(records, labels) if needs_labels else None
    rank, world_size = _distributed()
    shard = [(index, records[index]) for index in selected[rank::world_size]]
    was_training = model.training
    model.eval()
    try:
        rows = _predict_shard(
            model,
            processor,
            shard,
            image_root=image_root,
            labels=label_list,
            constrained=constrained,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            on_progress=on_progress,
        )
    finally:
        model.train(was_training)
    rows = sorted(_gather(rows, world_size), key=lambda row: row["index"])
    summary: dict[str, Any] = {
        "num_records": len(rows),
        "num_available": len(records),
        "metric": metric,
        "metrics": list(metrics),
        "constrained": constrained,
        "limit": limit,
        "seed": seed,
        "max_new_tokens": max_new_tokens,
        "num_crops": getattr(processor, "num_crops", None),
    }
    summary.update(_summarize(rows, records, metrics, label_list))
    return EvalResult(summary=summary, predictions=[_prediction(row) for row in rows])


PREDICTION_KEYS = ("id", "source", "prediction", "reference", "score", "correct", "answers", "label_probs")


def _prediction(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its keys in a fixed order, without the internal index."""
    return {key: row[key] for key in PREDICTION_KEYS if key in row}
