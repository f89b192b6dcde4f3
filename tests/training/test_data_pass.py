"""One pass from file to batch: validation hands its parsed records and image sizes to the trainer."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from phi3v_train.data import records as records_module
from phi3v_train.data.prepare import prepare_data
from phi3v_train.data.records import read_records
from phi3v_train.errors import DataError
from phi3v_train.model.tiny_tokenizer import tiny_processor


@pytest.fixture
def opened(monkeypatch) -> Counter[str]:
    """Counts every ``PIL.Image.open`` by file name (header reads and decodes alike)."""
    counts: Counter[str] = Counter()
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        counts[Path(getattr(fp, "name", fp)).name] += 1
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    return counts


@pytest.fixture
def parses(monkeypatch) -> list[int]:
    """Records every JSONL line parse of the light reader."""
    calls: list[int] = []
    real_iter = records_module.iter_records

    def counting_iter(file):
        for number, record in real_iter(file):
            calls.append(number)
            yield number, record

    monkeypatch.setattr(records_module, "iter_records", counting_iter)
    return calls


def test_validation_gives_records_and_sizes_without_a_second_read(colour_data, opened, parses) -> None:
    processor = tiny_processor(num_crops=1)
    prepared = prepare_data([colour_data], [colour_data], processor)
    assert parses == []
    assert opened == Counter({"red.png": 1, "green.png": 1, "blue.png": 1})
    items = prepared.train.records
    assert [item.record.id for item in items] == ["img0", "img1", "img2", "txt"]
    assert [item.image_sizes for item in items] == [((40, 30),), ((40, 30),), ((40, 30),), ()]
    assert [(item.file, item.line, item.image_root) for item in items[:1]] == [
        (colour_data, 1, colour_data.parent / "images")
    ]
    assert [item.record.id for item in prepared.eval.records] == ["img0", "img1", "img2", "txt"]
    # 313 image tokens at one crop (SPEC section 3) plus the tiny tokenizer's text tokens.
    assert prepared.train_lengths == [339, 341, 340, 22]
    assert prepared.train_lengths == [len(prepared.train[i]["input_ids"]) for i in range(4)]


def test_without_validation_one_light_pass_gives_the_same(colour_data, opened, parses) -> None:
    processor = tiny_processor(num_crops=1)
    prepared = prepare_data([colour_data], [], processor, validate=False)
    assert parses == [1, 2, 3, 4]
    assert opened == Counter({"red.png": 1, "green.png": 1, "blue.png": 1})
    assert [item.image_sizes for item in prepared.train.records] == [((40, 30),), ((40, 30),), ((40, 30),), ()]
    assert prepared.train_lengths == [339, 341, 340, 22]


def test_light_pass_names_file_and_line(tmp_path: Path) -> None:
    turn = {"images": ["gone.png"], "user": "Q?", "assistant": "A"}
    good = {"id": "a", "source": "s", "conversations": [{"user": "Q?", "assistant": "A"}]}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "id": "b", "conversations": [turn]}) + "\n")
    with pytest.raises(DataError, match=r"d\.jsonl:3 \(id 'b'\): cannot read image .*gone\.png"):
        read_records([path])
    path.write_text(json.dumps({**good, "conversations": [{**turn, "images": ["../up.png"]}]}) + "\n")
    with pytest.raises(DataError, match=r"d\.jsonl:1 \(id 'a'\): unsafe image path '\.\./up\.png'"):
        read_records([path])
    path.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(DataError, match=r"d\.jsonl:2: not a valid record: invalid JSON"):
        read_records([path])
