"""The well-known datasets: one canonical ``source`` name each, the names that mean the same set, and
how `phi3v-train eval --metric auto` scores it.

Converters write :attr:`DatasetInfo.source` into every record; evaluation looks a record's ``source``
up with :func:`find_dataset`, which also accepts the aliases (older files, the_cauldron folder names,
the CLI spelling), in any case.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset. ``labels``/``positive``: the label set of a classification set and its positive class."""

    source: str
    aliases: tuple[str, ...]
    metrics: tuple[str, ...]
    labels: tuple[str, ...] | None = None
    positive: str | None = None


DATASETS: tuple[DatasetInfo, ...] = (
    DatasetInfo("docvqa", ("doc-vqa", "doc_vqa", "spdocvqa"), ("anls",)),
    DatasetInfo(
        "hateful_memes",
        ("hateful-memes", "hatefulmemes"),
        ("auroc", "accuracy", "f1"),
        labels=("no", "yes"),
        positive="yes",
    ),
    DatasetInfo("nlvr2", ("nlvr-2", "nlvr_2"), ("accuracy",), labels=("False", "True"), positive="True"),
    DatasetInfo("ucf101", ("ucf-101", "ucf_101"), ("accuracy",)),
)
DEFAULT_METRICS = ("accuracy",)

_BY_NAME = {name.lower(): info for info in DATASETS for name in (info.source, *info.aliases)}


def find_dataset(name: str) -> DatasetInfo | None:
    """The dataset ``name`` (a canonical source or an alias, any case) stands for; None if unknown."""
    return _BY_NAME.get(name.strip().lower())


def dataset(name: str) -> DatasetInfo:
    """Like :func:`find_dataset`, for names known to be registered (converters); KeyError otherwise."""
    info = find_dataset(name)
    if info is None:
        raise KeyError(f"unknown dataset {name!r}; registered: {', '.join(info.source for info in DATASETS)}")
    return info


def canonical_source(name: str) -> str:
    """The canonical ``source`` of a registered dataset, or ``name`` unchanged for any other source."""
    info = find_dataset(name)
    return info.source if info else name


def default_metrics(source: str) -> tuple[str, ...]:
    """The metrics `--metric auto` computes on records of ``source``."""
    info = find_dataset(source)
    return info.metrics if info else DEFAULT_METRICS
