"""``--liger``: liger-kernel's fused RMSNorm, SwiGLU and cross-entropy in the language model (off by default).

The modules are patched in place (their ``forward``), so weights, PEFT adapters, checkpointing and saved
checkpoints are unchanged; the vision tower is left as it is. Before training, the loss of a fixed batch
is taken unfused and fused: beyond :data:`LIGER_TOLERANCE` apart the run stops (fused cross-entropy has
been reported to hurt VLM quality).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from types import MethodType, ModuleType
from typing import Any

import torch
from torch import nn

from phi3v_train.errors import ConfigError, MissingDependencyError
from phi3v_train.training.vision_guard import find_phi3v

LIGER_TOLERANCE = 1e-3
LIGER_FUNCTIONS = "liger_kernel.transformers.functional"
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def liger_problem(on_cuda: bool, sharded: bool) -> str | None:
    """Why ``--liger`` cannot run here, or None (whether liger-kernel is installed is not checked here)."""
    if not on_cuda:
        return "--liger needs a CUDA GPU; its kernels are Triton"
    if sharded:
        return "--liger: not with --deepspeed or --fsdp (its loss check runs on the whole model); use plain DDP"
    return None


def liger_functions(sharded: bool) -> ModuleType:
    """liger-kernel's functional API, where ``--liger`` can run.

    Raises:
        ConfigError: no CUDA device, or sharded engines (see :func:`liger_problem`).
        MissingDependencyError: liger-kernel is not installed.
    """
    problem = liger_problem(torch.cuda.is_available(), sharded)
    if problem is not None:
        raise ConfigError(problem)
    try:
        return importlib.import_module(LIGER_FUNCTIONS)
    except ImportError as exc:
        raise MissingDependencyError("--liger needs liger-kernel: pip install liger-kernel") from exc


def fuse_modules(model: nn.Module, functions: ModuleType) -> int:
    """Patches every RMSNorm and MLP of the language model inside ``model`` and its training cross-entropy;
    returns how many modules were patched.

    Raises:
        ConfigError: the MLP's activation is not SiLU (SwiGLU would change the model).
    """
    phi3v = find_phi3v(model)
    if phi3v.config.hidden_act != "silu":
        raise ConfigError(f"--liger: SwiGLU needs hidden_act silu, the model has {phi3v.config.hidden_act!r}")
    rms_norm, swiglu = functions.liger_rms_norm, functions.liger_swiglu

    def rms_norm_forward(self: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
        # Out of place: the loss check covers the forward only.
        return rms_norm(hidden_states, self.weight, self.variance_epsilon, in_place=False)

    def swiglu_forward(self: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(hidden_states).chunk(2, dim=-1)
        return self.down_proj(swiglu(gate, up))

    decoder = phi3v.model
    norms = [decoder.norm]
    for layer in decoder.layers:
        norms += [layer.input_layernorm, layer.post_attention_layernorm]
        layer.mlp.forward = MethodType(swiglu_forward, layer.mlp)
    for norm in norms:
        norm.forward = MethodType(rms_norm_forward, norm)
    phi3v.cross_entropy = functions.liger_cross_entropy
    return len(norms) + len(decoder.layers)


def gate_fused_loss(
    loss: Callable[[], float], fuse: Callable[[], Any], tolerance: float = LIGER_TOLERANCE
) -> tuple[float, float]:
    """The loss before and after ``fuse()``; returns both.

    Raises:
        ConfigError: they are more than ``tolerance`` apart.
    """
    unfused = loss()
    fuse()
    fused = loss()
    if not abs(fused - unfused) <= tolerance:
        raise ConfigError(
            f"--liger: the fused loss {fused:.6f} differs from the unfused loss {unfused:.6f} by "
            f"{abs(fused - unfused):.2e} on the first batch (more than {tolerance:g}); drop --liger"
        )
    return unfused, fused


def apply_liger(
    model: nn.Module, batch: dict[str, torch.Tensor], precision: str, device: torch.device, sharded: bool
) -> tuple[float, float]:
    """Fuses the modules of ``model`` (moved to ``device``) once the fused loss of ``batch`` is shown to
    equal the unfused one; returns both losses.

    Raises:
        ConfigError: no CUDA device, sharded engines, or the losses differ (see :func:`gate_fused_loss`).
        MissingDependencyError: liger-kernel is not installed.
    """
    functions = liger_functions(sharded)
    if next(model.parameters()).device.type != "cuda":
        model.to(device)
    inputs = {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}
    dtype = AUTOCAST.get(precision)

    def loss() -> float:
        autocast = torch.autocast("cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with torch.no_grad(), autocast:
            return float(model(**inputs, use_cache=False).loss)

    training = model.training
    model.eval()
    try:
        return gate_fused_loss(loss, lambda: fuse_modules(model, functions))
    finally:
        model.train(training)


__all__ = ["LIGER_TOLERANCE", "apply_liger", "fuse_modules", "gate_fused_loss", "liger_functions", "liger_problem"]
