"""The hf reader (Image features, {bytes, path} structs, streaming, column errors) and the writers' round trips:
JSONL -> llava -> JSONL and JSONL -> hf -> JSONL give the same records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Features, Image, List, Value
from interop_files import png, read_jsonl, write_parquet
from typer.testing import CliRunner

from phi3v_data.cli.main import app
from phi3v_data.converters import HfConverter, LlavaConverter, ShareGPTConverter, run_conversion
from phi3v_data.converters.images import content_name
from phi3v_data.converters.spec import DatasetSpec
from phi3v_data.errors import SourceLayoutError
from phi3v_data.writers import export_records

RED, BLUE, GREEN = png("red"), png("blue"), png("green", (5, 5))
SPEC = DatasetSpec(
    name="shapes",
    description="test",
    user="{question}",
    assistant="{answer}",
    image_columns=["photo", "extra"],
    metric="accuracy",
)


def table(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "g.png").write_bytes(GREEN)
    features = Features(
        {
            "photo": Image(),
            "extra": List({"bytes": Value("binary"), "path": Value("string")}),
            "question": Value("string"),
            "answer": Value("string"),
        }
    )
    return write_parquet(
        tmp_path / "src" / "rows.parquet",
        {
            "photo": [{"bytes": RED, "path": None}, {"bytes": BLUE, "path": "b.png"}, None],
            "extra": [[], [{"bytes": None, "path": str(tmp_path / "src" / "g.png")}], []],
            "question": ["<image> color?", "Both colors?", "No image here?"],
            "answer": ["red", "blue and green", "none"],
        },
        features,
    )


@pytest.mark.parametrize("streaming", [False, True])
def test_hf_reader_decodes_image_features_and_structs(tmp_path: Path, cache_dir: str, streaming: bool) -> None:
    src = table(tmp_path)
    out = tmp_path / "out"
    summary = run_conversion(
        HfConverter(src=str(src), spec=SPEC, streaming=streaming, cache_dir=cache_dir), out, max_skip_fraction=1.0
    )
    rows = read_jsonl(out / "shapes_train.jsonl")
    assert [r["conversations"][0] for r in rows] == [
        {"images": [f"train/{content_name(RED)}.png"], "user": "<|image_1|> color?", "assistant": "red"},
        {
            "images": [f"train/{content_name(BLUE)}.png", f"train/{content_name(GREEN)}.png"],
            "user": "Both colors?",
            "assistant": "blue and green",
        },
        {"images": [], "user": "No image here?", "assistant": "none"},
    ]
    assert summary.skipped == []


def test_hf_reader_names_missing_columns(tmp_path: Path, cache_dir: str) -> None:
    src = table(tmp_path)
    spec = SPEC.model_copy(update={"user": "{query}"})
    with pytest.raises(SourceLayoutError, match="split train: no column 'query'; its columns: photo, extra, question"):
        run_conversion(HfConverter(src=str(src), spec=spec, cache_dir=cache_dir), tmp_path / "out")


def llava_records(tmp_path: Path) -> Path:
    """A JSONL of multi-turn, multi-image and text-only records, made by the llava reader."""
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "r.png").write_bytes(RED)
    (tmp_path / "raw" / "b.png").write_bytes(BLUE)
    items = [
        {
            "id": "a",
            "image": ["r.png", "b.png"],
            "conversations": [
                {"from": "human", "value": "<image>\nFirst?"},
                {"from": "gpt", "value": "red"},
                {"from": "human", "value": "Second: <image>"},
                {"from": "gpt", "value": "blue"},
            ],
        },
        {"id": "b", "conversations": [{"from": "human", "value": "Text only"}, {"from": "gpt", "value": "ok"}]},
    ]
    (tmp_path / "raw" / "data.json").write_text(json.dumps(items), encoding="utf-8")
    run_conversion(LlavaConverter(src=tmp_path / "raw" / "data.json"), tmp_path / "jsonl")
    return tmp_path / "jsonl" / "llava_train.jsonl"


@pytest.mark.parametrize("copy_images", [False, True])
def test_round_trip_through_llava(tmp_path: Path, copy_images: bool) -> None:
    jsonl = llava_records(tmp_path)
    summary = export_records(jsonl, "llava", tmp_path / "llava", copy_images=copy_images)
    exported = json.loads(summary.written[0].read_text(encoding="utf-8"))
    assert exported[0]["conversations"][2] == {"from": "human", "value": "Second: <image>"}
    assert exported[0]["image"][0] == (
        f"images/train/{content_name(RED)}.png" if copy_images else f"../jsonl/images/train/{content_name(RED)}.png"
    )
    run_conversion(LlavaConverter(src=summary.written[0]), tmp_path / "back")
    assert (tmp_path / "back/llava_train.jsonl").read_text() == jsonl.read_text()


def test_round_trip_through_sharegpt(tmp_path: Path) -> None:
    jsonl = llava_records(tmp_path)
    summary = export_records(jsonl, "sharegpt", tmp_path / "sg")
    run_conversion(ShareGPTConverter(src=summary.written[0], source="llava"), tmp_path / "back")
    assert (tmp_path / "back/llava_train.jsonl").read_text() == jsonl.read_text()


@pytest.mark.parametrize("parquet", [False, True])
def test_round_trip_through_hf(tmp_path: Path, cache_dir: str, parquet: bool) -> None:
    jsonl = llava_records(tmp_path)
    summary = export_records(jsonl, "hf", tmp_path / "hf", parquet=parquet)
    assert summary.records == 2 and summary.images == 2
    src = tmp_path / "hf" if not parquet else summary.written[0]
    run_conversion(HfConverter(src=str(src), cache_dir=cache_dir), tmp_path / "back")
    assert (tmp_path / "back/hf_train.jsonl").read_text() == jsonl.read_text()


def test_cli_convert_list_spec_and_export(tmp_path: Path, cache_dir: str) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["convert", "--list"])
    assert listed.exit_code == 0
    assert "  llava\n" in listed.output and "  chartqa    HuggingFaceM4/ChartQA" in listed.output
    features = Features({"image": Image(), "query": Value("string"), "label": List(Value("string"))})
    write_parquet(
        tmp_path / "chartqa/data/test-00000-of-00001.parquet",
        {"image": [{"bytes": RED, "path": None}], "query": ["Max?"], "label": [["9"]]},
        features,
    )
    result = runner.invoke(
        app, ["convert", "chartqa", str(tmp_path / "chartqa"), str(tmp_path / "out"), "--cache-dir", cache_dir]
    )
    assert result.exit_code == 0, result.output
    assert read_jsonl(tmp_path / "out/chartqa_test.jsonl")[0]["conversations"][0]["assistant"] == "9"
    exported = runner.invoke(
        app, ["export", str(tmp_path / "out/chartqa_test.jsonl"), "--to", "llava", str(tmp_path / "llava")]
    )
    assert exported.exit_code == 0, exported.output
    assert json.loads((tmp_path / "llava/chartqa_test.json").read_text())[0]["conversations"][0] == {
        "from": "human",
        "value": "<image>\nMax?",
    }
