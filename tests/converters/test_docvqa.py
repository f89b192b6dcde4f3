"""DocVQA: one record per question and one image file per document, in all four layouts."""

from __future__ import annotations

import json
from pathlib import Path

from convert_helpers import assert_valid, png, read_jsonl, write_parquet

from phi3v_data.converters import DocVQAConverter, run_conversion


def test_hf_parquet_layout(sample_src, tmp_path: Path) -> None:
    summary = run_conversion(DocVQAConverter(sample_src("docvqa"), prompt_suffix="\nAnswer briefly."), tmp_path)

    assert summary.records == {"train": 5, "validation": 2}
    assert summary.excluded == {"unanswered": 2}
    assert not (tmp_path / "docvqa_test.jsonl").exists()
    train = read_jsonl(tmp_path / "docvqa_train.jsonl")
    assert [r["id"] for r in train] == ["1001", "1002", "1003", "1004", "1005"]
    assert train[0]["conversations"][0] == {
        "images": ["train/doc101.png"],
        "user": "What is the invoice number?\nAnswer briefly.",
        "assistant": "4471",
    }
    assert train[0]["metadata"] == {"question_id": 1001, "doc_id": 101, "answers": ["4471", "No. 4471"]}
    assert [r["conversations"][0]["images"][0] for r in train] == [
        "train/doc101.png",
        "train/doc101.png",
        "train/doc102.png",
        "train/doc102.png",
        "train/doc103.png",
    ]
    assert sorted(p.name for p in (tmp_path / "images" / "train").iterdir()) == [
        "doc101.png",
        "doc102.png",
        "doc103.png",
    ]
    assert_valid(*summary.files)


def test_official_json_layout(tmp_path: Path) -> None:
    src = tmp_path / "spdocvqa"
    (src / "documents").mkdir(parents=True)
    (src / "documents" / "ffbf0023_4.png").write_bytes(png((250, 250, 250)))
    (src / "documents" / "ffbg0227_1.png").write_bytes(png((240, 240, 230)))
    data = [
        {
            "questionId": 7,
            "question": "What is the date?",
            "image": "documents/ffbf0023_4.png",
            "docId": 14,
            "answers": ["May 5", "5 May"],
            "question_types": ["form"],
        },
        {
            "questionId": 8,
            "question": "Who signed?",
            "image": "documents/ffbg0227_1.png",
            "docId": 15,
            "answers": ["A. Lee"],
        },
        {
            "questionId": 9,
            "question": "What is the total?",
            "image": "documents/ffbf0023_4.png",
            "docId": 14,
            "answers": ["$3"],
        },
        {"questionId": 10, "question": "Lost page?", "image": "documents/gone.png", "docId": 16, "answers": ["x"]},
    ]
    body = {"dataset_name": "SP-DocVQA", "dataset_split": "val", "dataset_version": "1.0", "data": data}
    (src / "val_v1.0.json").write_text(json.dumps(body))
    out = tmp_path / "out"
    summary = run_conversion(DocVQAConverter(src), out)

    assert summary.records == {"val": 3}
    assert summary.skipped == [
        {
            "item": "val/doc16",
            "reason": f"missing document image documents/gone.png (looked beside {src / 'val_v1.0.json'}, in {src} "
            "and in their spdocvqa_images/, documents/, images/ folders)",
        }
    ]
    records = read_jsonl(out / "docvqa_val.jsonl")
    assert [(r["id"], r["conversations"][0]["images"][0], r["conversations"][0]["assistant"]) for r in records] == [
        ("7", "val/doc14.png", "May 5"),
        ("9", "val/doc14.png", "$3"),
        ("8", "val/doc15.png", "A. Lee"),
    ]
    assert len(list((out / "images" / "val").iterdir())) == 2
    assert_valid(*summary.files)


def nielsr_row(question_id: str, image: bytes, query: dict[str, str], answers: list[str]) -> dict:
    """A row of nielsr/docvqa_1200_examples: the query in several languages, one word box, no `answer`."""
    return {
        "id": question_id,
        "image": {"bytes": image, "path": None},
        "query": query,
        "answers": answers,
        "words": ["x"],
        "bounding_boxes": [[0.0, 0.0, 1.0, 1.0]],
        "answer": None,
    }


def test_nielsr_layout_dedupes_documents_by_content(tmp_path: Path) -> None:
    page, other = png((250, 250, 250)), png((10, 10, 10))
    rows = [
        nielsr_row("q1", page, {"en": "What is it?", "de": "Was?"}, ["a form"]),
        nielsr_row("q2", page, {"en": "Which year?", "de": "Jahr?"}, ["1998", "98"]),
        nielsr_row("q3", other, {"en": "Colour?", "de": "Farbe?"}, ["black"]),
    ]
    write_parquet(tmp_path / "src" / "data" / "train-00000-of-00001.parquet", rows)
    summary = run_conversion(DocVQAConverter(tmp_path / "src"), tmp_path / "out")

    records = read_jsonl(tmp_path / "out" / "docvqa_train.jsonl")
    assert [(r["id"], r["conversations"][0]["user"]) for r in records] == [
        ("q1", "What is it?"),
        ("q2", "Which year?"),
        ("q3", "Colour?"),
    ]
    assert records[1]["metadata"]["answers"] == ["1998", "98"]
    assert records[0]["conversations"][0]["images"] == records[1]["conversations"][0]["images"]
    assert len(list((tmp_path / "out" / "images" / "train").iterdir())) == 2
    assert_valid(*summary.files)


def test_cauldron_row_with_three_questions_gives_three_records(tmp_path: Path) -> None:
    texts = [{"user": f"Question {i}?", "assistant": f"Answer {i}", "source": "docvqa"} for i in range(3)]
    rows = [{"images": [{"bytes": png((200, 200, 200)), "path": None}], "texts": texts}]
    write_parquet(tmp_path / "src" / "docvqa" / "train-00000-of-00001.parquet", rows)
    summary = run_conversion(DocVQAConverter(tmp_path / "src"), tmp_path / "out")

    records = read_jsonl(tmp_path / "out" / "docvqa_train.jsonl")
    assert [(r["id"], r["conversations"][0]["assistant"], r["metadata"]["answers"]) for r in records] == [
        (f"train-00000000-{i}", f"Answer {i}", [f"Answer {i}"]) for i in range(3)
    ]
    assert len({r["conversations"][0]["images"][0] for r in records}) == 1
    assert len(list((tmp_path / "out" / "images" / "train").iterdir())) == 1
    assert_valid(*summary.files)
