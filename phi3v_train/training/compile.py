"""``--compile``: each decoder layer of the language model through ``torch.compile`` (off by default).

Layers are compiled one by one (``nn.Module.compile``), so activation checkpointing, PEFT and the
image embedding stay outside the compiled graphs. Unsupported set-ups stop the run before training
with a message naming the fix.
"""

from __future__ import annotations

import shutil

import torch
from torch import nn

from phi3v_train.errors import ConfigError
from phi3v_train.training.vision_guard import find_phi3v


def compile_problem(mode: str, on_cuda: bool) -> str | None:
    """Why ``--compile`` cannot run here, or None."""
    if not torch._dynamo.is_dynamo_supported():
        return "--compile: torch.compile does not support this Python/platform; drop --compile"
    if mode == "qlora":
        return "--compile: bitsandbytes 4-bit layers (QLoRA) do not compile; drop --compile or use --mode lora"
    if not on_cuda and shutil.which("g++") is None and shutil.which("c++") is None:
        return "--compile on CPU needs a C++ compiler (g++) on PATH; install one or drop --compile"
    return None


def compile_decoder_layers(model: nn.Module, mode: str) -> int:
    """Compiles every decoder layer of the Phi3VForCausalLM inside ``model``; returns how many.

    Raises:
        ConfigError: where ``--compile`` is not supported (see :func:`compile_problem`).
    """
    problem = compile_problem(mode, torch.cuda.is_available())
    if problem is not None:
        raise ConfigError(problem)
    layers = find_phi3v(model).model.layers
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)


__all__ = ["compile_decoder_layers", "compile_problem"]
