"""Every rank runs the vision tower every step, even on a text-only batch (SPEC 6.2 item 1).

Under DDP, ZeRO-3 and FSDP a rank whose batch has no image would skip the vision modules while the
others run them: DDP waits forever for gradients that never come, and ZeRO-3 and FSDP gather
parameters in call order, so the ranks would ask for different tensors. The switch set here makes the
model's image-embedding path run a zero dummy image in the real images' place
(:meth:`phi3v_train.model.modeling.Phi3VModel.embed_with_images`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from phi3v_train.model.modeling import Phi3VForCausalLM


def find_phi3v(model: nn.Module) -> Phi3VForCausalLM:
    """The Phi3VForCausalLM inside a PEFT, DDP or DeepSpeed wrapper."""
    for module in model.modules():
        if isinstance(module, Phi3VForCausalLM):
            return module
    raise TypeError(f"{type(model).__name__} holds no Phi3VForCausalLM")


def set_vision_every_forward(model: nn.Module, enabled: bool) -> None:
    """Every forward of the model inside ``model`` runs the image embedding (a dummy image when it has none)."""
    find_phi3v(model).model.vision_every_forward = enabled


@contextmanager
def vision_every_forward(model: nn.Module, enabled: bool) -> Iterator[None]:
    """``set_vision_every_forward`` for the duration of the block; the previous setting comes back after."""
    inner = find_phi3v(model).model
    previous = inner.vision_every_forward
    inner.vision_every_forward = enabled
    try:
        yield
    finally:
        inner.vision_every_forward = previous
