"""The eval, predict and export commands on the random tiny preset."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from phi3v_train.cli.main import app
from phi3v_train.errors import ConfigError, ExportError
from phi3v_train.evaluation.predict import answer_prompt, open_images
from phi3v_train.loading import load_model_and_processor

runner = CliRunner()


@pytest.fixture
def data_file(tmp_path, solid):
    (tmp_path / "images").mkdir()
    solid("red").save(tmp_path / "images" / "red.png")
    image_turn = {"user": "Color?", "assistant": "red", "images": ["red.png"]}
    lines = [
        {"id": "a", "source": "custom", "conversations": [{"user": "Sky?", "assistant": "blue"}]},
        {"id": "b", "source": "custom", "conversations": [image_turn]},
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_eval_writes_predictions_summary_and_prints_the_table(data_file, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PHI3V_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app, ["eval", "--model", "tiny", "--data", str(data_file), "--num-crops", "1", "--max-new-tokens", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "2 of 2" in result.output
    out = tmp_path / "eval" / "set"
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == ["a", "b"]
    assert [p["reference"] for p in predictions] == ["blue", "red"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy"] == 0.0 and summary["num_records"] == 2 and summary["num_crops"] == 1


def test_eval_auroc_prints_the_confusion_matrix(data_file, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PHI3V_DISABLE_PROGRESS_BARS", "1")
    args = ["eval", "--model", "tiny", "--data", str(data_file), "--num-crops", "1", "--metric", "auroc"]
    result = runner.invoke(app, [*args, "--constrained", "--output", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "confusion matrix" in result.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["confusion_matrix"]["labels"] == ["blue", "red"]
    assert sum(map(sum, summary["confusion_matrix"]["matrix"])) == 2
    assert summary["accuracy"] == sum(row[i] for i, row in enumerate(summary["confusion_matrix"]["matrix"])) / 2


def test_eval_rejects_a_single_label(data_file) -> None:
    result = runner.invoke(app, ["eval", "--model", "tiny", "--data", str(data_file), "--labels", "yes"])
    assert isinstance(result.exception, ConfigError)
    assert "at least two" in str(result.exception)


def test_predict_prints_the_libraries_answer(tmp_path, solid) -> None:
    solid("blue", (50, 40)).save(tmp_path / "x.png")
    args = ["predict", "--model", "tiny", "--image", str(tmp_path / "x.png"), "--prompt", "What?"]
    result = runner.invoke(app, [*args, "--num-crops", "1", "--max-new-tokens", "3"])
    assert result.exit_code == 0, result.output
    model, processor = load_model_and_processor("tiny", num_crops=1)
    expected = answer_prompt(model.eval(), processor, "What?", open_images([tmp_path / "x.png"]), max_new_tokens=3)
    assert result.output == expected + "\n"


def test_predict_jsonl_prints_one_line_per_record(data_file, monkeypatch) -> None:
    monkeypatch.setenv("PHI3V_DISABLE_PROGRESS_BARS", "1")
    args = ["predict", "--model", "tiny", "--jsonl", str(data_file), "--num-crops", "1", "--max-new-tokens", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["id"] for line in lines] == ["a", "b"] and all("prediction" in line for line in lines)


def test_predict_needs_a_prompt_or_a_file() -> None:
    result = runner.invoke(app, ["predict", "--model", "tiny"])
    assert isinstance(result.exception, ConfigError)


def test_export_full_model_and_push(tmp_path, monkeypatch) -> None:
    import huggingface_hub

    uploads = []

    class FakeApi:
        def __init__(self, token=None) -> None:
            pass

        def create_repo(self, repo_id, **kwargs):
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, **kwargs):
            uploads.append(kwargs)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = tmp_path / "exported"
    args = ["export", "--model", "tiny", "--out", str(out), "--num-crops", "2", "--verify", "--push-to-hub", "me/x"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "verified: max logit difference 0" in result.output
    assert "pushed to https://huggingface.co/me/x" in result.output
    assert uploads[0]["folder_path"] == str(out) and uploads[0]["repo_id"] == "me/x"
    assert json.loads((out / "preprocessor_config.json").read_text())["num_crops"] == 2
    again = runner.invoke(app, ["export", "--model", "tiny", "--out", str(out)])
    assert isinstance(again.exception, ExportError)
