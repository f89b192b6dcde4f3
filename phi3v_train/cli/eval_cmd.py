"""`phi3v-train eval`: task metrics of a model on a record file, with a predictions file and a summary."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from phi3v_data.io import progress_bar
from phi3v_train.errors import ConfigError
from phi3v_train.evaluation.metrics import ANLS_DEFINITIONS

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


class Metric(str, enum.Enum):
    auto = "auto"
    anls = "anls"
    accuracy = "accuracy"
    auroc = "auroc"


AnlsDefinition = enum.Enum("AnlsDefinition", {name: name for name in ANLS_DEFINITIONS}, type=str)
ANLS_HELP = (
    "ANLS definition: standard = the DocVQA challenge's (case-insensitive, whitespace collapsed); "
    "recipe = the Cookbook recipe's (case-sensitive, prediction stripped of dots)."
)


def parse_labels(text: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; None when not given."""
    if text is None:
        return None
    labels = [label.strip() for label in text.split(",") if label.strip()]
    if len(labels) < 2:
        raise ConfigError(f"--labels needs at least two comma-separated labels, got {text!r}")
    return labels


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def summary_table(summary: dict[str, Any]) -> Table:
    """The metrics, then what was evaluated, as a two-column table."""
    table = Table(title="evaluation")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in ("anls", "accuracy", "auroc", "f1"):
        if name in summary:
            table.add_row(name, _format(summary[name]))
    if "anls_definition" in summary:
        table.add_row("anls definition", summary["anls_definition"])
    if "positive_label" in summary:
        table.add_row("positive label", summary["positive_label"])
    table.add_row("records", f"{summary['num_records']} of {summary['num_available']}")
    for name in ("data", "model"):
        if name in summary:
            table.add_row(name, str(summary[name]))
    return table


def confusion_table(confusion: dict[str, Any]) -> Table:
    """Rows: reference label; columns: predicted label."""
    labels = confusion["labels"]
    table = Table(title="confusion matrix (rows: reference, columns: predicted)")
    table.add_column("")
    for label in labels:
        table.add_column(label, justify="right")
    for label, row in zip(labels, confusion["matrix"], strict=True):
        table.add_row(label, *(str(count) for count in row))
    return table


def eval_command(
    model: str = typer.Option(..., "--model", help="Run output folder, checkpoint folder, hub id or preset name."),
    data: Path = typer.Option(..., "--data", exists=True, dir_okay=False, help="Record file (JSONL) to evaluate on."),
    metric: Metric = typer.Option(
        Metric.auto,
        "--metric",
        help="auto picks by source: docvqa -> anls, hateful_memes -> auroc+accuracy+f1, others -> accuracy.",
    ),
    labels: str | None = typer.Option(
        None, "--labels", help="Comma-separated label set for auroc/--constrained (default: the data's answers)."
    ),
    constrained: bool = typer.Option(
        False, "--constrained", help="Answer with the most probable label of the label set instead of generating."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate a seeded random sample of N records."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --limit sample."),
    anls: AnlsDefinition = typer.Option(AnlsDefinition("standard"), "--anls", help=ANLS_HELP),
    batch_size: int = typer.Option(
        8, "--batch-size", min=1, help="Prompts generated (or label candidates scored) together."
    ),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1, help="Longest answer generated."),
    num_crops: int | None = typer.Option(
        None, "--num-crops", min=1, help="Image crops; must match training (default: the saved processor's)."
    ),
    image_root: Path | None = typer.Option(
        None, "--image-root", file_okay=False, help="Folder the image paths are relative to (default: DATA's images/)."
    ),
    output: Path | None = typer.Option(
        None, "--output", file_okay=False, help="Output folder (default: <model dir>/eval/<data file stem>/)."
    ),
) -> None:
    """Evaluates a model on a record file: writes predictions.jsonl and summary.json, prints the metrics.

    Examples:

      phi3v-train eval --model runs/demo --data data/ucf101_val.jsonl --num-crops 1

      phi3v-train eval --model runs/memes --data data/hateful_memes_dev_seen.jsonl --limit 200

      phi3v-train eval --model runs/ucf --data data/ucf101_val.jsonl --constrained
    """
    from phi3v_data.paths import default_image_root
    from phi3v_train.data.records import load_records
    from phi3v_train.evaluation.evaluate import evaluate_records
    from phi3v_train.evaluation.outputs import default_output_dir, write_eval_outputs, write_eval_plots
    from phi3v_train.loading import load_model_and_processor

    label_list = parse_labels(labels)
    records = load_records(data)
    loaded_model, processor = load_model_and_processor(model, num_crops=num_crops)
    with progress_bar(min(limit or len(records), len(records)), "evaluating") as advance:
        result = evaluate_records(
            loaded_model,
            processor,
            records,
            image_root=image_root or default_image_root(data),
            metric=metric.value,
            limit=limit,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            constrained=constrained,
            labels=label_list,
            seed=seed,
            anls=anls.value,
            on_progress=advance,
        )
    result.summary["model"] = model
    result.summary["data"] = str(data)
    out_dir = output or default_output_dir(model, data)
    predictions_path, summary_path = write_eval_outputs(result, out_dir)
    plots = write_eval_plots(result, out_dir)
    stdout.print(summary_table(result.summary))
    if "confusion_matrix" in result.summary and len(result.summary["confusion_matrix"]["labels"]) <= 12:
        stdout.print(confusion_table(result.summary["confusion_matrix"]))
    # Paths are printed whole (never wrapped), so that they can be copied from the terminal.
    stdout.print(f"predictions: {predictions_path}\nsummary: {summary_path}", soft_wrap=True)
    for plot in plots:
        stdout.print(f"plot: {plot}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Adds `eval` to `app`."""
    app.command("eval")(eval_command)
