"""``evaluate_records``: generation or label scoring over records, then the task metrics.

Each record is evaluated on its last turn, given the earlier turns. Metrics per ``metric``:

* ``anls``: over ``metadata.answers`` when present, else the last assistant text, by the ``standard``
  (DocVQA challenge) or ``recipe`` definition (:mod:`phi3v_train.evaluation.metrics`);
* ``accuracy``: exact match after the recipe's normalisation;
* ``auroc``: needs a label set; adds ``f1`` and the confusion matrix, from label probabilities;
* ``auto``: the registered metrics of each record's source (:mod:`phi3v_data.datasets`): docvqa -> anls;
  hateful_memes -> auroc, accuracy, f1; nlvr2, ucf101 and unregistered sources -> accuracy.

Under ``torch.distributed`` each rank evaluates a strided shard, padded with repeats to the same size on
every rank (the repeats are dropped before the gather); all ranks return the gathered result.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from phi3v_data.datasets import default_metrics, find_dataset
from phi3v_data.schema import Record
from phi3v_train.data.image_loading import load_images
from phi3v_train.errors import ConfigError, ImageTokenMismatchError
from phi3v_train.evaluation.generation import SpecialIds, equal_shard, generate_answers
from phi3v_train.evaluation.metrics import ANLS_DEFINITIONS, anls_score, exact_match, normalize_answer
from phi3v_train.evaluation.scoring import candidate_token_ids, score_candidates, softmax
from phi3v_train.evaluation.summary import label_index, positive_index, summarize_rows

METRICS = ("auto", "anls", "accuracy", "auroc")
MAX_DATA_LABELS = 128
WINDOW_BATCHES = 4

__all__ = ["EvalResult", "evaluate_records", "label_set", "positive_index", "resolve_metrics", "subsample_indices"]


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
        for name in default_metrics(source):
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
    """``labels`` as given; the registered label set when every record is of one classification dataset;
    else the distinct last answers of ``records`` (one per normalised form, sorted)."""
    if labels:
        return list(labels)
    registered = {find_dataset(record.source) for record in records}
    if len(registered) == 1 and (info := registered.pop()) is not None and info.labels:
        return list(info.labels)
    found: dict[str, str] = {}
    for record in records:
        found.setdefault(normalize_answer(last_answer(record)), last_answer(record))
    if len(found) > MAX_DATA_LABELS:
        raise ConfigError(
            f"the data has {len(found)} distinct answers, too many to use as a label set (limit {MAX_DATA_LABELS}); "
            "give the labels with --labels a,b,c or evaluate without --constrained/auroc"
        )
    return [found[key] for key in sorted(found)]


def subsample_indices(total: int, limit: int | None, seed: int) -> list[int]:
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


def _reference_indices(labels: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[int]:
    indices = []
    for row in rows:
        index = label_index(labels, row["reference"])
        if index is None:
            raise ConfigError(
                f"record {row['id']!r}: the answer {row['reference']!r} is not in the label set "
                f"({', '.join(labels)}); add it to --labels"
            )
        indices.append(index)
    return indices


def _summarize(
    rows: list[dict[str, Any]],
    records: Sequence[Record],
    metrics: tuple[str, ...],
    labels: list[str] | None,
    anls: str,
) -> dict[str, Any]:
    for row in rows:
        correct = exact_match(row["prediction"], row["reference"])
        if "anls" in metrics:
            row["answers"] = reference_answers(records[row["index"]])
            row["score"] = anls_score(row["prediction"], row["answers"], anls)
        else:
            row["score"] = 1.0 if correct else 0.0
        row["correct"] = correct
    references = None
    if labels is not None and "auroc" in metrics:
        references = _reference_indices(labels, rows)
    elif labels is not None:
        found = [label_index(labels, row["reference"]) for row in rows]
        references = None if None in found else found
    return summarize_rows(rows, metrics, anls=anls, labels=labels, references=references)


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
    anls: str = "standard",
    on_progress: Callable[[int], None] | None = None,
) -> EvalResult:
    """Evaluates ``model`` on ``records`` (or a seeded sample of ``limit`` of them).

    Greedy generation answers each record unless ``constrained``, where the answer is the most
    probable label. Labels are scored whenever ``constrained`` is set or the metrics need them
    (auroc/f1); they come from ``labels`` or from the distinct answers of all ``records``.
    ``anls`` picks the ANLS definition (``standard`` or ``recipe``).
    ``on_progress`` is called with the number of records this rank has finished.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    if anls not in ANLS_DEFINITIONS:
        raise ConfigError(f"unknown ANLS definition {anls!r}; choose one of {', '.join(ANLS_DEFINITIONS)}")
    records = list(records)
    selected = subsample_indices(len(records), limit, seed)
    metrics = resolve_metrics(metric, [records[i].source for i in selected])
    needs_labels = constrained or "auroc" in metrics
    label_list = label_set(records, labels) if needs_labels else None
    rank, world_size = _distributed()
    indices, padding = equal_shard(selected, rank, world_size)  # same calls on every rank (ZeRO-3, FSDP)
    shard = [(index, records[index]) for index in indices]
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
    rows = sorted(_gather(rows[: len(rows) - padding], world_size), key=lambda row: row["index"])
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
    summary.update(_summarize(rows, records, metrics, label_list, anls))
    return EvalResult(summary=summary, predictions=[_prediction(row) for row in rows])


PREDICTION_KEYS = ("id", "source", "prediction", "reference", "score", "correct", "answers", "label_probs")


def _prediction(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its keys in a fixed order, without the internal index."""
    return {key: row[key] for key in PREDICTION_KEYS if key in row}
