"""Each shipped spec on a tiny fixture in that dataset's published hub schema (column names and feature types as
in the dataset cards; see .notes/datasets.md, section 6d), plus the spec loader's errors."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
from datasets import ClassLabel, Features, Image, List, Value
from interop_files import png, read_jsonl, write_parquet

from phi3v_data.converters import HfConverter, run_conversion
from phi3v_data.converters.images import content_name
from phi3v_data.converters.spec import SpecError, builtin_spec, builtin_spec_names, parse_spec
from phi3v_data.datasets import find_dataset

RED, BLUE = png("red"), png("blue")
SHORT_ANSWER = "\nAnswer the question using a single word or phrase."


def img(data: bytes) -> dict:
    return {"bytes": data, "path": None}


def path_of(split: str, data: bytes) -> str:
    return f"{split}/{content_name(data)}.png"


def written(
    record_id: str, source: str, split: str, row: int, image: bytes, user: str, assistant: str, answers: list[str]
) -> dict:
    """A record as the hf reader writes it: one turn with one image; the row's place and answers in metadata."""
    return {
        "id": record_id,
        "source": source,
        "conversations": [{"images": [path_of(split, image)], "user": user, "assistant": assistant}],
        "metadata": {"split": split, "row": row, "answers": answers},
    }


def convert(src: Path, name: str, out: Path, cache_dir: str, **kw) -> tuple[dict, object]:
    summary = run_conversion(
        HfConverter(src=str(src), spec=builtin_spec(name), cache_dir=cache_dir, **kw), out, max_skip_fraction=1.0
    )
    return {p.name: read_jsonl(p) for p in summary.files}, summary


def test_shipped_specs_are_the_expected_ones() -> None:
    assert builtin_spec_names() == ["ai2d", "cauldron", "chartqa", "scienceqa", "textvqa", "vqav2"]
    for name in builtin_spec_names():
        spec = builtin_spec(name)
        info = find_dataset(spec.record_source(spec.configs[0] if spec.configs else None))
        if info is not None and spec.metric is not None:
            assert spec.metric in info.metrics


def test_chartqa(tmp_path: Path, cache_dir: str) -> None:
    features = Features(
        {
            "image": Image(),
            "query": Value("string"),
            "label": List(Value("string")),
            "human_or_machine": ClassLabel(names=["human", "machine"]),
        }
    )
    write_parquet(
        tmp_path / "src/data/val-00000-of-00001-0f11003c77497969.parquet",
        {
            "image": [img(RED), img(BLUE)],
            "query": ["Peak value?", "Lowest bar?"],
            "label": [["42"], ["Chad"]],
            "human_or_machine": [0, 1],
        },
        features,
    )
    files, _ = convert(tmp_path / "src", "chartqa", tmp_path / "out", cache_dir)
    assert files == {
        "chartqa_val.jsonl": [
            written("val-0000000000", "chartqa", "val", 0, RED, "Peak value?", "42", ["42"]),
            written("val-0000000001", "chartqa", "val", 1, BLUE, "Lowest bar?", "Chad", ["Chad"]),
        ]
    }
    assert (tmp_path / "out/images" / path_of("val", BLUE)).read_bytes() == BLUE


def test_textvqa_majority_answer_and_unanswered_test_rows(tmp_path: Path, cache_dir: str) -> None:
    features = Features(
        {
            "image_id": Value("string"),
            "question_id": Value("int32"),
            "question": Value("string"),
            "question_tokens": List(Value("string")),
            "image": Image(),
            "image_width": Value("int32"),
            "image_height": Value("int32"),
            "flickr_original_url": Value("string"),
            "flickr_300k_url": Value("string"),
            "answers": List(Value("string")),
            "image_classes": List(Value("string")),
            "set_name": Value("string"),
            "ocr_tokens": List(Value("string")),
        }
    )
    answers = ["nokia", "Nokia", "nokia", "toshiba", "nokia", "Nokia", "nokia", "Nokia", "Nokia", "Nokia"]
    row = {
        "image_id": ["a1"],
        "question_id": [34602],
        "question": ["what brand is this?"],
        "question_tokens": [["what", "brand"]],
        "image": [img(RED)],
        "image_width": [8],
        "image_height": [6],
        "flickr_original_url": [""],
        "flickr_300k_url": [""],
        "answers": [answers],
        "image_classes": [["phone"]],
        "set_name": ["val"],
        "ocr_tokens": [["NOKIA"]],
    }
    write_parquet(tmp_path / "src/data/validation-00000-of-00001.parquet", row, features)
    write_parquet(
        tmp_path / "src/data/train-00000-of-00001.parquet",
        {**row, "question_id": [1], "answers": [[""] * 10]},
        features,
    )
    files, summary = convert(tmp_path / "src", "textvqa", tmp_path / "out", cache_dir)
    user = "what brand is this?" + SHORT_ANSWER
    assert files == {
        "textvqa_validation.jsonl": [written("34602", "textvqa", "validation", 0, RED, user, "Nokia", answers)]
    }
    assert summary.skipped == [{"item": "train:0", "reason": "column 'answers' holds no answer"}]


def test_vqav2_answers_are_dicts(tmp_path: Path, cache_dir: str) -> None:
    answer = {"answer": Value("string"), "answer_confidence": Value("string"), "answer_id": Value("int64")}
    features = Features(
        {
            "question_type": Value("string"),
            "multiple_choice_answer": Value("string"),
            "answers": List(answer),
            "image_id": Value("int64"),
            "answer_type": Value("string"),
            "question_id": Value("int64"),
            "question": Value("string"),
            "image": Image(),
        }
    )
    answers = [{"answer": a, "answer_confidence": "yes", "answer_id": i} for i, a in enumerate(["2", "two", "2"], 1)]
    write_parquet(
        tmp_path / "src/data/validation-00000-of-00001.parquet",
        {
            "question_type": ["how many"],
            "multiple_choice_answer": ["2"],
            "answers": [answers],
            "image_id": [262148],
            "answer_type": ["number"],
            "question_id": [262148000],
            "question": ["How many dogs?"],
            "image": [img(BLUE)],
        },
        features,
    )
    files, _ = convert(tmp_path / "src", "vqav2", tmp_path / "out", cache_dir)
    assert files["vqav2_validation.jsonl"] == [
        written("262148000", "vqav2", "validation", 0, BLUE, "How many dogs?" + SHORT_ANSWER, "2", ["2", "two", "2"]),
    ]


def test_ai2d_letter_from_string_index(tmp_path: Path, cache_dir: str) -> None:
    features = Features(
        {"question": Value("string"), "options": List(Value("string")), "answer": Value("string"), "image": Image()}
    )
    write_parquet(
        tmp_path / "src/data/test-00000-of-00001.parquet",
        {
            "question": ["Which is a producer?"],
            "options": [["hawk", "grass", "snake", "frog"]],
            "answer": ["1"],
            "image": [img(RED)],
        },
        features,
    )
    files, _ = convert(tmp_path / "src", "ai2d", tmp_path / "out", cache_dir)
    assert files["ai2d_test.jsonl"][0]["conversations"] == [
        {
            "images": [path_of("test", RED)],
            "user": "Which is a producer?\nA. hawk\nB. grass\nC. snake\nD. frog\n"
            "Answer with the option's letter from the given choices directly.",
            "assistant": "B",
        }
    ]


def test_scienceqa_context_and_text_only_rows(tmp_path: Path, cache_dir: str) -> None:
    names = ["task", "grade", "subject", "topic", "category", "skill", "lecture", "solution"]
    features = Features(
        {
            "image": Image(),
            "question": Value("string"),
            "choices": List(Value("string")),
            "answer": Value("int8"),
            "hint": Value("string"),
            **{n: Value("string") for n in names},
        }
    )
    write_parquet(
        tmp_path / "src/data/validation-00000-of-00001-abc.parquet",
        {
            "image": [img(BLUE), None],
            "question": ["Which animal's feet are adapted?", "Which word is a noun?"],
            "choices": [["otter", "hawk"], ["run", "dog", "blue"]],
            "answer": [0, 1],
            "hint": ["Otters live near water.", ""],
            **{n: ["x", "y"] for n in names},
        },
        features,
    )
    files, _ = convert(tmp_path / "src", "scienceqa", tmp_path / "out", cache_dir)
    suffix = "\nAnswer with the option's letter from the given choices directly."
    assert [r["conversations"] for r in files["scienceqa_validation.jsonl"]] == [
        [
            {
                "images": [path_of("validation", BLUE)],
                "user": "Context: Otters live near water.\nWhich animal's feet are adapted?\nA. otter\nB. hawk"
                + suffix,
                "assistant": "A",
            }
        ],
        [{"images": [], "user": "Which word is a noun?\nA. run\nB. dog\nC. blue" + suffix, "assistant": "B"}],
    ]


def cauldron_features() -> Features:
    text = {"user": Value("string"), "assistant": Value("string"), "source": Value("string")}
    return Features({"images": List(Image()), "texts": List(text)})


def test_cauldron_any_subset_all_shards(tmp_path: Path, cache_dir: str) -> None:
    root = tmp_path / "the_cauldron"
    texts = [
        {"user": "Is it red?", "assistant": "Yes.", "source": "vsr"},
        {"user": "Is it blue?", "assistant": "No.", "source": "vsr"},
    ]
    write_parquet(
        root / "vsr/train-00000-of-00002-4a7d4eddee81f7ac.parquet",
        {"images": [[img(RED)]], "texts": [texts]},
        cauldron_features(),
    )
    write_parquet(
        root / "vsr/train-00001-of-00002-e5f81bcc5421ee1d.parquet",
        {"images": [[img(RED), img(BLUE)]], "texts": [texts[1:]]},
        cauldron_features(),
    )
    write_parquet(
        root / "ai2d/train-00000-of-00001-aaaa.parquet",
        {"images": [[img(BLUE)]], "texts": [texts]},
        cauldron_features(),
    )
    files, _ = convert(root, "cauldron", tmp_path / "out", cache_dir, config="vsr")
    red, blue = path_of("train", RED), path_of("train", BLUE)
    assert [
        (r["id"], r["source"], r["conversations"][0]["images"], r["conversations"][0]["user"])
        for r in files["vsr_train.jsonl"]
    ] == [
        ("train-00000000-0", "vsr", [red], "Is it red?"),
        ("train-00000000-1", "vsr", [red], "Is it blue?"),
        ("train-00000001-0", "vsr", [red, blue], "Is it blue?"),
    ]


def test_cauldron_refuses_an_unknown_subset(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"cauldron needs --config, one of: ai2d, aokvqa, .* \(not 'nope'\)"):
        HfConverter(src=str(tmp_path), spec=builtin_spec("cauldron"), config="nope")


def test_spec_errors_are_listed_together() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec("name: Bad Name\nuser: '{0}'\ncolour: red\n", "my.yaml")
    message = str(info.value)
    assert message.startswith("my.yaml: 5 problem(s):")
    for part in (
        "name: String should match pattern",
        "description: Field required",
        "assistant: Field required",
        "colour: Extra inputs are not permitted",
        "uses a positional field",
    ):
        assert part in message


def test_datasets_is_the_pinned_version() -> None:
    assert datasets.__version__ == "5.2.0"
