"""`--liger`: refusals name the fix; the fused-loss gate passes within 1e-3 and refuses beyond; the patched
modules call liger-kernel's functions (stand-ins here: liger-kernel needs CUDA and Triton)."""

from __future__ import annotations

import re
import sys
from types import ModuleType

import pytest
import torch
from throughput_items import mixed_items
from torch import nn

from phi3v_train.data.collator import Phi3VDataCollator
from phi3v_train.errors import ConfigError, MissingDependencyError
from phi3v_train.model.sizes import build_model
from phi3v_train.training import liger, trainer
from phi3v_train.training.config import load_config
from phi3v_train.training.liger import (
    LIGER_FUNCTIONS,
    apply_liger,
    fuse_modules,
    gate_fused_loss,
    liger_functions,
    liger_problem,
)

CPU = torch.device("cpu")


def stand_in_functions(calls: list[str], loss_shift: float = 0.0) -> ModuleType:
    """liger-kernel's functional API in plain torch (the unfused maths), recording each call."""
    functions = ModuleType(LIGER_FUNCTIONS)

    def liger_rms_norm(x, weight, eps, in_place=True):
        calls.append("rms_norm")
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
        return weight * normed.to(x.dtype)

    def liger_swiglu(gate, up):
        calls.append("swiglu")
        return up * nn.functional.silu(gate)

    def liger_cross_entropy(logits, targets, reduction="mean"):
        calls.append("cross_entropy")
        return nn.functional.cross_entropy(logits, targets, reduction=reduction) + loss_shift

    functions.liger_rms_norm = liger_rms_norm
    functions.liger_swiglu = liger_swiglu
    functions.liger_cross_entropy = liger_cross_entropy
    return functions


@pytest.fixture
def on_gpu(monkeypatch):
    """As on an unsharded CUDA run (the problems are tested on their own)."""
    monkeypatch.setattr(liger, "liger_problem", lambda on_cuda, sharded: None)


def test_refusals_name_the_fix(monkeypatch):
    assert liger_problem(on_cuda=False, sharded=False) == "--liger needs a CUDA GPU; its kernels are Triton"
    assert liger_problem(on_cuda=True, sharded=True) == (
        "--liger: not with --deepspeed or --fsdp (its loss check runs on the whole model); use plain DDP"
    )
    assert liger_problem(on_cuda=True, sharded=False) is None
    monkeypatch.setattr(liger.torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=re.escape("--liger needs a CUDA GPU; its kernels are Triton")):
        liger_functions(sharded=False)


def test_liger_kernel_not_installed(monkeypatch, on_gpu):
    monkeypatch.setitem(sys.modules, LIGER_FUNCTIONS, None)  # import fails as where it is not installed
    with pytest.raises(MissingDependencyError, match=re.escape("--liger needs liger-kernel: pip install liger-kernel")):
        liger_functions(sharded=False)


def test_gate_passes_within_the_tolerance_and_refuses_beyond():
    fused = []
    assert gate_fused_loss(lambda: 2.0009 if fused else 2.0, lambda: fused.append(True)) == (2.0, 2.0009)
    assert fused == [True]
    fused.clear()
    with pytest.raises(ConfigError) as refused:
        gate_fused_loss(lambda: 2.002 if fused else 2.0, lambda: fused.append(True))
    assert str(refused.value) == (
        "--liger: the fused loss 2.002000 differs from the unfused loss 2.000000 by 2.00e-03 on the first batch "
        "(more than 0.001); drop --liger"
    )


def test_apply_liger_patches_every_norm_mlp_and_the_loss_and_keeps_the_loss(monkeypatch, on_gpu):
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, LIGER_FUNCTIONS, stand_in_functions(calls))
    batch = Phi3VDataCollator()(mixed_items()[:3])
    model = build_model("tiny", seed=0).train()
    with torch.no_grad():
        expected = float(model.eval()(**batch, use_cache=False).loss)
    model.train()

    unfused, fused = apply_liger(model, batch, "fp32", CPU, sharded=False)
    assert (unfused, fused) == (expected, expected)
    assert model.training
    # one forward after fusing: 2 layers x (2 norms + 1 MLP) + the final norm, then the loss
    assert sorted(calls) == ["cross_entropy"] + ["rms_norm"] * 5 + ["swiglu"] * 2
    calls.clear()
    model(**batch, use_cache=False).loss.backward()
    assert sorted(calls) == ["cross_entropy"] + ["rms_norm"] * 5 + ["swiglu"] * 2


def test_apply_liger_refuses_a_fused_loss_off_by_more_than_the_tolerance(monkeypatch, on_gpu):
    monkeypatch.setitem(sys.modules, LIGER_FUNCTIONS, stand_in_functions([], loss_shift=2e-3))
    batch = Phi3VDataCollator()(mixed_items()[:2])
    with pytest.raises(ConfigError, match=r"differs from the unfused loss \d+\.\d{6} by 2\.00e-03 on the first batch"):
        apply_liger(build_model("tiny", seed=0), batch, "fp32", CPU, sharded=False)


def test_fuse_modules_refuses_an_activation_other_than_silu():
    model = build_model("tiny", seed=0)
    model.config.hidden_act = "gelu"
    with pytest.raises(ConfigError, match=re.escape("--liger: SwiGLU needs hidden_act silu, the model has 'gelu'")):
        fuse_modules(model, stand_in_functions([]))


def test_a_liger_run_on_cpu_stops_before_the_data_and_the_model(tmp_path, monkeypatch):
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("", encoding="utf-8")
    config = load_config(
        None, {"model": "tiny", "train_files": [train_file], "output_dir": tmp_path / "run", "liger": True}
    )
    monkeypatch.setattr(liger.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(trainer, "load_processor", lambda *args, **kwargs: pytest.fail("loaded the processor"))
    with pytest.raises(ConfigError, match=re.escape("--liger needs a CUDA GPU; its kernels are Triton")):
        trainer.train(config)
