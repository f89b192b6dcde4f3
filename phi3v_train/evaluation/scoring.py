"""Label scoring: the model's log-probability of each candidate answer given the prompt.

A candidate's tokens are the answer as training tokenizes it (no BOS) up to and including
``<|end|>``, so a label that is a prefix of another (``Basketball`` / ``BasketballDunk``) is not
favoured. The prompt is run once; its KV cache is repeated over a chunk of candidates.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch

from phi3v_data.prompt import ANSWER_SUFFIX
from phi3v_train.evaluation.generation import END_TOKEN, EncodedPrompt, collate_left_padded, model_device


def candidate_token_ids(tokenizer: Any, answer: str) -> list[int]:
    """The answer's training tokens up to and including ``<|end|>``."""
    ids = tokenizer(answer + ANSWER_SUFFIX, add_special_tokens=False)["input_ids"]
    end = tokenizer.convert_tokens_to_ids(END_TOKEN)
    return ids[: ids.index(end) + 1]


@torch.no_grad()
def score_candidates(
    model: Any, prompt: EncodedPrompt, candidates: Sequence[Sequence[int]], *, pad_id: int, chunk_size: int = 16
) -> list[float]:
    """Sum of the log-probabilities of each candidate's tokens following ``prompt``."""
    device = model_device(model)
    batch = collate_left_padded([prompt], pad_id, device)
    if "pixel_values" in batch:
        batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
    prefill = model(**batch, use_cache=True)
    first = torch.log_softmax(prefill.logits[0, -1].float(), dim=-1)
    prompt_length = batch["input_ids"].shape[1]
    scores: list[float] = []
    for start in range(0, len(candidates), chunk_size):
        chunk = candidates[start : start + chunk_size]
        length = max(len(candidate) for candidate in chunk)
        input_ids = torch.full((len(chunk), length), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(chunk), prompt_length + length), dtype=torch.long)
        attention_mask[:, :prompt_length] = 1
        for row, candidate in enumerate(chunk):
            input_ids[row, : len(candidate)] = torch.as_tensor(list(candidate))
            attention_mask[row, prompt_length : prompt_length + len(candidate)] = 1
        cache = copy.deepcopy(prefill.cache)
        cache.batch_repeat_interleave(len(chunk))
        logits = model(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            cache=cache,
            use_cache=True,
        ).logits
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        for row, candidate in enumerate(chunk):
            total = first[candidate[0]].item()
            for position in range(1, len(candidate)):
                total += log_probs[row, position - 1, candidate[position]].item()
            scores.append(total)
    return scores


def softmax(log_scores: Sequence[float]) -> list[float]:
    """Probabilities over the candidates from their log-scores."""
    top = max(log_scores)
    weights = [math.exp(score - top) for score in log_scores]
    total = sum(weights)
    return [weight / total for weight in weights]
