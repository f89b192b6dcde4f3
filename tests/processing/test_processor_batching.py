"""Phi3VProcessor over the tiny tokenizer: tag validation, padded batches, save/load round trip."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from PIL import Image

from phi3v_train.errors import ImageTokenMismatchError
from phi3v_train.model.processing import CHAT_TEMPLATE, Phi3VProcessor

PAD = 32000


@dataclass
class Turn:
    user: str
    assistant: str
    images: list[str] = field(default_factory=list)


@pytest.mark.parametrize(
    ("prompt", "n_images", "message"),
    [
        ("<|user|>\nWhat?<|end|>\n", 1, "the prompt has 0 image tag(s) but 1 image(s) were given"),
        ("<|image_1|><|image_2|>\nWhat?", 1, "the prompt has 2 image tag(s) but 1 image(s) were given"),
        ("<|image_1|>\nWhat?", 0, "the prompt has 1 image tag(s) but 0 image(s) were given"),
        ("<|image_2|><|image_1|>\nWhat?", 2, "has tags <|image_2|>, <|image_1|>; expected <|image_1|>, <|image_2|>"),
        ("<|image_1|><|image_1|>\nWhat?", 2, "has tags <|image_1|>, <|image_1|>; expected <|image_1|>, <|image_2|>"),
        ("<|image_2|>\nWhat?", 1, "has tags <|image_2|>; expected <|image_1|>"),
    ],
)
def test_tag_mismatches_are_named(
    tiny: Phi3VProcessor, make_image: Callable[..., Image.Image], prompt: str, n_images: int, message: str
) -> None:
    with pytest.raises(ImageTokenMismatchError) as caught:
        tiny(prompt, [make_image(32, 32, seed=i) for i in range(n_images)])
    assert message in str(caught.value)


def test_batch_mismatch_names_the_prompt(tiny: Phi3VProcessor, make_image: Callable[..., Image.Image]) -> None:
    with pytest.raises(ImageTokenMismatchError, match=r"prompt 2 has tags <\|image_2\|>; expected <\|image_1\|>"):
        tiny(["<|image_1|>a", "<|image_2|>b"], [make_image(32, 32), make_image(32, 32)])
    with pytest.raises(ImageTokenMismatchError, match="the 2 prompts have 2 image tag"):
        tiny(["<|image_1|>a", "<|image_1|>b"], [make_image(32, 32)])


def test_batch_is_padded_right_by_default_and_left_on_request(
    tiny: Phi3VProcessor, make_image: Callable[..., Image.Image]
) -> None:
    prompts = ["<|image_1|>\nA long question?", "no image", "<|image_1|><|image_2|>b"]
    images = [make_image(320, 240, seed=1), make_image(1000, 200, seed=2), make_image(64, 64, seed=3)]
    singles = [
        tiny(prompts[0], images[:1]),
        tiny(prompts[1]),
        tiny(prompts[2], images[1:]),
    ]
    rows = [s["input_ids"][0].tolist() for s in singles]
    assert [row.count(-1) for row in rows] == [757, 0, 745]
    assert rows[2].count(-2) == 757
    length = max(len(r) for r in rows)

    right = tiny(prompts, images)
    assert right["input_ids"].tolist() == [r + [PAD] * (length - len(r)) for r in rows]
    assert right["attention_mask"].tolist() == [[1] * len(r) + [0] * (length - len(r)) for r in rows]
    expected_pixels = torch.cat([singles[0]["pixel_values"], singles[2]["pixel_values"]])
    assert torch.equal(right["pixel_values"], expected_pixels)
    assert right["image_sizes"].tolist() == [[672, 672], [336, 1344], [672, 672]]

    left = tiny(prompts, images, padding_side="left")
    assert left["input_ids"].tolist() == [[PAD] * (length - len(r)) + r for r in rows]
    assert left["attention_mask"].tolist() == [[0] * (length - len(r)) + [1] * len(r) for r in rows]

    as_lists = tiny(prompts, images, return_tensors=None)
    assert as_lists["input_ids"] == right["input_ids"].tolist()


def test_invalid_arguments(tiny: Phi3VProcessor) -> None:
    with pytest.raises(ValueError, match="padding_side must be"):
        tiny(["a", "b"], padding_side="middle")
    with pytest.raises(ValueError, match="non-empty list"):
        tiny([])
    with pytest.raises(ValueError, match="return_tensors must be 'pt', 'np' or None, got 'jax'"):
        tiny("a", return_tensors="jax")
    with pytest.raises(ValueError, match="padding='max_length' needs max_length"):
        tiny("a", padding="max_length")


def test_encode_conversation_checks_tags_and_images(
    tiny: Phi3VProcessor, make_image: Callable[..., Image.Image]
) -> None:
    turns = [Turn("Q?", "A", ["a.png"]), Turn("<|image_1|> again?", "B", ["b.png"])]
    with pytest.raises(ImageTokenMismatchError, match=r"turn 2: user text has tags <\|image_1\|>"):
        tiny.encode_conversation(turns, [make_image(32, 32), make_image(32, 32)])
    with pytest.raises(ImageTokenMismatchError, match=r"lists 1 image\(s\) but 2 image\(s\) were given"):
        tiny.encode_conversation(turns[:1], [make_image(32, 32), make_image(32, 32)])


def test_encode_conversation_needs_a_turn(tiny: Phi3VProcessor) -> None:
    with pytest.raises(ValueError, match="at least one turn"):
        tiny.encode_conversation([], [])


def test_token_counts_from_sizes_alone(tiny: Phi3VProcessor) -> None:
    images = [Image.new("RGB", (1000, 200)), Image.new("RGB", (200, 1000)), Image.new("RGB", (336, 336))]
    assert tiny.calc_num_image_tokens(images) == [745, 781, 757]
    assert tiny.calc_num_image_tokens_from_image_size(1000, 200) == 745
    tiny.image_processor.num_crops = 16
    assert tiny.calc_num_image_tokens(images[0]) == [2485]


def test_encode_conversation_text_only(tiny: Phi3VProcessor) -> None:
    encoded = tiny.encode_conversation([Turn("Hi", "Yo")], [])
    prompt_ids = tiny.tokenizer("<|user|>\nHi<|end|>\n<|assistant|>\n")["input_ids"]
    answer_ids = tiny.tokenizer("Yo<|end|>\n<|endoftext|>", add_special_tokens=False)["input_ids"]
    assert encoded.input_ids == prompt_ids + answer_ids
    assert encoded.labels == [-100] * len(prompt_ids) + answer_ids
    assert answer_ids[-4:] == [32007, 259, 13, 32000]
    assert encoded.pixel_values is None and encoded.image_sizes is None and encoded.num_image_tokens == []


def test_save_and_load_keeps_num_crops_and_template(
    tiny: Phi3VProcessor, tmp_path: Path, make_image: Callable[..., Image.Image]
) -> None:
    tiny.image_processor.num_crops = 16
    tiny.save_pretrained(tmp_path)
    tokenizer_config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert tokenizer_config["chat_template"] == CHAT_TEMPLATE
    assert "auto_map" not in tokenizer_config
    assert (tmp_path / "chat_template.jinja").read_text() == CHAT_TEMPLATE
    assert json.loads((tmp_path / "preprocessor_config.json").read_text())["num_crops"] == 16
    assert json.loads((tmp_path / "processor_config.json").read_text()) == {
        "num_crops": 16,
        "processor_class": "Phi3VProcessor",
    }

    loaded = Phi3VProcessor.from_pretrained(tmp_path)
    assert loaded.num_crops == 16
    assert loaded.chat_template == CHAT_TEMPLATE
    assert loaded.tokenizer.chat_template == CHAT_TEMPLATE
    prompt = "<|user|>\n<|image_1|>\nWhat?<|end|>\n<|assistant|>\n"
    image = make_image(320, 240)
    assert torch.equal(loaded(prompt, [image])["input_ids"], tiny(prompt, [image])["input_ids"])
    assert loaded(prompt, [image])["input_ids"][0].tolist().count(-1) == 1921
    assert Phi3VProcessor.from_pretrained(tmp_path, num_crops=4).num_crops == 4


def test_real_folder_round_trip(reference_dir: Path, tmp_path: Path) -> None:
    original = Phi3VProcessor.from_pretrained(reference_dir, num_crops=16)
    original.save_pretrained(tmp_path)
    loaded = Phi3VProcessor.from_pretrained(tmp_path)
    assert loaded.num_crops == 16
    assert loaded.chat_template == original.chat_template
    assert "auto_map" not in json.loads((tmp_path / "tokenizer_config.json").read_text())
    text = "<|user|>\nWhat is shown?<|end|>\n<|assistant|>\nYes<|end|>\n<|endoftext|>"
    assert loaded.tokenizer(text)["input_ids"] == original.tokenizer(text)["input_ids"]


def test_save_is_byte_identical_across_runs(tiny: Phi3VProcessor, tmp_path: Path) -> None:
    tiny.save_pretrained(tmp_path / "a")
    tiny_again = Phi3VProcessor.from_pretrained(tmp_path / "a")
    tiny_again.save_pretrained(tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
