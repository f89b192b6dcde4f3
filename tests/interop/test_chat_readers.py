"""The llava and sharegpt readers on files in the published formats (LLaVA mix665k, LLaMA-Factory mllm_demo)."""

from __future__ import annotations

import json
from pathlib import Path

from interop_files import png, read_jsonl

from phi3v_data.converters import LlavaConverter, ShareGPTConverter, run_conversion
from phi3v_data.converters.images import content_name

RED, BLUE = png("red"), png("blue")
RED_PATH, BLUE_PATH = f"train/{content_name(RED)}.png", f"train/{content_name(BLUE)}.png"


def _images(folder: Path) -> None:
    (folder / "coco").mkdir(parents=True)
    (folder / "coco" / "1.jpg").write_bytes(RED)  # a PNG named .jpg: the content decides the extension
    (folder / "coco" / "2.png").write_bytes(BLUE)


def test_llava_json_array(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    _images(src / "imgs")
    items = [
        {
            "id": "000000033471",
            "image": "coco/1.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat are the colors of the bus in the image?"},
                {"from": "gpt", "value": "The bus in the image is white and red."},
                {"from": "human", "value": "What feature can be seen on the back of the bus?"},
                {"from": "gpt", "value": "The back of the bus features an advertisement."},
            ],
        },
        {
            "id": "i6IyJda_0",
            "model": "",
            "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}],
        },
        {
            "id": "pair",
            "image": ["coco/1.jpg", "coco/2.png"],
            "conversations": [
                {"from": "human", "value": "<image> left, <image> right: same color?"},
                {"from": "gpt", "value": "No"},
            ],
        },
        {
            "id": "bad",
            "image": "coco/1.jpg",
            "conversations": [{"from": "human", "value": "No tag"}, {"from": "gpt", "value": "x"}],
        },
        {"id": "pair", "conversations": [{"from": "gpt", "value": "starts with gpt"}, {"from": "human", "value": "?"}]},
    ]
    (src / "mix.json").write_text(json.dumps(items), encoding="utf-8")
    out = tmp_path / "out"
    summary = run_conversion(
        LlavaConverter(src=src / "mix.json", image_folder=src / "imgs"), out, max_skip_fraction=1.0
    )
    assert read_jsonl(out / "llava_train.jsonl") == [
        {
            "id": "000000033471",
            "source": "llava",
            "conversations": [
                {
                    "images": [RED_PATH],
                    "user": "<|image_1|>\nWhat are the colors of the bus in the image?",
                    "assistant": "The bus in the image is white and red.",
                },
                {
                    "images": [],
                    "user": "What feature can be seen on the back of the bus?",
                    "assistant": "The back of the bus features an advertisement.",
                },
            ],
            "metadata": {"file": "mix.json", "item": "item 0"},
        },
        {
            "id": "i6IyJda_0",
            "source": "llava",
            "conversations": [{"images": [], "user": "Hi", "assistant": "Hello"}],
            "metadata": {"file": "mix.json", "item": "item 1"},
        },
        {
            "id": "pair#1",
            "source": "llava",
            "conversations": [
                {
                    "images": [RED_PATH, BLUE_PATH],
                    "user": "<|image_1|> left, <|image_2|> right: same color?",
                    "assistant": "No",
                }
            ],
            "metadata": {"file": "mix.json", "item": "item 2"},
        },
    ]
    assert (out / "images" / RED_PATH).read_bytes() == RED
    assert summary.skipped == [
        {"item": "mix.json item 3", "reason": "item 3: 0 <image> placeholder(s) but 1 image(s)"},
        {
            "item": "mix.json item 4",
            "reason": "item 4: message 1 is from 'assistant' where 'user' was expected "
            "(messages must alternate user, assistant, starting with user)",
        },
    ]


def test_sharegpt_jsonl_with_system_and_mismatch(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    _images(src)
    lines = [
        {
            "messages": [
                {"role": "system", "content": "You are a sports commentator."},
                {"role": "user", "content": "<image>Who are they?"},
                {"role": "assistant", "content": "They're Kane and Gretzka from Bayern Munich."},
                {"role": "user", "content": "What are they doing?"},
                {"role": "assistant", "content": "They are celebrating on the soccer field."},
            ],
            "images": ["coco/1.jpg"],
        },
        {
            "messages": [
                {"role": "user", "content": "<image><image>Compare."},
                {"role": "assistant", "content": "Same."},
            ],
            "images": ["coco/1.jpg"],
        },
        {"messages": [{"role": "user", "content": "Text only"}, {"role": "assistant", "content": "Fine"}]},
    ]
    (src / "demo.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + "{broken\n", encoding="utf-8")
    out = tmp_path / "out"
    summary = run_conversion(ShareGPTConverter(src=src / "demo.jsonl", source="demo"), out, max_skip_fraction=1.0)
    assert read_jsonl(out / "demo_train.jsonl") == [
        {
            "id": "train-0000000000",
            "source": "demo",
            "conversations": [
                {
                    "images": [RED_PATH],
                    "user": "<|image_1|>Who are they?",
                    "assistant": "They're Kane and Gretzka from Bayern Munich.",
                },
                {
                    "images": [],
                    "user": "What are they doing?",
                    "assistant": "They are celebrating on the soccer field.",
                },
            ],
            "metadata": {"file": "demo.jsonl", "item": "line 1", "system": "You are a sports commentator."},
        },
        {
            "id": "train-0000000001",
            "source": "demo",
            "conversations": [{"images": [], "user": "Text only", "assistant": "Fine"}],
            "metadata": {"file": "demo.jsonl", "item": "line 3"},
        },
    ]
    assert [s["reason"] for s in summary.skipped] == [
        "line 2: 2 <image> placeholder(s) but 1 image(s)",
        "line 4: invalid JSON (Expecting property name enclosed in double quotes at column 2)",
    ]
