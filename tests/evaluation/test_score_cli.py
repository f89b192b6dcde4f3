"""`phi3v-train score` on each input form, on eval's own output, and on malformed files; torch stays unloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phi3v_train.cli.main import app
from phi3v_train.errors import PredictionsFileError

runner = CliRunner()


def write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


@pytest.fixture
def answers_file(tmp_path: Path) -> Path:
    return write_lines(
        tmp_path / "docvqa.jsonl",
        [
            {"id": "q1", "prediction": "TOTAL", "answers": ["Total"]},
            {"id": "q2", "prediction": "1985", "answers": ["1984", "the year 1984"]},
            {"id": "q3", "prediction": "Paris.", "answers": ["Paris"]},
            {"id": "q4", "prediction": "no idea", "answers": ["42"]},
        ],
    )


@pytest.fixture
def probs_file(tmp_path: Path) -> Path:
    p_yes = [("m1", "yes", 0.8), ("m2", "no", 0.4), ("m3", "yes", 0.35), ("m4", "no", 0.1), ("m5", "no", 0.35)]
    return write_lines(
        tmp_path / "memes.jsonl",
        [
            {"id": rid, "source": "hateful_memes", "reference": ref, "label_probs": {"no": 1 - p, "yes": p}}
            for rid, ref, p in p_yes
        ],
    )


def score(*args: str):
    return runner.invoke(app, ["score", *args])


def test_anls_from_prediction_and_answers(answers_file: Path) -> None:
    result = score(str(answers_file), "--metric", "anls", "--format", "json")
    assert result.exit_code == 0, result.output
    # standard: 1.0 (case), 0.75 (best ground truth), 5/6 (the dot counts), 0 (NL over 0.5)
    assert json.loads(result.output) == {"anls": pytest.approx((1 + 0.75 + 5 / 6 + 0) / 4)}
    recipe = score(str(answers_file), "--metric", "anls", "--anls", "recipe", "--format", "json")
    # recipe: "TOTAL" vs "Total" 3 edits over 5 -> NL 0.6 -> 0; the dot is stripped -> 1.0
    assert json.loads(recipe.output) == {"anls": pytest.approx((0 + 0.75 + 1 + 0) / 4)}


def test_accuracy_from_prediction_and_answers_as_text(answers_file: Path) -> None:
    result = score(str(answers_file), "--metric", "accuracy")
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "0.5000" in result.output and "records" in result.output


def test_auroc_f1_accuracy_from_reference_and_label_probs(probs_file: Path) -> None:
    args = [str(probs_file), "--metric", "auroc", "--metric", "f1", "--metric", "accuracy", "--format", "json"]
    result = score(*args)
    assert result.exit_code == 0, result.output
    # positives 0.8, 0.35 vs negatives 0.4, 0.1, 0.35: 0.8 wins 3; 0.35 beats 0.1, ties 0.35 -> 1.5; 4.5 of 6
    # most probable: yes, no, no, no, no -> tp 1, fp 0, fn 1 -> F1 2/3; 4 of 5 correct
    assert json.loads(result.output) == {"auroc": pytest.approx(0.75), "f1": pytest.approx(2 / 3), "accuracy": 0.8}
    text = score(str(probs_file), "--metric", "auroc")
    assert "positive label" in text.output and "confusion matrix" in text.output


def test_scores_what_eval_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, solid) -> None:
    monkeypatch.setenv("PHI3V_DISABLE_PROGRESS_BARS", "1")
    (tmp_path / "images").mkdir()
    solid("red").save(tmp_path / "images" / "red.png")
    turn = {"user": "Color?", "assistant": "red", "images": ["red.png"]}
    data = write_lines(
        tmp_path / "set.jsonl",
        [
            {"id": "a", "source": "custom", "conversations": [{"user": "Sky?", "assistant": "blue"}]},
            {"id": "b", "source": "custom", "conversations": [turn]},
        ],
    )
    out = tmp_path / "o"
    args = ["eval", "--model", "tiny", "--data", str(data), "--num-crops", "1", "--metric", "auroc", "--constrained"]
    assert runner.invoke(app, [*args, "--output", str(out)]).exit_code == 0
    summary = json.loads((out / "summary.json").read_text())
    result = score(str(out / "predictions.jsonl"), "--metric", "auroc", "--metric", "accuracy", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"auroc": summary["auroc"], "accuracy": summary["accuracy"]}


@pytest.mark.parametrize(
    ("lines", "metric", "problem"),
    [
        (['{"id": "a", "prediction": "x", "answers": ["x"]}', "{not json"], "anls", ":2: not valid JSON"),
        ([{"prediction": "x", "answers": ["x"]}], "anls", ":1: `id` is missing"),
        ([{"id": "a", "prediction": "x"}], "anls", ":1: anls needs `prediction` and `answers`"),
        ([{"id": "a", "prediction": "x", "answers": "x"}], "anls", ":1: `answers` must be a non-empty list"),
        ([{"id": "a", "reference": "x", "prediction": "x"}], "auroc", ":1: auroc and f1 need `reference` and"),
        ([{"id": "a", "reference": "no", "label_probs": {"no": 1.5, "yes": 0}}], "f1", ":1: `label_probs` must map"),
        (
            [
                {"id": "a", "reference": "no", "label_probs": {"no": 0.5, "yes": 0.5}},
                {"id": "b", "reference": "no", "label_probs": {"no": 0.5, "maybe": 0.5}},
            ],
            "auroc",
            ":2: `label_probs` has labels ['maybe', 'no'], line 1 has ['no', 'yes']",
        ),
        ([{"id": "a", "reference": "perhaps", "label_probs": {"no": 0.5, "yes": 0.5}}], "auroc", "not one of"),
        (["[1, 2]"], "accuracy", ":1: expected a JSON object, got list"),
    ],
)
def test_malformed_line_names_file_line_and_problem(tmp_path: Path, lines: list, metric: str, problem: str) -> None:
    path = write_lines(tmp_path / "bad.jsonl", lines)
    result = score(str(path), "--metric", metric)
    assert isinstance(result.exception, PredictionsFileError)
    message = str(result.exception)
    assert message.startswith(f"{path}:"), message
    assert message.startswith(f"{path}{problem}") if problem.startswith(":") else problem in message


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    result = score(str(path), "--metric", "accuracy")
    assert isinstance(result.exception, PredictionsFileError)
    assert str(result.exception) == f"{path}: no predictions (the file is empty)"


def test_malformed_file_exits_1_with_a_message_and_no_traceback(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", [{"id": "a", "prediction": "x", "answers": ["x"]}, {"id": "b"}])
    entry = "from phi3v_train.cli.main import main; main()"
    command = [sys.executable, "-c", entry, "score", str(path), "--metric", "anls"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PHI3V_DEBUG": ""})
    assert done.returncode == 1
    assert f"{path}:2: anls needs `prediction` and `answers` (or `reference`)" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_score_does_not_import_torch(answers_file: Path) -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from phi3v_train.cli import score_cmd; import typer;"
        "app = typer.Typer(); score_cmd.register(app);"
        f"r = CliRunner().invoke(app, [{str(answers_file)!r}, '--metric', 'anls', '--format', 'json']);"
        "print(r.output.strip(), 'torch' in sys.modules)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.split()[-1] == "False", output
