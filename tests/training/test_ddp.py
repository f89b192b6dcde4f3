"""Two CPU processes (torchrun, gloo) through the CLI: a text-only rank does not hang DDP, and the engine is
printed and recorded. `--fsdp` on CPU is refused (accelerate would silently run DDP); real FSDP2 is
tested in tests/distributed/test_engines.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from phi3v_train.cli.main import app

TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun_train(folder: Path, write_jsonl) -> tuple[Path, str]:
    """Trains the tiny model for 3 steps on 2 processes, one of which gets the text-only record; returns the
    run folder and the processes' stderr."""
    torchrun = Path(sys.executable).parent / "torchrun"
    cli = Path(sys.executable).parent / "phi3v-train"
    if not torchrun.is_file() or not cli.is_file():
        pytest.skip("torchrun or the phi3v-train console script is not installed in this environment")
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (255, 0, 0)).save(images / "red.png")
    records = [
        {"id": "img", "source": "t", "conversations": [{"images": ["red.png"], "user": "Colour?", "assistant": "Red"}]},
        {"id": "txt", "source": "t", "conversations": [{"user": "Say hi.", "assistant": "Hi"}]},
    ]
    train_file = write_jsonl(folder, records)
    out = folder / "run"
    command = [
        str(torchrun), "--nproc_per_node", "2", "--master_port", str(free_port()),
        str(cli), "run", "--model", "tiny", "--mode", "full", "--train-file", str(train_file),
        "--output-dir", str(out), "--num-crops", "1", "--max-steps", "3", "--logging-steps", "1", "--workers", "0",
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PHI3V_DISABLE_PROGRESS_BARS": "1"}
    try:
        done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the 2-process run did not finish in {TIMEOUT_S} s (hang)")
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stderr


@pytest.mark.slow
def test_ddp_with_a_text_only_rank_finishes(tmp_path, write_jsonl):
    out, stderr = torchrun_train(tmp_path, write_jsonl)
    results = json.loads((out / "train_results.json").read_text())
    assert results["global_step"] == 3
    assert [step for step, _ in results["losses"]] == [1, 2, 3]
    assert results["distributed"] == {"engine": "ddp", "zero_stage": None, "world_size": 2}
    assert stderr.count("engine: ddp on 2 process(es)") == 1  # printed once, by rank 0


def test_fsdp_on_cpu_is_refused_before_training(colour_data, tmp_path):
    result = CliRunner().invoke(
        app,
        ["run", "--model", "tiny", "--train-file", str(colour_data), "--output-dir", str(tmp_path / "run"),
         "--fsdp", "full_shard", "--max-steps", "1", "--workers", "0"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "--fsdp needs GPUs" in str(result.exception) and "silently train as DDP" in str(result.exception)
    assert not (tmp_path / "run" / "run_config.yaml").exists()
