"""One name per dataset: converters write the canonical source, and `eval --metric auto` finds its metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phi3v_data.converters import HatefulMemesConverter, run_conversion
from phi3v_data.datasets import DATASETS, canonical_source, default_metrics, find_dataset
from phi3v_data.samples import SAMPLES
from phi3v_train.cli.main import app
from phi3v_train.evaluation.evaluate import resolve_metrics


@pytest.mark.parametrize(
    ("name", "source", "metrics"),
    [
        ("hateful-memes", "hateful_memes", ("auroc", "accuracy", "f1")),
        ("Hateful_Memes", "hateful_memes", ("auroc", "accuracy", "f1")),
        ("docvqa", "docvqa", ("anls",)),
        ("nlvr2", "nlvr2", ("accuracy",)),
        ("UCF-101", "ucf101", ("accuracy",)),
    ],
)
def test_aliases_lead_to_one_source_and_its_metrics(name: str, source: str, metrics: tuple[str, ...]) -> None:
    assert canonical_source(name) == source
    assert default_metrics(name) == metrics
    assert resolve_metrics("auto", [name]) == metrics


def test_unknown_sources_keep_their_name_and_get_accuracy() -> None:
    assert find_dataset("shapes") is None
    assert canonical_source("shapes") == "shapes"
    assert default_metrics("shapes") == ("accuracy",)


def test_every_name_is_registered_once() -> None:
    names = [name.lower() for info in DATASETS for name in (info.source, *info.aliases)]
    assert len(names) == len(set(names))
    for info in DATASETS:
        assert (info.labels is None) == (info.positive is None)
        assert info.positive is None or info.positive in info.labels


def test_hateful_memes_conversion_evaluated_with_auto_reports_auroc(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PHI3V_DISABLE_PROGRESS_BARS", "1")
    SAMPLES["hateful-memes"](tmp_path / "raw")
    run_conversion(HatefulMemesConverter(tmp_path / "raw"), tmp_path / "data")
    data = tmp_path / "data" / "hateful_memes_train.jsonl"
    records = [json.loads(line) for line in data.read_text().splitlines()]
    assert {record["source"] for record in records} == {"hateful_memes"}

    out = tmp_path / "eval"
    args = ["eval", "--model", "tiny", "--data", str(data), "--num-crops", "1", "--output", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric"] == "auto"
    assert summary["metrics"] == ["auroc", "accuracy", "f1"]
    assert isinstance(summary["auroc"], float) and 0.0 <= summary["auroc"] <= 1.0
    assert summary["positive_label"] == "yes"
    assert summary["confusion_matrix"]["labels"] == ["no", "yes"]
    assert sum(map(sum, summary["confusion_matrix"]["matrix"])) == len(records)
    assert "confusion matrix" in result.output and "auroc" in result.output
    for name in ("roc.png", "confusion.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert f"plot: {out / name}" in result.output.splitlines()
