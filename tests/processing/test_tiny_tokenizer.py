"""The tiny tokenizer behaves like the real one where the pipeline depends on it."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from transformers import PreTrainedTokenizerFast

from phi3v_train.model.processing import CHAT_TEMPLATE
from phi3v_train.model.tiny_tokenizer import build_tiny_tokenizer, tiny_processor

SPECIAL_IDS = {
    "<unk>": 0,
    "<s>": 1,
    "</s>": 2,
    "<|endoftext|>": 32000,
    "<|assistant|>": 32001,
    "<|placeholder1|>": 32002,
    "<|placeholder4|>": 32005,
    "<|system|>": 32006,
    "<|end|>": 32007,
    "<|placeholder5|>": 32008,
    "<|placeholder6|>": 32009,
    "<|user|>": 32010,
    "<|placeholder7|>": 32011,
    "<|placeholder39|>": 32043,
    "<|image|>": 32044,
}

TOKENIZER = build_tiny_tokenizer()


def test_special_token_ids_match_the_real_tokenizer() -> None:
    assert {token: TOKENIZER.convert_tokens_to_ids(token) for token in SPECIAL_IDS} == SPECIAL_IDS
    assert len(TOKENIZER) == 32045
    assert (TOKENIZER.bos_token_id, TOKENIZER.eos_token_id, TOKENIZER.pad_token_id) == (1, 32000, 32000)
    assert TOKENIZER.padding_side == "right"


def test_special_ids_agree_with_the_real_file(real_tokenizer: PreTrainedTokenizerFast) -> None:
    real = real_tokenizer
    for token_id in range(32000, 32045):
        assert TOKENIZER.convert_ids_to_tokens(token_id) == real.convert_ids_to_tokens(token_id)
    assert real.chat_template == CHAT_TEMPLATE


@pytest.mark.parametrize(
    "text",
    [
        "<|user|>\n",
        "",
        "\nWhat is shown?<|end|>\n<|assistant|>\n",
        "Yes<|end|>\n<|endoftext|>",
        "<|system|>\nBe brief.<|end|>\n<|user|>\n  two  spaces\tand a tab<|end|>\n<|assistant|>\n\nA",
    ],
)
def test_same_pieces_as_the_real_tokenizer(real_tokenizer: PreTrainedTokenizerFast, text: str) -> None:
    """Joined token strings agree: same BOS, same ``▁`` handling, same newline bytes, same swallowing."""
    real = real_tokenizer
    tiny_pieces = TOKENIZER.convert_ids_to_tokens(TOKENIZER(text)["input_ids"])
    real_pieces = real.convert_ids_to_tokens(real(text)["input_ids"])
    assert "".join(tiny_pieces) == "".join(real_pieces)


def test_bos_is_added_to_every_call_and_empty_text_is_just_bos() -> None:
    assert TOKENIZER("")["input_ids"] == [1]
    assert TOKENIZER("<|user|>\n")["input_ids"] == [1, 32010, 259, 13]
    assert TOKENIZER("ab", add_special_tokens=False)["input_ids"] == [259, 324, 325]


def test_assistant_swallows_the_newline_but_user_and_end_do_not() -> None:
    ids = TOKENIZER("<|end|>\n<|assistant|>\n", add_special_tokens=False)["input_ids"]
    assert ids == [32007, 259, 13, 32001]
    with_newline = TOKENIZER("<|assistant|>\nHi", add_special_tokens=False)["input_ids"]
    assert with_newline == TOKENIZER("<|assistant|>Hi", add_special_tokens=False)["input_ids"]
    assert TOKENIZER("<|user|>\nHi", add_special_tokens=False)["input_ids"][:3] == [32010, 259, 13]


def test_chat_template_renders_the_phi3_format() -> None:
    messages = [
        {"role": "user", "content": "<|image_1|>\nWhat?"},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "Sure?"},
    ]
    rendered = TOKENIZER.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert (
        rendered
        == "<|user|>\n<|image_1|>\nWhat?<|end|>\n<|assistant|>\nA cat.<|end|>\n<|user|>\nSure?<|end|>\n<|assistant|>\n"
    )
    no_prompt = TOKENIZER.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert no_prompt.endswith("<|assistant|>\nA cat.<|end|>\n")


@pytest.mark.parametrize(
    "text", ["Hello, World!", "  two  spaces ", "tab\there\nnewline", "naïve café 日本", "~`{}|\\"]
)
def test_round_trip_examples(text: str) -> None:
    ids = TOKENIZER(text)["input_ids"]
    assert TOKENIZER.decode(ids, skip_special_tokens=True) == text


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40))
def test_round_trip_printable_ascii(text: str) -> None:
    assume(not any(token in text for token in ("<s>", "</s>", "<unk>", "<|")))
    ids = TOKENIZER(text, add_special_tokens=False)["input_ids"]
    assert TOKENIZER.decode(ids) == text
    assert all(token_id < 32000 for token_id in ids)


def test_builds_are_deterministic() -> None:
    assert build_tiny_tokenizer().backend_tokenizer.to_str() == TOKENIZER.backend_tokenizer.to_str()


def test_tiny_processor_uses_the_num_crops() -> None:
    processor = tiny_processor(num_crops=16)
    assert processor.num_crops == 16
    assert processor.chat_template == CHAT_TEMPLATE
    assert processor.tokenizer.convert_tokens_to_ids("<|assistant|>") == 32001
    assert processor.special_image_token_id == 32044
    assert processor.num_img_tokens == 144
