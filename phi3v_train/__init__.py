"""phi3v_train: a native Phi-3(.5)-vision model and processor, and the fine-tuning toolkit around it.

The model classes load on first use, so that the CLI starts without importing torch:
``from phi3v_train import Phi3VForCausalLM`` (or ``import phi3v_train.model``) registers ``phi3_v``
with ``AutoConfig`` and ``AutoModelForCausalLM``, after which
``AutoModelForCausalLM.from_pretrained("microsoft/Phi-3.5-vision-instruct")`` loads the native model
without ``trust_remote_code``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_MODEL_NAMES = ("Phi3VConfig", "Phi3VForCausalLM", "Phi3VImageProcessor", "Phi3VProcessor")


def __getattr__(name: str) -> Any:
    if name in _MODEL_NAMES:
        return getattr(importlib.import_module("phi3v_train.model"), name)
    raise AttributeError(f"module 'phi3v_train' has no attribute {name!r}")


__all__ = [*_MODEL_NAMES, "__version__"]
