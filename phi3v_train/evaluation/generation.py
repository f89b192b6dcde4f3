"""Batched greedy generation: left-padded prompts, KV cache, stop at ``<|end|>`` or ``<|endoftext|>``.

Prompts are the processor's ``encode_conversation(..., for_generation=True)`` output, so generation
sees exactly the tokens training saw before an answer.

Under ZeRO-3 or FSDP every forward gathers weights from all ranks, so all ranks make the same calls:
each rank gets a shard of the same size (:func:`equal_shard`), ``generate`` runs with ``synced_gpus``
(finished ranks keep stepping until the last one is done), and every forward runs the image embedding,
with a dummy image where a batch or a decoding step has none.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch

END_TOKEN = "<|end|>"
END_OF_TEXT_TOKEN = "<|endoftext|>"

Item = TypeVar("Item")


class EncodedPrompt(Protocol):
    input_ids: Sequence[int]
    pixel_values: torch.Tensor | None
    image_sizes: torch.Tensor | None


@dataclass(frozen=True)
class SpecialIds:
    """Token ids generation needs: the stop ids and the padding id."""

    stop: tuple[int, ...]
    pad: int

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> SpecialIds:
        end, end_of_text = tokenizer.convert_tokens_to_ids([END_TOKEN, END_OF_TEXT_TOKEN])
        pad = tokenizer.pad_token_id
        return cls(stop=(end, end_of_text), pad=end_of_text if pad is None else pad)


def _has_images(prompt: EncodedPrompt) -> bool:
    return prompt.pixel_values is not None and prompt.pixel_values.shape[0] > 0


def collate_left_padded(prompts: Sequence[EncodedPrompt], pad_id: int, device: torch.device) -> dict[str, Any]:
    """Model inputs for a batch of prompts, padded on the left; images concatenated in prompt order."""
    length = max(len(prompt.input_ids) for prompt in prompts)
    input_ids = torch.full((len(prompts), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids = torch.as_tensor(list(prompt.input_ids), dtype=torch.long)
        input_ids[row, length - len(ids) :] = ids
        attention_mask[row, length - len(ids) :] = 1
    batch: dict[str, Any] = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
    with_images = [prompt for prompt in prompts if _has_images(prompt)]
    if with_images:
        batch["pixel_values"] = torch.cat([prompt.pixel_values for prompt in with_images]).to(device)
        batch["image_sizes"] = torch.cat([torch.as_tensor(prompt.image_sizes) for prompt in with_images]).to(device)
    return batch


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def cut_at_stop(tokens: Sequence[int], stop_ids: Sequence[int]) -> list[int]:
    """The tokens before the first stop id."""
    kept: list[int] = []
    for token in tokens:
        if token in stop_ids:
            break
        kept.append(token)
    return kept


def equal_shard(items: Sequence[Item], rank: int, world_size: int) -> tuple[list[Item], int]:
    """Rank ``rank``'s strided share of ``items``, padded with repeats to ``ceil(len / world_size)`` items,
    and how many trailing items are padding (their results are dropped before the gather)."""
    own = list(items[rank::world_size])
    size = -(-len(items) // world_size)
    fill = own or list(items[:1])
    padding = size - len(own)
    return own + [fill[i % len(fill)] for i in range(padding)], padding


def synced_generation(model: Any) -> bool:
    """True when the weights are sharded over several ranks (ZeRO-3, FSDP): generation must run in step."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return False
    if torch.distributed.get_world_size() == 1:
        return False
    from transformers.distributed.fsdp import is_fsdp_managed_module
    from transformers.integrations import is_deepspeed_zero3_enabled

    return is_deepspeed_zero3_enabled() or is_fsdp_managed_module(model)


def _vision_every_forward(model: Any, enabled: bool) -> contextlib.AbstractContextManager:
    """The model's vision switch (a dummy image in every forward without one) for ``generate``."""
    from phi3v_train.training.vision_guard import find_phi3v, vision_every_forward

    try:
        find_phi3v(model)
    except TypeError:  # not a Phi-3-vision model (a stand-in in tests): it has no switch
        return contextlib.nullcontext()
    return vision_every_forward(model, enabled)


@torch.no_grad()
def generate_tokens(
    model: Any, prompts: Sequence[EncodedPrompt], special: SpecialIds, *, max_new_tokens: int = 64
) -> list[list[int]]:
    """Greedy answer tokens of one batch of prompts, each cut before its first stop token."""
    batch = collate_left_padded(prompts, special.pad, model_device(model))
    pixel_values = batch.get("pixel_values")
    if pixel_values is not None:
        batch["pixel_values"] = pixel_values.to(model.dtype)
    synced = synced_generation(model)
    with _vision_every_forward(model, synced):
        output = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=list(special.stop),
            pad_token_id=special.pad,
            use_cache=True,
            synced_gpus=synced,
        )
    new_tokens = output[:, batch["input_ids"].shape[1] :].tolist()
    return [cut_at_stop(tokens, special.stop) for tokens in new_tokens]


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[EncodedPrompt],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """Decoded greedy answers, in the order of ``prompts``.

    Prompts are batched by length to keep padding small; greedy decoding does not depend on the
    batch a prompt lands in. Decoding skips special tokens and keeps tokenization spaces, as the
    recipe does. ``on_batch`` is called with the number of prompts finished after each batch.
    """
    special = SpecialIds.from_tokenizer(tokenizer)
    order = sorted(range(len(prompts)), key=lambda index: len(prompts[index].input_ids))
    answers = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        tokens = generate_tokens(model, [prompts[i] for i in chunk], special, max_new_tokens=max_new_tokens)
        for index, answer_tokens in zip(chunk, tokens, strict=True):
            answers[index] = tokenizer.decode(
                answer_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        if on_batch is not None:
            on_batch(len(chunk))
    return answers
