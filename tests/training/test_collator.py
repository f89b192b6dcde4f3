"""Encoding and batching: exact labels with the real tokenizer, padding, masks, the length filter."""

from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image

from phi3v_train.data.collator import Phi3VDataCollator
from phi3v_train.data.dataset import ConversationDataset
from phi3v_train.data.lengths import record_length
from phi3v_train.data.prepare import prepare_data
from phi3v_train.data.records import read_records
from phi3v_train.errors import DataError
from phi3v_train.model.processing import Phi3VProcessor
from phi3v_train.model.tiny_tokenizer import tiny_processor

IMAGE_TOKENS_1_CROP = 313  # SPEC section 3: any image at num_crops=1
YES = [3869, 32007, 29871, 13, 32000]  # SPEC section 4: 'Yes<|end|>\n<|endoftext|>'


@pytest.fixture
def multi_turn(tmp_path, write_jsonl):
    """Turn 1: two images, no tags, `Q?`; turn 2: one image, `What is shown?`; both answered `Yes`."""
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a", "b", "c"):
        Image.new("RGB", (336, 336), (10, 20, 30)).save(images / f"{name}.png")
    record = {
        "id": "mt",
        "source": "test",
        "conversations": [
            {"images": ["a.png", "b.png"], "user": "Q?", "assistant": "Yes"},
            {"images": ["c.png"], "user": "What is shown?", "assistant": "Yes"},
        ],
    }
    return write_jsonl(tmp_path, [record])


def test_multi_turn_multi_image_labels_with_the_real_tokenizer(reference_dir, multi_turn):
    processor = Phi3VProcessor.from_pretrained(reference_dir, num_crops=1)
    item = ConversationDataset(read_records([multi_turn]), processor)[0]
    turn1_prompt = (
        [1, 32010, 29871, 13]
        + [-1] * IMAGE_TOKENS_1_CROP
        + [1]
        + [-2] * IMAGE_TOKENS_1_CROP
        + [1, 29871, 13, 29984, 29973, 32007, 29871, 13, 32001]
    )
    # the second turn continues the first one's chunk (no BOS), as the chat template renders it
    turn2_prompt = (
        [32010, 29871, 13]
        + [-3] * IMAGE_TOKENS_1_CROP
        + [1, 29871, 13, 5618, 338, 4318, 29973, 32007, 29871, 13, 32001]
    )
    yes_then_user = YES[:-1]
    assert item["input_ids"] == turn1_prompt + yes_then_user + turn2_prompt + YES
    masked1, masked2 = [-100] * len(turn1_prompt), [-100] * len(turn2_prompt)
    assert item["labels"] == masked1 + yes_then_user + masked2 + YES
    assert item["pixel_values"].shape == (3, 2, 3, 336, 336)
    assert item["image_sizes"].tolist() == [[336, 336]] * 3

    # the prompt part is what the processor and the chat template give for generation
    chat = [{"role": "user", "content": "<|image_1|><|image_2|>\nQ?"}]
    prompt = processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    images = [Image.open(multi_turn.parent / "images" / name) for name in ("a.png", "b.png")]
    generated = processor(prompt, images)["input_ids"][0].tolist()
    assert generated == turn1_prompt

    batch = Phi3VDataCollator()([item])
    assert batch["attention_mask"].tolist() == [[1] * len(item["input_ids"])]
    assert record_length(read_records([multi_turn])[0], processor.tokenizer, 1) == len(item["input_ids"])


def test_padding_masks_and_image_order(colour_data):
    processor = tiny_processor(num_crops=1)
    dataset = ConversationDataset(read_records([colour_data]), processor)
    text_only, red, blue = dataset[3], dataset[0], dataset[2]
    batch = Phi3VDataCollator(pad_token_id=32000)([text_only, red, blue])
    lengths = [len(item["input_ids"]) for item in (text_only, red, blue)]
    width = max(lengths)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (3, width)
    for row, (item, length) in enumerate(zip((text_only, red, blue), lengths, strict=True)):
        assert batch["input_ids"][row, :length].tolist() == item["input_ids"]
        assert batch["input_ids"][row, length:].tolist() == [32000] * (width - length)
        assert batch["labels"][row, :length].tolist() == item["labels"]
        assert batch["labels"][row, length:].tolist() == [-100] * (width - length)
        assert batch["attention_mask"][row].tolist() == [1] * length + [0] * (width - length)
        # the answer's final <|endoftext|> is a real, attended and trained token
        assert batch["input_ids"][row, length - 1] == 32000
        assert batch["attention_mask"][row, length - 1] == 1
        assert batch["labels"][row, length - 1] == 32000
    # ragged crops: each image's 2 real crops (global view, then the 1x1 grid), image after image
    assert torch.equal(batch["pixel_values"], torch.cat([red["pixel_values"], blue["pixel_values"]]).flatten(0, 1))
    assert batch["image_sizes"].tolist() == [[336, 336], [336, 336]]
    # the centre of the global view, red channel: 255 in the red image, 0 in the blue one (after normalising)
    assert batch["pixel_values"][0, 0, 168, 168] > 1.5 and batch["pixel_values"][2, 0, 168, 168] < -1.5


def test_text_only_batch_carries_no_image(colour_data):
    dataset = ConversationDataset(read_records([colour_data]), tiny_processor(num_crops=1))
    assert set(Phi3VDataCollator()([dataset[3]])) == {"input_ids", "attention_mask", "labels"}


def test_fully_masked_record_is_an_error():
    item = {"id": "bad", "input_ids": [1, 5, 6], "labels": [-100, -100, -100], "pixel_values": None}
    with pytest.raises(DataError, match=r"'bad'.*every label is masked"):
        Phi3VDataCollator()([item])


def test_over_length_records_are_skipped_and_named_never_cut(colour_data, caplog):
    processor = tiny_processor(num_crops=1)
    records = read_records([colour_data])
    lengths = [record_length(item, processor.tokenizer, 1) for item in records]
    text_length = lengths[3]
    assert text_length < IMAGE_TOKENS_1_CROP < min(lengths[:3])
    with caplog.at_level(logging.WARNING, logger="phi3v_train"):
        prepared = prepare_data([colour_data], [], processor, max_length=text_length, validate=False)
    assert [item.record.id for item, _ in prepared.skipped] == ["img0", "img1", "img2"]
    assert "3 record(s) longer than --max-length" in caplog.text and "id 'img1'" in caplog.text
    assert len(prepared.train) == 1
    assert len(prepared.train[0]["input_ids"]) == text_length == prepared.train_lengths[0]
    with pytest.raises(DataError, match=r"3 record.*img0"):
        prepare_data([colour_data], [], processor, max_length=text_length, on_overflow="error", validate=False)


def test_computed_lengths_match_the_encoded_records(colour_data):
    processor = tiny_processor(num_crops=4)
    records = read_records([colour_data])
    dataset = ConversationDataset(records, processor)
    assert [record_length(item, processor.tokenizer, 4) for item in records] == [
        len(dataset[i]["input_ids"]) for i in range(len(records))
    ]


def test_validation_errors_stop_the_run(colour_data):
    (colour_data.parent / "images" / "red.png").unlink()
    with pytest.raises(DataError, match="training refused") as error:
        prepare_data([colour_data], [], tiny_processor(num_crops=1))
    assert "train.jsonl:1" in str(error.value)
