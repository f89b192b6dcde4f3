"""`phi3v-train run` and `doctor` from the command line: messages and exit codes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from phi3v_train.cli.main import app

runner = CliRunner()


def test_run_lists_every_config_problem(tmp_path):
    result = runner.invoke(
        app,
        ["run", "--model", "tiny", "--train-file", str(tmp_path / "nope.jsonl"), "--output-dir", str(tmp_path / "o"),
         "--lora-rank", "0", "--double-quant"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception)
    message = str(result.exception)
    assert "lora_rank" in message and "double_quant: only with --mode qlora" in message and "nope.jsonl" in message


def test_run_trains_and_writes_the_output_folder(colour_data, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        ["run", "--model", "tiny", "--mode", "lora", "--train-file", str(colour_data), "--output-dir", str(out),
         "--num-crops", "1", "--max-steps", "2", "--seed", "0", "--workers", "0",
         "--eval-file", str(colour_data), "--eval-metric", "accuracy", "--eval-limit", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "loss: first" in result.output and "eval loss:" in result.output
    results = json.loads((out / "train_results.json").read_text())
    assert results["global_step"] == 2 and results["train_records"] == 4
    for name in ("run_config.yaml", "adapter_config.json", "phi3v_base.json", "preprocessor_config.json"):
        assert (out / name).is_file(), name
    assert (out / "base_model" / "config.json").is_file()
    assert list((out / "logs").iterdir())
    metrics = json.loads((out / "eval_metrics.json").read_text())
    assert list(metrics) == [str(colour_data)]
    summary = metrics[str(colour_data)]
    assert (summary["num_records"], summary["metric"], summary["num_crops"]) == (2, "accuracy", 1)


def test_doctor_compares_versions_with_the_pins(monkeypatch):
    from phi3v_train.training import doctor

    missing = "surely-not-installed-pkg"
    checks = {check.name: check for check in doctor.version_checks({"torch": "0.0.1", missing: "1.0"})}
    assert checks["torch"].status == "warn" and "tested with 0.0.1" in checks["torch"].detail
    assert "torch==0.0.1" in checks["torch"].fix
    assert checks[missing].status == "warn" and checks[missing].detail == "not installed (tested: 1.0)"
    monkeypatch.setattr(doctor, "REQUIRED", (missing,))
    assert doctor.version_checks({missing: "1.0"})[0].status == "fail"
    assert doctor.version_checks(None)[0].status == "warn"


def test_doctor_without_smoke_exits_zero_here():
    result = runner.invoke(app, ["doctor", "--no-smoke", "--all"])
    assert result.exit_code == 0, result.output
    assert "transformers" in result.output and "failure(s)" in result.output


def test_resume_means_the_latest_checkpoint(colour_data, tmp_path):
    result = runner.invoke(
        app,
        ["run", "--model", "tiny", "--train-file", str(colour_data), "--output-dir", str(tmp_path / "o"), "--resume"],
    )
    assert "--resume: no checkpoint-N folder in" in str(result.exception)
