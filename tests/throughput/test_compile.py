"""`--compile`: unsupported set-ups get a message naming the fix; compiled layers give the same loss."""

from __future__ import annotations

import pytest
import torch
from throughput_items import mixed_items

from phi3v_train.data.collator import Phi3VDataCollator
from phi3v_train.errors import ConfigError
from phi3v_train.model.sizes import build_model
from phi3v_train.training import compile as compile_module
from phi3v_train.training.compile import compile_decoder_layers, compile_problem


def test_unsupported_setups_name_the_fix(monkeypatch):
    assert compile_problem("lora", on_cuda=False) is None
    assert compile_problem("qlora", on_cuda=True) == (
        "--compile: bitsandbytes 4-bit layers (QLoRA) do not compile; drop --compile or use --mode lora"
    )
    monkeypatch.setattr(compile_module.shutil, "which", lambda name: None)
    assert compile_problem("full", on_cuda=False) == (
        "--compile on CPU needs a C++ compiler (g++) on PATH; install one or drop --compile"
    )
    assert compile_problem("full", on_cuda=True) is None
    with pytest.raises(ConfigError, match="needs a C\\+\\+ compiler"):
        compile_decoder_layers(build_model("tiny", seed=0), "full")


@pytest.mark.slow
def test_compiled_decoder_layers_give_the_same_loss():
    batch = Phi3VDataCollator(packing=True)(mixed_items()[1:4])
    model = build_model("tiny", seed=0).train()
    expected = model(**batch, use_cache=False).loss
    assert compile_decoder_layers(model, "full") == 2
    actual = model(**batch, use_cache=False).loss
    actual.backward()
    assert torch.allclose(actual, expected, atol=1e-5)
