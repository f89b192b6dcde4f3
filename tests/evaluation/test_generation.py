"""Batched generation equals one-by-one generation; stop tokens and left padding."""

from __future__ import annotations

import copy

import pytest
import torch

from phi3v_train.evaluation.generation import (
    SpecialIds,
    collate_left_padded,
    cut_at_stop,
    generate_answers,
    generate_tokens,
)
from phi3v_train.evaluation.predict import PromptTurn


def encode(processor, text: str, images: list) -> object:
    turn = PromptTurn(user=text, images=tuple(str(n) for n in range(len(images))))
    return processor.encode_conversation([turn], images, for_generation=True)


def mixed_prompts(processor, solid) -> list:
    return [
        encode(processor, "Hi", []),
        encode(processor, "What is shown in the picture here?", [solid("red")]),
        encode(processor, "Two?", [solid("blue", (30, 50)), solid("green", (64, 64))]),
        encode(processor, "A much longer question without any image at all, really long", []),
        encode(processor, "<|image_1|> tagged inline, then text", [solid("yellow", (20, 80))]),
    ]


def test_special_ids_of_the_tiny_tokenizer(processor) -> None:
    assert SpecialIds.from_tokenizer(processor.tokenizer) == SpecialIds(stop=(32007, 32000), pad=32000)


def test_cut_at_stop() -> None:
    assert cut_at_stop([5, 6, 32007, 7], (32007, 32000)) == [5, 6]
    assert cut_at_stop([5, 32000, 32000], (32007, 32000)) == [5]
    assert cut_at_stop([32007], (32007, 32000)) == []
    assert cut_at_stop([5, 6], (32007, 32000)) == [5, 6]


def test_collate_pads_on_the_left_and_concatenates_images(processor, solid) -> None:
    prompts = mixed_prompts(processor, solid)[:3]
    batch = collate_left_padded(prompts, 32000, torch.device("cpu"))
    lengths = [len(p.input_ids) for p in prompts]
    width = max(lengths)
    assert batch["input_ids"].shape == (3, width)
    for row, prompt in enumerate(prompts):
        pad = width - len(prompt.input_ids)
        assert batch["input_ids"][row, :pad].tolist() == [32000] * pad
        assert batch["input_ids"][row, pad:].tolist() == list(prompt.input_ids)
        assert batch["attention_mask"][row].tolist() == [0] * pad + [1] * len(prompt.input_ids)
    assert batch["pixel_values"].shape[0] == 3
    assert torch.equal(batch["pixel_values"][0], prompts[1].pixel_values[0])
    assert torch.equal(batch["pixel_values"][2], prompts[2].pixel_values[1])
    assert batch["image_sizes"].tolist() == prompts[1].image_sizes.tolist() + prompts[2].image_sizes.tolist()


def test_batched_generation_equals_one_by_one(tiny_model, processor, solid) -> None:
    prompts = mixed_prompts(processor, solid)
    assert len({len(p.input_ids) for p in prompts}) == len(prompts)
    special = SpecialIds.from_tokenizer(processor.tokenizer)
    batched = generate_tokens(tiny_model, prompts, special, max_new_tokens=5)
    single = [generate_tokens(tiny_model, [prompt], special, max_new_tokens=5)[0] for prompt in prompts]
    assert batched == single
    assert all(len(tokens) == 5 for tokens in single)  # the random model never emits a stop token this early
    assert len({tuple(tokens) for tokens in single}) == len(single)


def test_generate_answers_keeps_prompt_order_across_batches(tiny_model, processor, solid) -> None:
    prompts = mixed_prompts(processor, solid)
    one_batch = generate_answers(tiny_model, processor.tokenizer, prompts, batch_size=8, max_new_tokens=3)
    done: list[int] = []
    pairs = generate_answers(
        tiny_model, processor.tokenizer, prompts, batch_size=2, max_new_tokens=3, on_batch=done.append
    )
    singles = [generate_answers(tiny_model, processor.tokenizer, [p], max_new_tokens=3)[0] for p in prompts]
    assert one_batch == pairs == singles
    assert done == [2, 2, 1]


@pytest.mark.parametrize("stop_id", [32007, 32000])
def test_generation_stops_at_either_stop_token(tiny_model, processor, solid, stop_id: int) -> None:
    """A bias that makes the stop token win at every step ends every answer before its first token."""
    model = copy.deepcopy(tiny_model)
    head = torch.nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[stop_id] = 1e4
    model.lm_head = head
    prompts = mixed_prompts(processor, solid)[:3]
    special = SpecialIds.from_tokenizer(processor.tokenizer)
    assert generate_tokens(model, prompts, special, max_new_tokens=4) == [[], [], []]
    assert generate_answers(model, processor.tokenizer, prompts, max_new_tokens=4) == ["", "", ""]
