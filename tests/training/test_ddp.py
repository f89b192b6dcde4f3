"""Two CPU processes (torchrun, gloo): a text-only rank does not hang DDP, and FSDP trains as DDP does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun_train(folder: Path, write_jsonl, *extra: str) -> Path:
    """Trains the tiny model for 3 steps on 2 processes, one of which gets the text-only record; returns the run."""
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
        *extra,
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PHI3V_DISABLE_PROGRESS_BARS": "1"}
    try:
        done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the 2-process run did not finish in {TIMEOUT_S} s (hang)")
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.slow
def test_ddp_with_a_text_only_rank_finishes(tmp_path, write_jsonl):
    out = torchrun_train(tmp_path, write_jsonl)
    results = json.loads((out / "train_results.json").read_text())
    assert results["global_step"] == 3
    assert [step for step, _ in results["losses"]] == [1, 2, 3]


@pytest.mark.slow
def test_fsdp_trains_to_the_same_weights_as_ddp(tmp_path, write_jsonl):
    ddp = torchrun_train(tmp_path / "ddp", write_jsonl)
    fsdp = torchrun_train(tmp_path / "fsdp", write_jsonl, "--fsdp", "full_shard")
    assert yaml.safe_load((fsdp / "run_config.yaml").read_text())["fsdp"] == "full_shard"
    arguments = torch.load(fsdp / "training_args.bin", weights_only=False)
    assert arguments.fsdp and arguments.fsdp_config["reshard_after_forward"] is True
    assert arguments.fsdp_config["activation_checkpointing"] is True and not arguments.activation_checkpointing
    ddp_losses = json.loads((ddp / "train_results.json").read_text())["losses"]
    assert json.loads((fsdp / "train_results.json").read_text())["losses"] == ddp_losses
    ddp_weights, fsdp_weights = load_file(ddp / "model.safetensors"), load_file(fsdp / "model.safetensors")
    assert set(fsdp_weights) == set(ddp_weights)
    for name, value in ddp_weights.items():
        assert (fsdp_weights[name] - value).abs().max().item() < 1e-6, name
