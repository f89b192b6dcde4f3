"""Two CPU processes (torchrun, gloo) where one rank gets a text-only batch every step: no hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

TIMEOUT_S = 240


@pytest.mark.slow
def test_ddp_with_a_text_only_rank_finishes(tmp_path, write_jsonl):
    torchrun = Path(sys.executable).parent / "torchrun"
    cli = Path(sys.executable).parent / "phi3v-train"
    if not torchrun.is_file() or not cli.is_file():
        pytest.skip("torchrun or the phi3v-train console script is not installed in this environment")
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (40, 30), (255, 0, 0)).save(images / "red.png")
    records = [
        {"id": "img", "source": "t", "conversations": [{"images": ["red.png"], "user": "Colour?", "assistant": "Red"}]},
        {"id": "txt", "source": "t", "conversations": [{"user": "Say hi.", "assistant": "Hi"}]},
    ]
    train_file = write_jsonl(tmp_path, records)
    out = tmp_path / "run"
    command = [
        str(torchrun), "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 1000),
        str(cli), "run", "--model", "tiny", "--mode", "full", "--train-file", str(train_file),
        "--output-dir", str(out), "--num-crops", "1", "--max-steps", "3", "--logging-steps", "1", "--workers", "0",
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PHI3V_DISABLE_PROGRESS_BARS": "1"}
    try:
        done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"DDP run with a text-only rank did not finish in {TIMEOUT_S} s (hang)")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "train_results.json").read_text())
    assert results["global_step"] == 3
    assert [step for step, _ in results["losses"]] == [1, 2, 3]
