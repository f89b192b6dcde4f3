"""`phi3v-train score`: re-scores a predictions file (what `eval` writes) with no model."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from phi3v_train.cli.eval_cmd import ANLS_HELP, AnlsDefinition, confusion_table
from phi3v_train.evaluation.rescore import SCORE_METRICS, score_predictions

stdout = Console(highlight=False)

ScoreMetric = enum.Enum("ScoreMetric", {name: name for name in SCORE_METRICS}, type=str)


class OutputFormat(str, enum.Enum):
    text = "text"
    json = "json"


def score_table(result: dict[str, Any]) -> Table:
    table = Table(title="score")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in SCORE_METRICS:
        if name in result:
            value = result[name]
            table.add_row(name, "n/a" if value is None or value != value else f"{value:.4f}")
    if "anls_definition" in result:
        table.add_row("anls definition", result["anls_definition"])
    if "positive_label" in result:
        table.add_row("positive label", result["positive_label"])
    table.add_row("records", str(result["num_records"]))
    return table


def score_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Predictions JSONL (eval's predictions.jsonl)."),
    metric: list[ScoreMetric] = typer.Option(..., "--metric", help="anls | accuracy | auroc | f1; repeat for several."),
    anls: AnlsDefinition = typer.Option(AnlsDefinition("standard"), "--anls", help=ANLS_HELP),
    output_format: OutputFormat = typer.Option(
        OutputFormat.text, "--format", help="text: a table; json: one object keyed by metric name."
    ),
) -> None:
    """Re-scores a predictions file without loading a model.

    Lines carry `id` and either `prediction` plus `answers` (or `reference`), or `reference` plus
    `label_probs` ({label: probability}). A malformed line exits 1, naming the file and line.

    Examples:

      phi3v-train score runs/docvqa/eval/val/predictions.jsonl --metric anls --anls recipe

      phi3v-train score predictions.jsonl --metric auroc --metric f1 --format json
    """
    metrics = list(dict.fromkeys(item.value for item in metric))
    result = score_predictions(file, metrics, anls=anls.value)
    if output_format is OutputFormat.json:
        values = {name: (None if result[name] != result[name] else result[name]) for name in metrics}
        typer.echo(json.dumps(values, sort_keys=True))
        return
    stdout.print(score_table(result))
    if "confusion_matrix" in result and len(result["confusion_matrix"]["labels"]) <= 12:
        stdout.print(confusion_table(result["confusion_matrix"]))


def register(app: typer.Typer) -> None:
    """Adds `score` to `app`."""
    app.command("score")(score_command)
