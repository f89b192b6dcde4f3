"""Padding-free packing (``--packing``): the records of a micro-batch share rows of at most ``--max-length``.

A packed row is records laid end to end, each with ``position_ids`` restarting at 0. No attention mask
is sent: the record boundaries are read from the restarts (flash-attention 2 runs varlen over them,
eager builds a block-diagonal causal mask, and `--packing` on sdpa switches the language model to
:mod:`phi3v_train.model.packed_attention`, causal sdpa per record), so attention never crosses a record.
Rows shorter than the longest are filled with pad tokens that each restart at position 0, i.e. one-token
segments that attend to nothing else and carry label -100. A record always has at least two tokens (a
prompt and a trained answer), which is how :func:`packed_token_count` tells pads from records.

Packing changes only the layout of one micro-batch, never which records it holds or their order, so the
sampler, gradient accumulation and resume work exactly as without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pack_rows(lengths: Sequence[int], max_length: int | None) -> list[list[int]]:
    """Indices of the records in each row: first fit, in order (each record goes into the first row it
    fits in, else a new row). ``max_length`` ``None`` puts every record in one row."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index, length in enumerate(lengths):
        if max_length is not None and length > max_length:
            raise ValueError(f"item {index} has {length} tokens, more than the packing row length {max_length}")
        for row, free in enumerate(room):
            if max_length is None or length <= free:
                rows[row].append(index)
                room[row] -= length
                break
        else:
            rows.append([index])
            room.append(max_length - length if max_length is not None else 0)
    return rows


def record_position_ids(lengths: Sequence[int], width: int) -> torch.Tensor:
    """One row's ``position_ids``: ``0..n-1`` for each record, then 0 for every pad position up to ``width``."""
    positions = torch.zeros(width, dtype=torch.long)
    start = 0
    for length in lengths:
        positions[start : start + length] = torch.arange(length)
        start += length
    return positions


def packed_token_count(position_ids: torch.Tensor) -> int:
    """Real (non-pad) tokens of a packed batch: every position except one-token segments (the pads)."""
    following = torch.nn.functional.pad(position_ids[:, 1:], (0, 1), value=0)
    pads = (position_ids == 0) & (following == 0)
    return int(position_ids.numel() - pads.sum())


def batch_token_count(batch: dict[str, torch.Tensor]) -> int:
    """Real tokens of a collated batch, packed (``position_ids``) or padded (``attention_mask``)."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return packed_token_count(batch["position_ids"])


__all__ = ["batch_token_count", "pack_rows", "packed_token_count", "record_position_ids"]
