"""Phi3VProcessor with the real Phi-3.5-vision tokenizer: the exact ids of SPEC sections 2 and 4."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
from PIL import Image

from phi3v_data.prompt import tagged_user_text
from phi3v_train.model.processing import Phi3VProcessor

USER = [1, 32010, 29871, 13]
QUESTION_WHAT = [1, 29871, 13, 5618, 338, 4318, 29973, 32007, 29871, 13, 32001]
QUESTION_Q = [1, 29871, 13, 29984, 29973, 32007, 29871, 13, 32001]
ANSWER_YES = [3869, 32007, 29871, 13, 32000]
ANSWER_YES_THEN_USER = [3869, 32007, 29871, 13]
USER_CONTINUED = [32010, 29871, 13]


@dataclass
class Turn:
    user: str
    assistant: str
    images: list[str] = field(default_factory=list)


def chat_prompt(processor: Phi3VProcessor, content: str) -> str:
    messages = [{"role": "user", "content": content}]
    return processor.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_chat_template_is_the_hub_template(real_processor: Phi3VProcessor) -> None:
    prompt = chat_prompt(real_processor, "<|image_1|>\nWhat is shown?")
    assert prompt == "<|user|>\n<|image_1|>\nWhat is shown?<|end|>\n<|assistant|>\n"
    assert real_processor.chat_template == real_processor.tokenizer.chat_template
    assert real_processor.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == (
        "<|user|>\nhi<|end|>\n"
    )


def test_single_image_prompt_ids(real_processor: Phi3VProcessor, make_image: Callable[..., Image.Image]) -> None:
    out = real_processor(chat_prompt(real_processor, "<|image_1|>\nWhat is shown?"), [make_image(336, 336)])
    assert out["input_ids"].tolist() == [USER + [-1] * 757 + QUESTION_WHAT]
    assert out["attention_mask"].tolist() == [[1] * (4 + 757 + 11)]
    assert out["pixel_values"].shape == (1, 5, 3, 336, 336)
    assert out["image_sizes"].tolist() == [[672, 672]]


def test_two_images_each_followed_by_bos(
    real_processor: Phi3VProcessor, make_image: Callable[..., Image.Image]
) -> None:
    images = [make_image(336, 336), make_image(1000, 200)]  # 757 and 745 tokens at num_crops 4
    out = real_processor(chat_prompt(real_processor, "<|image_1|><|image_2|>\nQ?"), images)
    assert out["input_ids"].tolist() == [USER + [-1] * 757 + [1] + [-2] * 745 + QUESTION_Q]
    assert out["image_sizes"].tolist() == [[672, 672], [336, 1344]]


def test_text_only_is_a_plain_tokenizer_call(real_processor: Phi3VProcessor) -> None:
    prompt = chat_prompt(real_processor, "Hello there")
    out = real_processor(prompt)
    assert out["input_ids"][0].tolist() == real_processor.tokenizer(prompt)["input_ids"]
    assert set(out) == {"input_ids", "attention_mask"}


def test_encode_conversation_agrees_with_the_processor(
    real_processor: Phi3VProcessor, make_image: Callable[..., Image.Image]
) -> None:
    image = make_image(336, 336)
    turn = Turn(user="What is shown?", assistant="Yes", images=["a.png"])
    processor_ids = real_processor(chat_prompt(real_processor, "<|image_1|>\nWhat is shown?"), [image])["input_ids"]
    prompt = real_processor.encode_conversation([turn], [image], for_generation=True)
    assert prompt.input_ids == processor_ids[0].tolist()
    assert prompt.labels == [-100] * len(prompt.input_ids)
    full = real_processor.encode_conversation([turn], [image])
    n = len(prompt.input_ids)
    assert full.input_ids == prompt.input_ids + ANSWER_YES
    assert full.labels == [-100] * n + ANSWER_YES
    assert full.num_image_tokens == [757]
    assert full.image_sizes.tolist() == [[672, 672]]
    assert torch.equal(full.pixel_values, real_processor.image_processor([image])["pixel_values"])


def test_multi_turn_conversation_numbers_images_globally(
    real_processor: Phi3VProcessor, make_image: Callable[..., Image.Image]
) -> None:
    turns = [
        Turn(user="What is shown?", assistant="Yes", images=["a.png"]),
        Turn(user="<|image_2|>\nQ?", assistant="Yes", images=["b.png"]),
    ]
    images = [make_image(336, 336), make_image(200, 1000)]  # 757 and 781 tokens
    encoded = real_processor.encode_conversation(turns, images)
    first = USER + [-1] * 757 + QUESTION_WHAT + ANSWER_YES_THEN_USER
    second = USER_CONTINUED + [-2] * 781 + QUESTION_Q + ANSWER_YES
    assert encoded.input_ids == first + second
    masked = [-100] * (len(USER) + 757 + len(QUESTION_WHAT))
    masked_2 = [-100] * (len(USER_CONTINUED) + 781 + len(QUESTION_Q))
    assert encoded.labels == masked + ANSWER_YES_THEN_USER + masked_2 + ANSWER_YES
    assert encoded.num_image_tokens == [757, 781]
    generation = real_processor.encode_conversation(turns, images, for_generation=True)
    assert generation.input_ids == first + second[: -len(ANSWER_YES)]


def _messages(turns: list[Turn]) -> list[dict[str, str]]:
    messages = []
    number = 1
    for turn in turns[:-1]:
        messages.append({"role": "user", "content": tagged_user_text(turn.user, number, len(turn.images))})
        messages.append({"role": "assistant", "content": turn.assistant})
        number += len(turn.images)
    last = turns[-1]
    return [*messages, {"role": "user", "content": tagged_user_text(last.user, number, len(last.images))}]


GOLDEN_CONVERSATIONS = {
    "one turn, one image": [Turn("What is shown?", "A cat.", ["a"])],
    "one turn, text only": [Turn("Say hi", "Hi!")],
    "two turns, two images": [Turn("What is shown?", "Yes", ["a"]), Turn("<|image_2|>\nQ?", "No.", ["b"])],
    "three turns, images in the first and last": [
        Turn("Compare", " Left is larger.", ["a", "b"]),
        Turn("Why?", "\nBecause of the size."),
        Turn("And this one?", "Same.", ["c"]),
    ],
    "two turns, no images": [Turn("Hi", "Hello"), Turn("Bye", "  Bye!")],
}


@pytest.mark.parametrize("name", list(GOLDEN_CONVERSATIONS))
def test_training_tokens_are_the_served_prompt_then_the_final_answer(
    real_processor: Phi3VProcessor, make_image: Callable[..., Image.Image], name: str
) -> None:
    turns = GOLDEN_CONVERSATIONS[name]
    images = [make_image(320 + 16 * i, 240, seed=i) for i in range(sum(len(t.images) for t in turns))]
    served_prompt = real_processor.apply_chat_template(_messages(turns), add_generation_prompt=True)
    served = real_processor(served_prompt, images or None)["input_ids"][0].tolist()
    final_answer = real_processor.tokenizer(turns[-1].assistant + "<|end|>\n<|endoftext|>", add_special_tokens=False)
    trained = real_processor.encode_conversation(turns, images)
    assert trained.input_ids == served + final_answer["input_ids"]
    assert real_processor.encode_conversation(turns, images, for_generation=True).input_ids == served
    trained_positions = [i for i, label in enumerate(trained.labels) if label != -100]
    assert [trained.input_ids[i] for i in trained_positions] == [trained.labels[i] for i in trained_positions]
    assert trained.labels[-len(final_answer["input_ids"]) :] == final_answer["input_ids"]


def test_single_turn_keeps_the_recipe_tokens(
    real_processor: Phi3VProcessor, make_image: Callable[..., Image.Image]
) -> None:
    """The recipe: ``<s>`` + prompt through the processor, then answer + ``<|end|>\\n<|endoftext|>`` without BOS."""
    image = make_image(640, 480)
    encoded = real_processor.encode_conversation([Turn("What is shown?", "Yes", ["a"])], [image])
    assert encoded.input_ids == USER + [-1] * 757 + QUESTION_WHAT + ANSWER_YES
    assert encoded.labels == [-100] * (len(USER) + 757 + len(QUESTION_WHAT)) + ANSWER_YES


def test_from_pretrained_num_crops_override(real_processor: Phi3VProcessor, reference_dir) -> None:
    processor = Phi3VProcessor.from_pretrained(reference_dir, num_crops=16)
    assert processor.num_crops == 16
    assert real_processor.num_crops == 4
    out = processor(chat_prompt(processor, "<|image_1|>\nWhat is shown?"), [Image.new("RGB", (336, 336))])
    assert out["input_ids"][0].tolist().count(-1) == 2509
    assert out["pixel_values"].shape == (1, 17, 3, 336, 336)


def test_decode_passthrough(real_processor: Phi3VProcessor) -> None:
    assert real_processor.batch_decode([ANSWER_YES], skip_special_tokens=True) == ["Yes \n"]
    assert real_processor.decode([3869]) == "Yes"


def test_phi3_vision_128k_folder_defaults_to_16_crops(reference_dir_128k) -> None:
    processor = Phi3VProcessor.from_pretrained(reference_dir_128k)
    assert processor.num_crops == 16
    assert processor("<|user|>\nQ?<|end|>\n<|assistant|>\n")["input_ids"].tolist() == [
        [1, 32010, 29871, 13, 29984, 29973, 32007, 29871, 13, 32001]
    ]
