"""TRL's vision-language collator drives the processor the way TRL's SFT trainer does (skipped without TRL)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from phi3v_data.image_tokens import num_image_tokens
from phi3v_train.model.tiny_tokenizer import tiny_processor

trl_sft = pytest.importorskip("trl.trainer.sft_trainer", reason="TRL is not installed")
prepare_multimodal_messages = pytest.importorskip("trl.data_utils").prepare_multimodal_messages

NUM_CROPS = 4


def _examples() -> list[dict]:
    return [
        {
            "images": [Image.new("RGB", (640, 480), "red")],
            "messages": [{"role": "user", "content": "Colour?"}, {"role": "assistant", "content": "Red."}],
        },
        {
            "images": [Image.new("RGB", (200, 1000), "blue"), Image.new("RGB", (320, 240), "green")],
            "messages": [{"role": "user", "content": "Colours?"}, {"role": "assistant", "content": "Blue, green."}],
        },
    ]


def test_trl_collator_gets_pixel_values_and_image_runs() -> None:
    processor = tiny_processor(num_crops=NUM_CROPS)
    batch = trl_sft.DataCollatorForVisionLanguageModeling(processor)(_examples())
    sizes = [(640, 480), (200, 1000), (320, 240)]
    counts = [num_image_tokens(w, h, NUM_CROPS) for w, h in sizes]
    assert batch["pixel_values"].shape == (3, 1 + NUM_CROPS, 3, 336, 336)
    # The same images and rendered prompts through the processor's own call give the same tensors.
    direct = processor(
        text=[
            processor.apply_chat_template(prepare_multimodal_messages(e["messages"], e["images"])) for e in _examples()
        ],
        images=[e["images"] for e in _examples()],
        padding_side="right",
        add_special_tokens=False,
    )
    assert torch.equal(batch["pixel_values"], direct["pixel_values"])
    assert torch.equal(batch["image_sizes"], direct["image_sizes"])
    assert torch.equal(batch["input_ids"], direct["input_ids"])
    ids = batch["input_ids"]
    assert [int((ids[0] == -1).sum())] == counts[:1]
    assert [int((ids[1] == -1).sum()), int((ids[1] == -2).sum())] == counts[1:]
    # TRL copies the ids into the labels and masks padding; the padded row is the shorter one.
    pad = processor.tokenizer.pad_token_id
    assert torch.equal(batch["labels"] == -100, batch["attention_mask"] == 0)
    assert int((ids[0] == pad).sum()) == int((batch["attention_mask"][0] == 0).sum()) > 0
    first = _examples()[0]
    rendered = processor.apply_chat_template(prepare_multimodal_messages(first["messages"], first["images"]))
    assert rendered == "<|user|>\n<|image_1|>\nColour?<|end|>\n<|assistant|>\nRed.<|end|>\n"
