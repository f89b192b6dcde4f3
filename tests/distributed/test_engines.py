"""DDP, DeepSpeed ZeRO-2/3 and FSDP2 for real: 2 CPU processes (torchrun, gloo), one torchrun per engine.

The file has one image record and one text-only record; batch size 1, 4 steps, so each step one rank
has no image. Each run checks from inside that its engine engaged (ZeRO-3: local weights of shape
``(0,)``; FSDP2: DTensors holding half the rows) and that its losses equal DDP's. The negative control
turns the vision guard off and ZeRO-3 must fail with gloo's collective mismatch.

The launchers are ``run_trainer.py`` (the project's ``train()``; DDP and DeepSpeed) and ``fsdp_steps.py``
(FSDP2 through ``fully_shard``, which accelerate never enables on CPU).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
TIMEOUT_S = 300
STEPS = 4
TOLERANCE = 1e-4

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (BIN / "torchrun").is_file(), reason="torchrun is not installed in this environment"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def needs_deepspeed() -> None:
    pytest.importorskip("deepspeed", reason="deepspeed is not installed (pip install -e '.[dev]')")
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("DeepSpeed builds its CPU communication op on first use and needs a C++ compiler (g++)")


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """train.jsonl (one image record, one text-only record) and eval.jsonl (3 records: 2 + 1 per rank)."""
    folder = tmp_path_factory.mktemp("data")
    (folder / "images").mkdir()
    Image.new("RGB", (40, 30), (255, 0, 0)).save(folder / "images" / "red.png")
    image = {
        "id": "img",
        "source": "t",
        "conversations": [{"images": ["red.png"], "user": "Colour?", "assistant": "Red"}],
    }
    text = {"id": "txt", "source": "t", "conversations": [{"user": "Say hi.", "assistant": "Hi"}]}
    write_records(folder / "train.jsonl", [image, text])
    write_records(folder / "eval.jsonl", [image, text, {**text, "id": "txt2"}])
    return folder


def options(data: Path, out: Path, **extra: Any) -> dict[str, Any]:
    values = {
        "model": "tiny", "train_files": [str(data / "train.jsonl")], "output_dir": str(out), "num_crops": 1,
        "max_steps": STEPS, "batch_size": 1, "logging_steps": 1, "learning_rate": 5e-3, "warmup_steps": 0,
        "report_to": [], "workers": 0, "mode": "full",
    }  # fmt: skip
    values.update(extra)
    return values


def evaluation(data: Path) -> dict[str, Any]:
    """Generation eval after training on eval.jsonl: 3 records, so 2 on rank 0 and 1 (+ a repeat) on rank 1."""
    return {"eval_files": [str(data / "eval.jsonl")], "eval_metric": "accuracy"}


def torchrun(script: str, runs: list[dict], folder: Path) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "spec.json"
    spec.write_text(json.dumps({"out": str(folder), "runs": runs}))
    command = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()),
               str(HERE / script), str(spec)]  # fmt: skip
    environment = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # ninja, for DeepSpeed's one-time op build
        "OMP_NUM_THREADS": "1",
        "PHI3V_DISABLE_PROGRESS_BARS": "1",
        "DS_ACCELERATOR": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
    }
    try:
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the 2-process run did not finish in {TIMEOUT_S} s (hang)")


def results_of(script: str, runs: list[dict], folder: Path) -> list[dict[str, Any]]:
    """Each rank's results (rank order) of a successful torchrun."""
    done = torchrun(script, runs, folder)
    assert done.returncode == 0, done.stderr[-4000:]
    return [json.loads((folder / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def assert_close(losses: list, reference: list) -> None:
    assert [step for step, _ in losses] == [step for step, _ in reference] == list(range(1, STEPS + 1))
    for (step, value), (_, expected) in zip(losses, reference, strict=True):
        assert abs(value - expected) <= TOLERANCE, (step, value, expected)


def adapter_keys(folder: Path) -> set[str]:
    with safe_open(folder / "adapter_model.safetensors", "pt") as handle:
        return set(handle.keys())


@pytest.fixture(scope="module")
def ddp(data, tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("ddp")
    runs = [
        {"name": "full", "config": options(data, folder / "full")},
        {"name": "lora", "config": options(data, folder / "lora", mode="lora")},
    ]
    ranks = results_of("run_trainer.py", runs, folder)
    for name in ("full", "lora"):
        assert ranks[0][name]["result"]["losses"] == ranks[1][name]["result"]["losses"]
    return {name: ranks[0][name] | {"folder": folder / name} for name in ("full", "lora")}


def test_ddp_engine_is_recorded(ddp):
    for name in ("full", "lora"):
        assert ddp[name]["result"]["distributed"] == {"engine": "ddp", "zero_stage": None, "world_size": 2}
        assert json.loads((ddp[name]["folder"] / "train_results.json").read_text())["distributed"]["engine"] == "ddp"
        assert ddp[name]["probe"]["local_shape"] == [32064, 64]
    losses = [value for _, value in ddp["full"]["result"]["losses"]]
    assert losses[-1] < losses[0] - 0.5  # it trains: the comparisons below are not between frozen runs
    # a LoRA checkpoint holds the adapter only, not the base lm_head/embeddings
    assert all(".lora_" in key for key in adapter_keys(ddp["lora"]["folder"]))


def test_zero2_trains_as_ddp_resumes_exactly_and_runs_qlora(data, tmp_path, ddp):
    needs_deepspeed()
    runs = [
        {"name": "straight", "config": options(data, tmp_path / "straight", deepspeed="zero2")},
        {"name": "first", "stop_at": 2, "config": options(data, tmp_path / "resumed", deepspeed="zero2", save_steps=2)},
        {"name": "resumed",
         "config": options(data, tmp_path / "resumed", deepspeed="zero2", save_steps=2, resume="latest")},
        {"name": "qlora", "config": options(data, tmp_path / "qlora", deepspeed="zero2", mode="qlora", max_steps=2)},
    ]  # fmt: skip
    rank0, _ = results_of("run_trainer.py", runs, tmp_path)
    straight, first, resumed = (rank0[name]["result"] for name in ("straight", "first", "resumed"))
    assert straight["distributed"] == {"engine": "deepspeed", "zero_stage": 2, "world_size": 2}
    probe = rank0["straight"]["probe"]
    assert probe["optimizer"] == "DeepSpeedZeroOptimizer"
    # ZeRO-2: each rank holds half of the fp32 master weights (plus alignment padding)
    assert 0 <= 2 * probe["fp32_partition_numel"] - probe["trainable_numel"] < 64
    assert_close(straight["losses"], ddp["full"]["result"]["losses"])
    assert first["global_step"] == 2 and resumed["global_step"] == STEPS
    assert first["losses"] + resumed["losses"] == straight["losses"]
    expected, actual = (
        load_file(tmp_path / "straight" / "model.safetensors"),
        load_file(tmp_path / "resumed" / "model.safetensors"),
    )
    assert expected.keys() == actual.keys()
    assert all(torch.equal(value, actual[key]) for key, value in expected.items())
    # QLoRA on ZeRO-2: the 4-bit base stays whole, the adapters' fp32 master weights are partitioned
    qlora = rank0["qlora"]
    assert qlora["result"]["distributed"]["zero_stage"] == 2 and qlora["result"]["global_step"] == 2
    assert 0 <= 2 * qlora["probe"]["fp32_partition_numel"] - qlora["probe"]["trainable_numel"] < 64
    assert all(".lora_" in key for key in adapter_keys(tmp_path / "qlora"))


def test_zero3_shards_trains_as_ddp_and_evaluates_unequal_shards(data, tmp_path, ddp):
    needs_deepspeed()
    runs = [
        {"name": "full", "config": options(data, tmp_path / "full", deepspeed="zero3", **evaluation(data))},
        {"name": "lora", "config": options(data, tmp_path / "lora", deepspeed="zero3", mode="lora")},
        {"name": "packed", "config": options(data, tmp_path / "packed", deepspeed="zero3", packing=True)},
    ]
    ranks = results_of("run_trainer.py", runs, tmp_path)
    # --packing under ZeRO-3: the packed path (per-record positions and attention) trains as unpacked DDP
    assert_close(ranks[0]["packed"]["result"]["losses"], ddp["full"]["result"]["losses"])
    assert ranks[0]["packed"]["probe"]["local_shape"] == [0]
    for name in ("full", "lora"):
        for rank in ranks:
            assert rank[name]["result"]["distributed"] == {"engine": "deepspeed", "zero_stage": 3, "world_size": 2}
            assert rank[name]["probe"]["local_shape"] == [0]  # partitioned: this rank holds no full weight
            assert rank[name]["probe"]["full_shape"] == [32064, 64]
        assert_close(ranks[0][name]["result"]["losses"], ddp[name]["result"]["losses"])
    assert all(".lora_" in key for key in adapter_keys(tmp_path / "lora"))
    assert adapter_keys(tmp_path / "lora") == adapter_keys(ddp["lora"]["folder"])
    # generation eval: 3 records on 2 ranks (2 + a repeat-padded 1), a text-only prompt, no hang, nothing doubled
    summaries = [rank["full"]["result"]["eval_metrics"][str(data / "eval.jsonl")] for rank in ranks]
    assert summaries[0] == summaries[1]
    assert summaries[0]["num_records"] == 3


def test_zero3_without_the_vision_guard_fails_fast(data, tmp_path):
    """The negative control: a text-only rank that skips the vision tower desynchronises ZeRO-3's gathers."""
    needs_deepspeed()
    runs = [
        {"name": "unguarded", "config": options(data, tmp_path / "run", deepspeed="zero3", vision_every_step="never")}
    ]
    done = torchrun("run_trainer.py", runs, tmp_path)
    assert done.returncode != 0
    assert "collective mismatch" in done.stderr or "Connection reset by peer" in done.stderr, done.stderr[-3000:]
    assert not (tmp_path / "rank0.json").exists()


def test_fsdp2_shards_and_trains_as_ddp(data, tmp_path, ddp):
    runs = [
        {"name": "full", "config": options(data, tmp_path / "full", **evaluation(data))},
        {"name": "lora", "config": options(data, tmp_path / "lora", mode="lora")},
    ]
    ranks = results_of("fsdp_steps.py", runs, tmp_path)
    for name in ("full", "lora"):
        for rank in ranks:
            probe = rank[name]["probe"]
            assert probe["model.embed_tokens.weight"] == {
                "dtensor": True,
                "global_shape": [32064, 64],
                "local_shape": [16032, 64],
            }
            assert probe["model.layers.0.mlp.down_proj.weight"] == {
                "dtensor": True,
                "global_shape": [64, 128],
                "local_shape": [32, 128],
            }
        assert_close(ranks[0][name]["losses"], ddp[name]["result"]["losses"])
    summaries = [rank["full"]["eval_metrics"][str(data / "eval.jsonl")] for rank in ranks]
    assert summaries[0] == summaries[1] and summaries[0]["num_records"] == 3
