"""`benchmarks/gpu_suite.sh --smoke`: the GPU suite's own code path on CPU with the tiny preset."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_suite_smoke_writes_every_case_next_to_the_recipe_figures(tmp_path):
    out = tmp_path / "suite.json"
    done = subprocess.run(
        [
            "bash",
            str(REPO_ROOT / "benchmarks" / "gpu_suite.sh"),
            "--smoke",
            "--modes",
            "full,lora,qlora",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "QLoRA skipped: it needs CUDA and bitsandbytes" in done.stderr
    result = json.loads(out.read_text())
    assert result["smoke"] is True and result["settings"]["preset"] == "tiny"
    cases = [(case["mode"], case["attn"], case["layout"]) for case in result["cases"]]
    assert cases == [
        ("full", "sdpa", "padded"),
        ("full", "sdpa", "packed"),
        ("lora", "sdpa", "padded"),
        ("lora", "sdpa", "packed"),
    ]
    assert [case["recipe_a100_img_s_per_gpu"] for case in result["cases"]] == [0.63, 0.63, 0.70, 0.70]
    for case in result["cases"]:
        assert case["img_s_per_gpu"] > 0 and case["tokens_s"] > 0
        assert case["mfu"] is None and case["peak_memory_gb"] is None  # no GPU peak or memory on CPU
    assert "full    sdpa               padded" in done.stdout
