"""`phi3v-train run` options derived from `TrainConfig`: panels, defaults, overrides only when given,
the hand-written forms (--config names, --resume), and a new field reaching the help and TrainingArguments."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Annotated

import pytest
import typer
from pydantic import Field
from typer.testing import CliRunner

from phi3v_train.cli import run_cmd
from phi3v_train.cli.main import app
from phi3v_train.training.config import OPTIMISATION, PANELS, RunOption, TrainConfig, run_options, shipped_configs
from phi3v_train.training.trainer import training_arguments

runner = CliRunner()
WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}


@pytest.fixture
def captured(monkeypatch) -> list[TrainConfig]:
    """The configs `run` would train, instead of training."""
    configs: list[TrainConfig] = []
    monkeypatch.setattr(run_cmd, "_train", configs.append)
    return configs


@pytest.fixture
def train_file(tmp_path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("", encoding="utf-8")
    return path


def run_args(train_file: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--model", "hub/model", "--train-file", str(train_file), "--output-dir", str(tmp_path / "o"), *extra]


def panel_of_each_option(help_text: str) -> dict[str, str]:
    """``--flag`` -> the title of the help panel it sits in."""
    panels: dict[str, str] = {}
    panel = ""
    for line in help_text.splitlines():
        title = re.match(r"╭─ (\w+) ─", line)
        if title:
            panel = title.group(1)
            continue
        flag = re.match(r"│ (--[\w-]+)", line)
        if flag:
            panels[flag.group(1)] = panel
    return panels


def test_help_groups_every_option_in_its_panel_and_shows_the_defaults():
    result = runner.invoke(app, ["run", "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    titles = re.findall(r"╭─ (\w+) ─", result.output)
    assert titles == ["Options", *PANELS]
    panels = panel_of_each_option(result.output)
    assert (panels["--train-file"], panels["--num-crops"], panels["--lora-rank"]) == ("Data", "Model", "Mode")
    assert (panels["--learning-rate"], panels["--fsdp"], panels["--resume-from"]) == (
        "Optimisation",
        "Distribution",
        "Checkpoints",
    )
    assert (panels["--eval-metric"], panels["--config"]) == ("Evaluation", "Options")
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│ --")}
    assert "--lr" in lines["--learning-rate,--lr"] and "[default: 4e-05]" in lines["--learning-rate,--lr"]
    assert "<full|lora|qlora>" in lines["--mode"] and "[default: lora]" in lines["--mode"]
    assert "[default: validate]" in lines["--validate"] and "--no-validate" in lines["--validate"]
    assert "[default: tensorboard]" in lines["--report-to"]
    assert "default:" not in lines["--max-steps"]


def test_every_field_is_one_option_and_the_hand_written_ones_are_listed():
    command = typer.main.get_command(app).commands["run"]
    names = {parameter.name for parameter in command.params}
    fields = {name for name, (_, option) in run_options().items() if option.on_cli}
    assert names - fields == {"config_file", "resume", "resume_from"}
    assert fields <= names and "resume" not in fields


def test_options_override_the_config_file_only_when_given(tmp_path, train_file, captured):
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        "preset: docvqa\nlearning_rate: 3.0e-4\ngroup_by_length: true\nmode: full\nfreeze: [image-model]\n",
        encoding="utf-8",
    )
    given = ("--lr", "3e-3", "--no-group-by-length")
    for extra in ((), given):
        result = runner.invoke(app, run_args(train_file, tmp_path, "--config", str(config_file), *extra))
        assert result.exit_code == 0, result.output
    from_file, from_cli = captured
    assert (from_file.learning_rate, from_file.group_by_length, from_file.epochs) == (3e-4, True, 2.0)
    assert (from_cli.learning_rate, from_cli.group_by_length, from_cli.mode) == (3e-3, False, "full")
    assert from_file.freeze == ["image-model"]


def test_special_forms_keep_working(tmp_path, train_file, captured):
    other = tmp_path / "other.jsonl"
    other.write_text("", encoding="utf-8")
    checkpoint = tmp_path / "checkpoint-3"
    checkpoint.mkdir()
    args = run_args(
        train_file, tmp_path, "--train-file", str(other), "--freeze", "vision, projector", "--mode", "qlora",
        "--lora-targets", "qkv_proj,o_proj", "--no-validate", "--resume-from", str(checkpoint),
        "--report-to", "", "--preset", "hateful-memes", "--double-quant",
    )  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, [*run_args(train_file, tmp_path, "--resume"), "--mode", "full"]).exit_code == 0
    config, resumed = captured
    assert config.train_files == [train_file, other]
    assert (config.freeze, config.lora_targets) == (["vision", "projector"], ["qkv_proj", "o_proj"])
    assert config.report_to == []
    assert type(config.mode) is str and (config.mode, config.preset) == ("qlora", "hateful-memes")
    assert config.double_quant is True
    assert (config.validate_data, config.resume) == (False, str(checkpoint))
    assert (resumed.resume, resumed.validate_data, resumed.freeze, resumed.lora_targets) == ("latest", True, [], None)


def test_config_takes_the_name_of_a_shipped_config(tmp_path, monkeypatch, captured):
    assert shipped_configs() == [
        "docvqa_full", "docvqa_lora", "docvqa_qlora", "hateful_memes_lora", "nlvr2_frozen", "ucf101_lora",
    ]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for name in ("docvqa_train.jsonl", "docvqa_val.jsonl"):
        (tmp_path / "data" / name).write_text("", encoding="utf-8")
    result = runner.invoke(app, ["run", "--config", "docvqa_lora", "--max-steps", "100"])
    assert result.exit_code == 0, result.output
    [config] = captured
    assert (config.preset, config.mode, config.eval_metric, config.max_steps) == ("docvqa", "lora", "anls", 100)
    assert (config.learning_rate, config.lora_rank, config.num_crops) == (2e-4, 32, 16)


def test_unknown_config_name_lists_the_shipped_ones():
    result = runner.invoke(app, ["run", "--config", "docvqa_lorra"], env=WIDE)
    assert result.exit_code == 2
    message = " ".join(result.output.replace("│", " ").split())
    assert "config docvqa_lorra: no such file, and not a shipped config; shipped: docvqa_full, docvqa_lora," in message


def test_help_examples_are_whole_commands_that_parse(monkeypatch, captured):
    calls = []
    monkeypatch.setattr(run_cmd, "load_config", lambda *args: calls.append(args))
    examples = run_cmd.RUN_HELP.split("Examples:")[1].replace("\\\n", " ").strip().split("\n\n")
    assert len(examples) == 4
    for example in examples:
        words = shlex.split(example)
        assert "run" in words and "\n" not in example, example
        result = runner.invoke(app, words[words.index("run") :])
        assert result.exit_code == 0, (example, result.output)
    assert [len(overrides) for _, overrides, _ in calls] == [7, 8, 3, 1]


class WithLabelSmoothing(TrainConfig):
    label_smoothing: Annotated[float, RunOption(OPTIMISATION, training_args=("label_smoothing_factor",))] = Field(
        0.0, ge=0, lt=1, description="Label smoothing of the loss."
    )


def test_a_new_field_appears_in_the_help_and_the_training_arguments(tmp_path, train_file, captured):
    extended = typer.Typer()
    extended.callback()(lambda: None)
    run_cmd.register(extended, WithLabelSmoothing)
    help_text = runner.invoke(extended, ["run", "--help"], env=WIDE).output
    assert panel_of_each_option(help_text)["--label-smoothing"] == "Optimisation"
    [line] = [line for line in help_text.splitlines() if "--label-smoothing" in line]
    assert "Label smoothing of the loss." in line and "[default: 0.0]" in line

    result = runner.invoke(extended, run_args(train_file, tmp_path, "--label-smoothing", "0.1"))
    assert result.exit_code == 0, result.output
    [config] = captured
    assert isinstance(config, WithLabelSmoothing) and config.label_smoothing == 0.1
    assert training_arguments(config, "fp32", 1, False).label_smoothing_factor == 0.1


def test_training_arguments_of_the_declared_fields(tmp_path, train_file):
    config = TrainConfig(
        model="hub/model", train_files=[train_file], output_dir=tmp_path, batch_size=2, epochs=3.0, seed=5,
        lr_scheduler="cosine", eval_steps=7, save_total_limit=2, logging_steps=4,
    )  # fmt: skip
    args = training_arguments(config, "fp32", 3, False)
    assert (args.per_device_train_batch_size, args.per_device_eval_batch_size, args.num_train_epochs) == (2, 2, 3.0)
    assert (args.seed, args.data_seed, args.lr_scheduler_type, args.eval_steps) == (5, 5, "cosine", 7)
    assert (args.save_total_limit, args.logging_steps, args.gradient_accumulation_steps) == (2, 4, 3)
    assert (args.learning_rate, args.adam_beta2, args.adam_epsilon, args.warmup_steps) == (4e-5, 0.95, 1e-7, 50)
    assert (args.max_steps, args.save_strategy, args.eval_strategy) == (-1, "no", "no")
