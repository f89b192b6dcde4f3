"""Pictures of a classification evaluation: ``roc.png`` (binary label sets) and ``confusion.png``.

matplotlib (the ``plot`` extra) is imported on first use, with its file-only Agg backend. PNGs are
written without a timestamp, so the same evaluation gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from phi3v_data.io import atomic_write_bytes
from phi3v_train.errors import MissingDependencyError

PNG_METADATA = {"Software": None}


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingDependencyError("the evaluation plots need matplotlib: pip install 'phi3v[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata=PNG_METADATA)
    atomic_write_bytes(path, buffer.getvalue())


def write_roc_png(path: Path, points: Sequence[tuple[float, float]], auroc: float, positive: str) -> None:
    """The ROC curve through ``points`` (false positive rate, true positive rate), AUROC in the title."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    try:
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        axes.plot([x for x, _ in points], [y for _, y in points], color="tab:blue", linewidth=2)
        axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate")
        axes.set_title(f"ROC, positive class {positive!r}: AUROC {auroc:.4f}")
        figure.tight_layout()
        _save(figure, path)
    finally:
        plt.close(figure)


def write_confusion_png(path: Path, labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> None:
    """The confusion matrix as a heat map, counts written in the cells (rows: reference, columns: predicted)."""
    plt = _pyplot()
    size = max(4.0, 0.6 * len(labels) + 2.5)
    figure, axes = plt.subplots(figsize=(size, size))
    try:
        axes.imshow(matrix, cmap="Blues")
        peak = max((max(row) for row in matrix), default=0)
        for r, row in enumerate(matrix):
            for c, count in enumerate(row):
                colour = "white" if peak and count > peak / 2 else "black"
                axes.text(c, r, str(count), ha="center", va="center", color=colour)
        axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        axes.set_yticks(range(len(labels)), labels)
        axes.set(xlabel="predicted", ylabel="reference", title="confusion matrix")
        figure.tight_layout()
        _save(figure, path)
    finally:
        plt.close(figure)
