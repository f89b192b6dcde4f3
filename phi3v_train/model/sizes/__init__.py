"""Named model sizes: the two hub checkpoints' numbers, and ``tiny`` for tests and CPU demos.

Each size is a ``config.json`` beside this file. The full-size ones hold the numbers of the hub
``config.json`` files (rope factors included), so a randomly initialised model of the real size can be
built without downloading anything. ``tiny`` keeps the real vocabulary (so the real special-token ids
work) around a 2-layer, 64-wide decoder and a 3-layer, 32-wide CLIP that still sees 336-px crops as
24x24 patches of 14 px. To load real weights, use
``Phi3VForCausalLM.from_pretrained("microsoft/Phi-3.5-vision-instruct")`` instead.
"""

from __future__ import annotations

import contextlib
import json
from importlib import resources

import torch

from phi3v_train.errors import ModelConfigError
from phi3v_train.model.configuration import Phi3VConfig
from phi3v_train.model.modeling import Phi3VForCausalLM

SIZE_NAMES: tuple[str, ...] = ("phi-3.5-vision-instruct", "phi-3-vision-128k-instruct", "tiny")


def size_config(name: str) -> Phi3VConfig:
    """The ``Phi3VConfig`` of a named size (see ``SIZE_NAMES``)."""
    if name not in SIZE_NAMES:
        raise ModelConfigError(f"unknown model size {name!r}; choose one of {', '.join(SIZE_NAMES)}")
    text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return Phi3VConfig(**json.loads(text))


def build_model(
    name: str,
    *,
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "sdpa",
    seed: int = 0,
    device: str | torch.device | None = None,
) -> Phi3VForCausalLM:
    """A randomly initialised model of a named size; the same ``seed`` gives the same weights.

    ``device`` builds it in place (e.g. ``"cuda"``, or ``"meta"`` to count parameters without memory).
    """
    config = size_config(name)
    placement = torch.device(device) if device is not None else contextlib.nullcontext()
    with torch.random.fork_rng(devices=[]), placement:
        torch.manual_seed(seed)
        return Phi3VForCausalLM._from_config(config, dtype=dtype, attn_implementation=attn_implementation)


__all__ = ["SIZE_NAMES", "build_model", "size_config"]
