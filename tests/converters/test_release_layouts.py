"""The layouts people actually download (see .notes/datasets.md), each built in a temp folder and run through the CLI.

Every test asserts the exact records (count, ids, images) and the exit code: no variant may lose data silently.
"""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import pytest
from convert_helpers import assert_valid, pixels, png, read_jsonl, write_parquet
from PIL import Image
from typer.testing import CliRunner

from phi3v_data.cli.main import app
from phi3v_data.samples.ucf101 import read_index

runner = CliRunner()
CAULDRON_HASHES = ("33e2982e1d27df29", "6b0d10537130f0e0", "66f99553cd8cd9f8")


def _convert(*args: str):
    return runner.invoke(app, ["convert", *map(str, args)])


def _meme_rows(first: int, count: int) -> list[dict]:
    return [
        {
            "images": [{"bytes": png((i, 0, 0)), "path": None}],
            "texts": [{"user": f"Meme {i}. Is it hateful?", "assistant": "Yes" if i % 2 else "No", "source": "hm"}],
        }
        for i in range(first, first + count)
    ]


def _cauldron_shards(folder: Path, sizes: list[int]) -> None:
    """the_cauldron's names: ``train-0000N-of-0000M-<16 hex>.parquet``."""
    first = 0
    for index, size in enumerate(sizes):
        name = f"train-{index:05d}-of-{len(sizes):05d}-{CAULDRON_HASHES[index]}.parquet"
        write_parquet(folder / name, _meme_rows(first, size))
        first += size


def test_cauldron_hateful_memes_in_several_hashed_shards_keeps_every_row(tmp_path: Path) -> None:
    _cauldron_shards(tmp_path / "the_cauldron" / "hateful_memes", [3, 2, 2])
    result = _convert("hateful-memes", tmp_path / "the_cauldron" / "hateful_memes", tmp_path / "out")

    assert result.exit_code == 0, result.output
    records = read_jsonl(tmp_path / "out" / "hateful_memes_train.jsonl")
    assert [r["id"] for r in records] == [f"train-{i:08d}-0" for i in range(7)]
    assert [r["conversations"][0]["assistant"] for r in records] == ["no", "yes"] * 3 + ["no"]
    assert [pixels(tmp_path / "out" / "images" / r["conversations"][0]["images"][0])[0, 0, 0] for r in records] == [
        *range(7)
    ]
    assert "train: 7 items read, 7 records" in result.output
    assert_valid(tmp_path / "out" / "hateful_memes_train.jsonl")


def test_cauldron_with_a_missing_shard_stops_before_writing(tmp_path: Path) -> None:
    _cauldron_shards(tmp_path / "hm", [2, 2, 2])
    (tmp_path / "hm" / f"train-00001-of-00003-{CAULDRON_HASHES[1]}.parquet").unlink()
    result = _convert("hateful-memes", tmp_path / "hm", tmp_path / "out")

    assert result.exit_code == 1
    assert f"{tmp_path / 'hm'} has 2 of the 3 train shards; missing train-00001-of-00003" in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_cauldron_refs_convert_parquet_layout(tmp_path: Path) -> None:
    for index, (first, size) in enumerate([(0, 2), (2, 3)]):
        write_parquet(tmp_path / "hateful_memes" / "train" / f"{index:04d}.parquet", _meme_rows(first, size))
    result = _convert("hateful-memes", tmp_path / "hateful_memes", tmp_path / "out")

    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_jsonl(tmp_path / "out" / "hateful_memes_train.jsonl")] == [
        f"train-{i:08d}-0" for i in range(5)
    ]


def test_cauldron_shards_from_the_hub_keep_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [{"user": "Same count? True or false?", "assistant": "True", "source": "nlvr2"}]
    for index in range(3):
        images = [{"bytes": png((index, 1, 1)), "path": None}, {"bytes": png((index, 2, 2)), "path": None}]
        name = f"train-{index:05d}-of-00003-{CAULDRON_HASHES[index]}.parquet"
        write_parquet(tmp_path / "cache" / "nlvr2" / name, [{"images": images, "texts": texts}] * 2)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    result = _convert("nlvr2", "HuggingFaceM4/the_cauldron", "out")

    assert result.exit_code == 0, result.output
    records = read_jsonl(tmp_path / "out" / "nlvr2_train.jsonl")
    assert [r["id"] for r in records] == [f"train-{i:08d}-0" for i in range(6)]
    assert len(list((tmp_path / "out" / "images" / "train").iterdir())) == 6


def _rrc_docvqa(root: Path) -> None:
    """SP-DocVQA as the RRC ships it: spdocvqa_qas/*_withQT.json, flat spdocvqa_images/, spdocvqa_ocr/."""
    qas = root / "spdocvqa_qas"
    qas.mkdir(parents=True)
    (root / "spdocvqa_images").mkdir()
    (root / "spdocvqa_ocr").mkdir()
    for name, colour in (("xnbl0037_1", 250), ("pybv0228_81", 240), ("ffbf0023_4", 230)):
        (root / "spdocvqa_images" / f"{name}.png").write_bytes(png((colour, colour, colour)))
        (root / "spdocvqa_ocr" / f"{name}.json").write_text('{"status": "Succeeded", "recognitionResults": [')

    def question(qid: int, doc: int, name: str, answers: list[str] | None) -> dict:
        row = {
            "questionId": qid,
            "question": f"Question {qid}?",
            "question_types": ["form"],
            "docId": doc,
            "image": f"documents/{name}.png",
            "ucsf_document_id": name.split("_")[0],
            "ucsf_document_page_no": name.split("_")[1],
        }
        return row if answers is None else {**row, "answers": answers}

    splits = {
        "train_v1.0_withQT.json": (
            "train",
            [question(337, 279, "xnbl0037_1", ["1/8/93"]), question(338, 279, "xnbl0037_1", ["ITC"])],
        ),
        "val_v1.0_withQT.json": ("val", [question(49153, 14465, "pybv0228_81", ["0.28"])]),
        "test_v1.0.json": ("test", [question(57349, 5000, "ffbf0023_4", None)]),
    }
    for name, (split, data) in splits.items():
        body = {"dataset_name": "docvqa", "dataset_version": "1.0", "dataset_split": split, "data": data}
        (qas / name).write_text(json.dumps(body))


def test_spdocvqa_rrc_layout(tmp_path: Path) -> None:
    _rrc_docvqa(tmp_path / "spdocvqa")
    (tmp_path / "spdocvqa" / "spdocvqa_qas" / "infographicsVQA_val_v1.0_withQT.json").write_text(
        json.dumps({"data": [{"questionId": 98313, "question": "Q?", "image_local_name": "37313.jpeg"}]})
    )
    result = _convert("docvqa", tmp_path / "spdocvqa", tmp_path / "out")

    assert result.exit_code == 0, result.output
    train = read_jsonl(tmp_path / "out" / "docvqa_train.jsonl")
    assert [(r["id"], r["conversations"][0]["images"], r["conversations"][0]["assistant"]) for r in train] == [
        ("337", ["train/doc279.png"], "1/8/93"),
        ("338", ["train/doc279.png"], "ITC"),
    ]
    assert [r["id"] for r in read_jsonl(tmp_path / "out" / "docvqa_val.jsonl")] == ["49153"]
    assert pixels(tmp_path / "out" / "images" / "val" / "doc14465.png")[0, 0].tolist() == [240, 240, 240]
    report = json.loads((tmp_path / "out" / "convert_report.json").read_text())
    assert report["excluded"] == {"unanswered": 1}
    assert report["not_reached"] == [
        f"{tmp_path / 'spdocvqa' / 'spdocvqa_qas' / 'infographicsVQA_val_v1.0_withQT.json'}: an InfographicVQA file, "
        "not DocVQA"
    ]
    assert "left out: 1 unanswered" in result.output
    assert_valid(tmp_path / "out" / "docvqa_train.jsonl", tmp_path / "out" / "docvqa_val.jsonl")


def _lmms_rows(first: int, count: int, colour: int) -> list[dict]:
    return [
        {
            "questionId": str(first + i),
            "question": f"Q{first + i}?",
            "question_types": ["form"],
            "image": {"bytes": png((colour, colour, colour)), "path": None},
            "docId": first + i,
            "ucsf_document_id": "abc",
            "ucsf_document_page_no": "1",
            "answers": [f"A{first + i}"],
            "data_split": "val",
        }
        for i in range(count)
    ]


def test_lmms_lab_folder_with_docvqa_and_infographicvqa(tmp_path: Path) -> None:
    root = tmp_path / "DocVQA"
    write_parquet(root / "DocVQA" / "validation-00000-of-00002.parquet", _lmms_rows(10, 2, 200))
    write_parquet(root / "DocVQA" / "validation-00001-of-00002.parquet", _lmms_rows(20, 1, 100))
    infographic = [
        {
            "questionId": "98313",
            "question": "Q?",
            "answers": ["x"],
            "answer_type": ["single span"],
            "image": {"bytes": png((1, 1, 1)), "path": None},
            "image_url": "u",
            "operation/reasoning": [],
            "ocr": "{}",
            "data_split": "val",
        }
    ]
    write_parquet(root / "InfographicVQA" / "validation-00000-of-00001.parquet", infographic)
    result = _convert("docvqa", root, tmp_path / "out")

    assert result.exit_code == 0, result.output
    records = read_jsonl(tmp_path / "out" / "docvqa_validation.jsonl")
    assert [(r["id"], r["conversations"][0]["images"][0]) for r in records] == [
        ("10", "validation/doc10.png"),
        ("11", "validation/doc11.png"),
        ("20", "validation/doc20.png"),
    ]
    assert "not read: " in result.output
    assert "InfographicVQA shard, not DocVQA" in result.output


def test_corrupt_page_is_reported_with_file_and_row(tmp_path: Path) -> None:
    rows = _lmms_rows(1, 2, 200)
    rows[1]["image"] = {"bytes": b"\x89PNG not really", "path": None}
    write_parquet(tmp_path / "src" / "validation-00000-of-00001.parquet", rows)
    result = _convert("docvqa", tmp_path / "src", tmp_path / "out", "--max-skip-fraction", "0.5")

    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "convert_report.json").read_text())
    assert report["skipped"] == [
        {
            "item": "validation/doc2",
            "reason": f"unreadable image {tmp_path / 'src' / 'validation-00000-of-00001.parquet'} row 1: "
            "not an image Pillow can read",
        }
    ]


def test_pages_over_the_validators_pixel_limit_are_skipped_or_downscaled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    rows = _lmms_rows(1, 2, 200)
    rows[1]["image"] = {"bytes": png((9, 9, 9), size=(50, 50)), "path": None}
    write_parquet(tmp_path / "src" / "validation-00000-of-00001.parquet", rows)
    refused = _convert("docvqa", tmp_path / "src", tmp_path / "out")
    assert refused.exit_code == 1
    assert "50x50 = 2,500 pixels, over the validator's limit of 2,000; pass --max-pixels" in refused.output
    assert "1 of 2 items (50.0%) were skipped" in refused.output
    assert not (tmp_path / "out" / "docvqa_validation.jsonl").exists()

    too_many = _convert("docvqa", tmp_path / "src", tmp_path / "out2", "--max-pixels", "3000")
    assert too_many.exit_code == 2
    assert "--max-pixels must be between 1 and 2,000" in too_many.output

    result = _convert("docvqa", tmp_path / "src", tmp_path / "out", "--max-pixels", "1000", "--overwrite")
    assert result.exit_code == 0, result.output
    records = read_jsonl(tmp_path / "out" / "docvqa_validation.jsonl")
    assert [r["id"] for r in records] == ["1", "2"]
    assert records[1]["metadata"]["downscaled"] == {"validation/doc2.png": {"from": [50, 50], "to": [31, 31]}}
    assert pixels(tmp_path / "out" / "images" / "validation" / "doc2.png").shape == (31, 31, 3)
    assert_valid(tmp_path / "out" / "docvqa_validation.jsonl")


def test_hateful_memes_phase_one_release_reads_dev(tmp_path: Path) -> None:
    src = tmp_path / "data"
    (src / "img").mkdir(parents=True)
    for name, colour in (("01235", 10), ("42953", 20), ("08291", 30), ("16395", 40)):
        (src / "img" / f"{name}.png").write_bytes(png((colour, 0, 0)))
    (src / "train.jsonl").write_text(
        '{"id":1235,"img":"img\\/01235.png","label":1,"text":"a"}\n'
        '{"id":42953,"img":"img\\/42953.png","label":0,"text":"b"}\n'
    )
    (src / "dev.jsonl").write_text('{"id":"08291","img":"img\\/08291.png","label":0,"text":"c"}\n')
    (src / "test.jsonl").write_text('{"id":16395,"img":"img\\/16395.png","text":"d"}\n')
    result = _convert("hateful-memes", src, tmp_path / "out")

    assert result.exit_code == 0, result.output
    assert [
        (r["id"], r["conversations"][0]["images"]) for r in read_jsonl(tmp_path / "out" / "hateful_memes_train.jsonl")
    ] == [
        ("1235", ["train/01235.png"]),
        ("42953", ["train/42953.png"]),
    ]
    assert [
        (r["id"], r["conversations"][0]["images"]) for r in read_jsonl(tmp_path / "out" / "hateful_memes_dev.jsonl")
    ] == [("08291", ["dev/08291.png"])]
    assert "left out: 1 unlabeled" in result.output


def test_nlvr2_flat_train_images(sample_src, tmp_path: Path) -> None:
    src = tmp_path / "nlvr2"
    (src / "data").mkdir(parents=True)
    (src / "images" / "train").mkdir(parents=True)
    line = {
        "identifier": "train-101-0-0",
        "sentence": "Two dogs.",
        "label": "True",
        "directory": 7,
        "left_url": "u",
        "right_url": "u",
    }
    (src / "data" / "train.json").write_text(json.dumps(line) + "\n")
    (src / "images" / "train" / "train-101-0-img0.png").write_bytes(png((200, 0, 0)))
    (src / "images" / "train" / "train-101-0-img1.png").write_bytes(png((0, 0, 200)))
    result = _convert("nlvr2", src, tmp_path / "out")

    assert result.exit_code == 0, result.output
    records = read_jsonl(tmp_path / "out" / "nlvr2_train.jsonl")
    assert [(r["id"], r["conversations"][0]["images"]) for r in records] == [
        ("train-101-0-0", ["train/train-101-0-img0.png", "train/train-101-0-img1.png"])
    ]


def _set_frame_count(path: Path, frames: int) -> None:
    import struct

    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, data.find(b"avih") + 8 + 16, frames)
    struct.pack_into("<I", data, data.find(b"strh") + 8 + 32, frames)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("declared", [53, 30])
def test_ucf_header_that_disagrees_with_the_stream_is_recounted(ucf_copy: Path, tmp_path: Path, declared: int) -> None:
    clip = ucf_copy / "Archery" / "v_Archery_g08_c01.avi"
    _set_frame_count(clip, declared)
    result = _convert("ucf101", ucf_copy, tmp_path / "out", "--frames", "4", "--classes", "Archery")

    assert result.exit_code == 0, result.output
    record = next(
        r
        for r in read_jsonl(tmp_path / "out" / "ucf101_train.jsonl")
        if r["metadata"]["video"] == "Archery/v_Archery_g08_c01.avi"
    )
    assert record["metadata"]["total_frames"] == 50
    assert record["metadata"]["header_frames"] == declared
    assert [read_index(pixels(tmp_path / "out" / "images" / p)) for p in record["conversations"][0]["images"]] == [
        0,
        12,
        25,
        37,
    ]
    assert f"{declared} declared, 50 decoded" in result.output


def test_ucf_frames_beyond_the_clip_warn_once(ucf_src: Path, tmp_path: Path) -> None:
    result = _convert("ucf101", ucf_src, tmp_path / "out", "--frames", "60", "--classes", "Archery")

    assert result.exit_code == 0, result.output
    assert result.output.count("warning:") == 1
    assert "4 clips have fewer frames than --frames 60 (the shortest has 50)" in result.output
    report = json.loads((tmp_path / "out" / "convert_report.json").read_text())
    assert report["warnings"] == [
        "4 clips have fewer frames than --frames 60 (the shortest has 50): their records repeat frames"
    ]
