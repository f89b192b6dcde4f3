"""Every rank runs the vision tower every step, even on a text-only batch (SPEC 6.2 item 1).

Under DDP and ZeRO-3 a rank whose batch has no image would skip the vision modules while the others
run them: DDP waits forever for gradients that never come and ZeRO-3's parameter prefetch diverges.
The collator (``ensure_vision=True``) gives such a batch a dummy zero image under ``vision_guard_*``
keys; the hooks installed here take it out of the model's inputs, run it through the image embedding
(CLIP, separators, projector) and add ``0 * features.sum()`` to the loss. The loss value is unchanged
and every vision parameter gets a (zero) gradient. No model code is modified.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.utils.hooks import RemovableHandle

from phi3v_train.data.collator import GUARD_PIXELS, GUARD_SIZES
from phi3v_train.model.modeling import Phi3VForCausalLM


def find_phi3v(model: nn.Module) -> Phi3VForCausalLM:
    """The Phi3VForCausalLM inside a PEFT or DDP wrapper."""
    for module in model.modules():
        if isinstance(module, Phi3VForCausalLM):
            return module
    raise TypeError(f"{type(model).__name__} holds no Phi3VForCausalLM")


def install_vision_guard(model: nn.Module) -> list[RemovableHandle]:
    """Installs the hooks on the Phi3VForCausalLM inside ``model``; returns their handles."""
    target = find_phi3v(model)
    pending: list[tuple[Any, Any]] = []

    def take_dummy(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        pixels, sizes = kwargs.pop(GUARD_PIXELS, None), kwargs.pop(GUARD_SIZES, None)
        pending.clear()
        if pixels is not None:
            pending.append((pixels, sizes))
        return args, kwargs

    def add_zero_vision_loss(module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> Any:
        if not pending or output.loss is None:
            return output
        pixels, sizes = pending.pop()
        embedding = module.model.vision_embed_tokens
        features = embedding(pixels.to(module.device), sizes.to(module.device))
        output.loss = output.loss + 0.0 * features.sum()
        return output

    return [
        target.register_forward_pre_hook(take_dummy, with_kwargs=True),
        target.register_forward_hook(add_zero_vision_loss, with_kwargs=True),
    ]
