"""Train the tiny model with LoRA until it answers, evaluate (accuracy 1.0), export merged, reload, same answers."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import phi3v_train
from phi3v_train.cli.main import app
from phi3v_train.data.records import load_records
from phi3v_train.evaluation import evaluate_records
from phi3v_train.evaluation.predict import answer_prompt
from phi3v_train.loading import load_model_and_processor
from phi3v_train.model.processing import Phi3VProcessor
from phi3v_train.training.config import load_config
from phi3v_train.training.trainer import train

RECORDS = [
    {"id": "a", "source": "custom", "conversations": [{"user": "What color is the sky?", "assistant": "blue"}]},
    {"id": "b", "source": "custom", "conversations": [{"user": "Name the color.", "assistant": "red"}]},
    {"id": "c", "source": "custom", "conversations": [{"user": "Say a number.", "assistant": "seven"}]},
]


def test_train_eval_export_reload(tmp_path, monkeypatch, solid) -> None:
    monkeypatch.setenv("PHI3V_DISABLE_PROGRESS_BARS", "1")
    data = tmp_path / "set.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in RECORDS))
    run = tmp_path / "run"
    config = load_config(
        overrides={
            "model": "tiny",
            "train_files": [data],
            "output_dir": run,
            "mode": "lora",
            "num_crops": 1,
            "max_steps": 120,
            "learning_rate": 5e-3,
            "lr_scheduler": "constant",
            "warmup_steps": 0,
            "batch_size": 1,
            "global_batch_size": 3,
            "lora_rank": 16,
            "lora_alpha": 32,
            "gradient_checkpointing": False,
            "report_to": [],
            "seed": 0,
        }
    )
    result = train(config)
    assert result.last_loss < 0.01 < 5 < result.first_loss

    runner = CliRunner()
    evaluated = runner.invoke(app, ["eval", "--model", str(run), "--data", str(data), "--num-crops", "1"])
    assert evaluated.exit_code == 0, evaluated.output
    summary = json.loads((run / "eval" / "set" / "summary.json").read_text())
    assert summary["accuracy"] == 1.0 and summary["num_records"] == 3
    predictions = [json.loads(line) for line in (run / "eval" / "set" / "predictions.jsonl").read_text().splitlines()]
    assert [p["prediction"] for p in predictions] == ["blue", "red", "seven"]

    merged = tmp_path / "merged"
    exported = runner.invoke(app, ["export", "--model", str(run), "--out", str(merged), "--merge", "--verify"])
    assert exported.exit_code == 0, exported.output
    info = json.loads((merged / "phi3v_export.json").read_text())
    assert info["merged"] is True and info["verify"]["max_abs_diff"] <= 1e-3

    adapter_model, processor = load_model_and_processor(str(run), num_crops=1)
    image = [solid("red")]
    adapter_answer = answer_prompt(adapter_model.eval(), processor, "Describe it.", image, max_new_tokens=6)
    exported_processor = Phi3VProcessor.from_pretrained(merged)
    assert exported_processor.num_crops == 1
    from transformers import AutoModelForCausalLM

    for model in (phi3v_train.Phi3VForCausalLM.from_pretrained(merged), AutoModelForCausalLM.from_pretrained(merged)):
        assert type(model) is phi3v_train.Phi3VForCausalLM
        again = evaluate_records(model, exported_processor, load_records(data), image_root=tmp_path)
        assert [p["prediction"] for p in again.predictions] == ["blue", "red", "seven"]
        assert answer_prompt(model, exported_processor, "Describe it.", image, max_new_tokens=6) == adapter_answer
