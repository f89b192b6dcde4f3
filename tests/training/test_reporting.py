"""`--report-to` passes the Trainer's logging integrations through; unknown or uninstalled ones stop the run first."""

from __future__ import annotations

import importlib.util

import pytest

from phi3v_train.errors import ConfigError


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_an_uninstalled_reporter_is_an_error_before_training(colour_data, tmp_path, quick_run):
    with pytest.raises(ConfigError, match=r"--report-to wandb: WandbCallback requires wandb to be installed"):
        quick_run(colour_data, tmp_path / "run", report_to=["wandb"], max_steps=1)
    assert not (tmp_path / "run" / "run_config.yaml").exists()


def test_an_unknown_reporter_is_an_error_naming_the_known_ones(colour_data, tmp_path, quick_run):
    with pytest.raises(ConfigError, match=r"--report-to: nope is not supported, only azure_ml, .*wandb"):
        quick_run(colour_data, tmp_path / "run", report_to=["nope"], max_steps=1)


def test_tensorboard_writes_event_files_under_logs(colour_data, tmp_path, quick_run):
    quick_run(colour_data, tmp_path / "run", report_to=["tensorboard"], max_steps=1)
    assert [path.name.split(".")[0] for path in (tmp_path / "run" / "logs").iterdir()] == ["events"]
