"""sdpa over packed rows, one record at a time: the CPU and no-flash-attn counterpart of flash-attention varlen.

transformers' sdpa path handles a packed row (``position_ids`` restarting per record, no attention mask)
with a block-diagonal causal mask over the whole row: correct, but it builds a ``[row, row]`` mask and
computes every masked block, so a row of 8k tokens costs as much as one 8k-token record.
``PACKED_SDPA`` instead runs causal sdpa (no mask, the fast kernels) on each record of the row, so the
cost is the records' own. One-token segments (the pads) attend to themselves only: their output is
their value. Calls without packed ``position_ids`` (padded batches, generation, the vision tower) go
to plain sdpa unchanged, and so do their masks.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from phi3v_train.model.modeling import Phi3VForCausalLM

PACKED_SDPA = "phi3v_packed_sdpa"


def packed_sdpa_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """``query``/``key``/``value`` [batch, heads, length, dim] -> ([batch, length, heads, dim], None)."""
    if attention_mask is not None or position_ids is None or query.shape[2] != key.shape[2] or query.shape[2] == 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    sliding_window = kwargs.get("sliding_window")
    rows = []
    for row, positions in enumerate(position_ids.expand(query.shape[0], -1)):
        restarts = (torch.diff(positions) != 1).nonzero().flatten() + 1
        bounds = [0, *restarts.tolist(), positions.shape[0]]
        parts = []
        singles_from = None  # start of the current run of one-token segments, taken in one slice
        for start, end in itertools.pairwise(bounds):
            if end - start == 1:
                singles_from = start if singles_from is None else singles_from
                continue
            if singles_from is not None:
                parts.append(value[row : row + 1, :, singles_from:start].transpose(1, 2))
                singles_from = None
            if sliding_window is not None and end - start > sliding_window:
                raise ValueError(f"a packed record of {end - start} tokens exceeds the sliding window {sliding_window}")
            span = slice(start, end)
            output, _ = sdpa_attention_forward(
                module, query[row : row + 1, :, span], key[row : row + 1, :, span], value[row : row + 1, :, span],
                None, is_causal=True, **kwargs,
            )  # fmt: skip
            parts.append(output)
        if singles_from is not None:
            parts.append(value[row : row + 1, :, singles_from:].transpose(1, 2))
        rows.append(torch.cat(parts, dim=1))
    return torch.cat(rows), None


def packed_sdpa_mask(*args, attention_mask: torch.Tensor | None = None, q_offset: int = 0, **kwargs):
    """No mask for a full-length pass without a 2D mask (causal, or packed: :func:`packed_sdpa_attention`
    keeps records apart); sdpa's mask otherwise."""
    q_length, kv_length = kwargs.get("q_length"), kwargs.get("kv_length")
    if attention_mask is None and q_offset == 0 and q_length == kv_length:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, q_offset=q_offset, **kwargs)


AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention)
AttentionMaskInterface.register(PACKED_SDPA, packed_sdpa_mask)


def use_packed_sdpa(model: nn.Module) -> None:
    """Switches the language model of the Phi3VForCausalLM inside ``model`` (PEFT/DDP wrappers allowed) to
    :data:`PACKED_SDPA`; CLIP stays on sdpa."""
    inner = next(module for module in model.modules() if isinstance(module, Phi3VForCausalLM))
    inner.set_attn_implementation({"": PACKED_SDPA, "vision_config": "sdpa"})


__all__ = ["PACKED_SDPA", "packed_sdpa_attention", "packed_sdpa_mask", "use_packed_sdpa"]
