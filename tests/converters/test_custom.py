"""Custom tables: templates over columns, image paths or bytes, missing fields reported with the row number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from convert_helpers import assert_valid, pixels, png, read_jsonl, write_parquet

from phi3v_data.converters import CustomConverter, run_conversion


def test_csv_with_image_paths_and_ids(tmp_path: Path) -> None:
    (tmp_path / "src" / "pics").mkdir(parents=True)
    (tmp_path / "src" / "pics" / "red.png").write_bytes(png((255, 0, 0)))
    (tmp_path / "src" / "pics" / "blue.png").write_bytes(png((0, 0, 255)))
    (tmp_path / "src" / "table.csv").write_text(
        'qid,path,question,answer\nq1,pics/red.png,Which colour?,red\nq2,pics/blue.png,"Which colour, again?",blue\n'
        "q3,pics/none.png,Which?,none\nq1,pics/red.png,Again?,red\n"
    )
    converter = CustomConverter(
        tmp_path / "src" / "table.csv",
        user="Q: {question}",
        assistant="{answer}",
        image_columns=("path",),
        id_column="qid",
        source="colours",
        split="val",
    )
    summary = run_conversion(converter, tmp_path / "out")

    assert summary.skipped == [
        {"item": "table.csv row 3", "reason": f"missing image {tmp_path / 'src' / 'pics/none.png'}"},
        {"item": "table.csv row 4", "reason": "duplicate id 'q1' in split val"},
    ]
    records = read_jsonl(tmp_path / "out" / "colours_val.jsonl")
    assert [
        (r["id"], r["source"], r["conversations"][0]["user"], r["conversations"][0]["assistant"]) for r in records
    ] == [
        ("q1", "colours", "Q: Which colour?", "red"),
        ("q2", "colours", "Q: Which colour, again?", "blue"),
    ]
    assert pixels(tmp_path / "out" / "images" / records[1]["conversations"][0]["images"][0])[0, 0].tolist() == [
        0,
        0,
        255,
    ]
    assert records[0]["metadata"] == {"file": "table.csv", "row": 1}
    assert_valid(*summary.files)


def test_jsonl_missing_template_field_is_reported_with_its_row(tmp_path: Path) -> None:
    rows = [{"q": "Say hi.", "a": "hi"}, {"q": "Say bye.", "a": "bye"}, {"q": "Say nothing."}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = run_conversion(CustomConverter(tmp_path / "rows.jsonl", user="{q}", assistant="{a}"), tmp_path / "out")

    assert summary.skipped == [
        {
            "item": "rows.jsonl row 3",
            "reason": "row 3: --assistant template field 'a' is not a column of this row (columns: q)",
        }
    ]
    records = read_jsonl(tmp_path / "out" / "custom_train.jsonl")
    assert [(r["id"], r["conversations"][0]) for r in records] == [
        ("train-0000000000", {"images": [], "user": "Say hi.", "assistant": "hi"}),
        ("train-0000000001", {"images": [], "user": "Say bye.", "assistant": "bye"}),
    ]


def test_parquet_with_image_bytes(tmp_path: Path) -> None:
    rows = [{"img": {"bytes": png((0, 255, 0)), "path": None}, "caption": "green"}]
    write_parquet(tmp_path / "rows.parquet", rows)
    converter = CustomConverter(
        tmp_path / "rows.parquet", user="Describe.", assistant="{caption}", image_columns=("img",)
    )
    summary = run_conversion(converter, tmp_path / "out")
    record = read_jsonl(tmp_path / "out" / "custom_train.jsonl")[0]
    assert pixels(tmp_path / "out" / "images" / record["conversations"][0]["images"][0])[0, 0].tolist() == [0, 255, 0]
    assert_valid(*summary.files)


def test_positional_template_fields_are_refused(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a\n1\n")
    with pytest.raises(ValueError, match="positional"):
        CustomConverter(tmp_path / "t.csv", user="{}", assistant="{a}")
