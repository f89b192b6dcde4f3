"""Hateful Memes (official splits, unlabeled memes left out) and NLVR2 (left then right image)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from convert_helpers import assert_valid, pixels, png, read_jsonl, write_parquet

from phi3v_data.converters import HatefulMemesConverter, Nlvr2Converter, run_conversion
from phi3v_data.errors import SourceLayoutError


def test_hateful_memes_official_layout(sample_src, tmp_path: Path) -> None:
    src = Path(shutil.copytree(sample_src("hateful-memes"), tmp_path / "raw"))
    (src / "img" / "13764.png").unlink()
    summary = run_conversion(HatefulMemesConverter(src), tmp_path / "out")

    assert summary.records == {"train": 5, "dev_seen": 2, "dev_unseen": 2, "test_unseen": 2}
    assert summary.excluded == {"unlabeled": 2}
    assert summary.skipped == [{"item": "train.jsonl line 4", "reason": f"missing image {src / 'img' / '13764.png'}"}]
    assert not (tmp_path / "out" / "hateful_memes_test_seen.jsonl").exists()
    train = read_jsonl(tmp_path / "out" / "hateful_memes_train.jsonl")
    assert [(r["id"], r["conversations"][0]["assistant"], r["metadata"]["label"]) for r in train] == [
        ("10423", "no", 0),
        ("11257", "yes", 1),
        ("12098", "no", 0),
        ("14512", "no", 0),
        ("15830", "yes", 1),
    ]
    assert train[1]["conversations"][0] == {
        "images": ["train/11257.png"],
        "user": "Meme text: they all look the same to me\nIs this meme hateful? Answer yes or no.",
        "assistant": "yes",
    }
    assert (tmp_path / "out" / "images" / "train" / "11257.png").read_bytes() == (
        src / "img" / "11257.png"
    ).read_bytes()
    assert_valid(*summary.files)


def test_hateful_memes_cauldron_layout(tmp_path: Path) -> None:
    rows = [
        {
            "images": [{"bytes": png((1, 2, 3)), "path": None}],
            "texts": [{"user": "A meme says: hello. Is it hateful?", "assistant": "No.", "source": "hm"}],
        },
        {
            "images": [{"bytes": png((9, 9, 9)), "path": None}],
            "texts": [{"user": "A meme says: go away. Is it hateful?", "assistant": "Yes", "source": "hm"}],
        },
    ]
    write_parquet(tmp_path / "src" / "train-00000-of-00001.parquet", rows)
    summary = run_conversion(HatefulMemesConverter(tmp_path / "src"), tmp_path / "out")
    records = read_jsonl(tmp_path / "out" / "hateful_memes_train.jsonl")
    assert [
        (r["conversations"][0]["user"], r["conversations"][0]["assistant"], r["metadata"]["label"]) for r in records
    ] == [
        ("A meme says: hello. Is it hateful?", "no", 0),
        ("A meme says: go away. Is it hateful?", "yes", 1),
    ]
    assert_valid(*summary.files)


def test_nlvr2_official_layout_left_then_right(sample_src, tmp_path: Path) -> None:
    summary = run_conversion(Nlvr2Converter(sample_src("nlvr2")), tmp_path)

    assert summary.records == {"train": 4, "dev": 3, "test1": 2}
    train = read_jsonl(tmp_path / "nlvr2_train.jsonl")
    assert [(r["id"], r["conversations"][0]["assistant"]) for r in train] == [
        ("train-101-0-0", "True"),
        ("train-101-0-1", "False"),
        ("train-102-1-0", "True"),
        ("train-102-1-1", "False"),
    ]
    assert train[0]["conversations"][0]["user"] == (
        "The left image has more discs than the right image.\n"
        "Is this sentence true for the left and right images? Answer True or False."
    )
    for split in ("train", "dev", "test1"):
        for record in read_jsonl(tmp_path / f"nlvr2_{split}.jsonl"):
            left, right = (pixels(tmp_path / "images" / p) for p in record["conversations"][0]["images"])
            assert left[..., 0].mean() > 150 > left[..., 2].mean()
            assert right[..., 2].mean() > 150 > right[..., 0].mean()
    assert len(list((tmp_path / "images" / "train").iterdir())) == 4
    assert_valid(*summary.files)


def test_nlvr2_cauldron_layout(tmp_path: Path) -> None:
    texts = [
        {"user": "Both images show a dog. True or false?", "assistant": "True", "source": "nlvr2"},
        {"user": "The left image is blue. True or false?", "assistant": "False", "source": "nlvr2"},
    ]
    images = [{"bytes": png((200, 0, 0)), "path": None}, {"bytes": png((0, 0, 200)), "path": None}]
    write_parquet(tmp_path / "src" / "nlvr2" / "train-00000-of-00001.parquet", [{"images": images, "texts": texts}])
    summary = run_conversion(Nlvr2Converter(tmp_path / "src"), tmp_path / "out")

    records = read_jsonl(tmp_path / "out" / "nlvr2_train.jsonl")
    assert [r["conversations"][0]["assistant"] for r in records] == ["True", "False"]
    left, right = (pixels(tmp_path / "out" / "images" / p) for p in records[0]["conversations"][0]["images"])
    assert (left[0, 0].tolist(), right[0, 0].tolist()) == ([200, 0, 0], [0, 0, 200])
    assert_valid(*summary.files)


def test_hub_id_gets_a_download_hint() -> None:
    with pytest.raises(SourceLayoutError, match="hf download --repo-type dataset HuggingFaceM4/the_cauldron"):
        Nlvr2Converter(Path("HuggingFaceM4/the_cauldron")).plan()
