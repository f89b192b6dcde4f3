"""evaluate_records: metric choice, label sets, sampling, prompts and the summary, on hand-computed cases.

Generation and label scoring are replaced by fixed answers here (their own tests run the tiny model),
so every metric below is computed by hand.
"""

from __future__ import annotations

import math
import re

import pytest

from phi3v_data.schema import Record
from phi3v_train.data.image_loading import load_images
from phi3v_train.data.records import load_records
from phi3v_train.errors import ConfigError, DataError
from phi3v_train.evaluation import evaluate as evaluate_module
from phi3v_train.evaluation.evaluate import (
    evaluate_records,
    label_set,
    positive_index,
    resolve_metrics,
    subsample_indices,
)


def record(rid: str, source: str, answer: str, *, images: list[str] | None = None, **metadata) -> Record:
    turn = {"user": f"question {rid}?", "assistant": answer, "images": images or []}
    return Record.model_validate({"id": rid, "source": source, "conversations": [turn], "metadata": metadata or None})


@pytest.fixture
def fixed_model(monkeypatch, processor):
    """Patches generation and scoring to answer from dicts keyed by record id (read back from the prompt)."""
    answers: dict[str, str] = {}
    scores: dict[str, list[float]] = {}
    seen: list = []

    def record_id(prompt) -> str:
        return re.findall(r"question (\w+)\?", processor.tokenizer.decode([i for i in prompt.input_ids if i >= 0]))[-1]

    def fake_generate(model, tokenizer, prompts, *, batch_size, max_new_tokens, on_batch=None):
        seen.extend(prompts)
        return [answers[record_id(p)] for p in prompts]

    def fake_score(model, prompt, candidates, *, pad_id, chunk_size):
        return scores[record_id(prompt)]

    monkeypatch.setattr(evaluate_module, "generate_answers", fake_generate)
    monkeypatch.setattr(evaluate_module, "score_candidates", fake_score)
    return answers, scores, seen


def test_resolve_metrics() -> None:
    assert resolve_metrics("auto", ["docvqa"]) == ("anls",)
    assert resolve_metrics("auto", ["hateful_memes"]) == ("auroc", "accuracy", "f1")
    assert resolve_metrics("auto", ["ucf101", "nlvr2"]) == ("accuracy",)
    assert resolve_metrics("auto", ["custom"]) == ("accuracy",)
    assert resolve_metrics("auto", ["ucf101", "docvqa"]) == ("anls", "accuracy")
    assert resolve_metrics("auroc", ["ucf101"]) == ("auroc", "f1", "accuracy")
    assert resolve_metrics("anls", ["ucf101"]) == ("anls",)
    with pytest.raises(ConfigError, match="unknown metric"):
        resolve_metrics("bleu", ["x"])


def test_label_set_and_positive_class() -> None:
    records = [record("1", "s", "yes"), record("2", "s", "No"), record("3", "s", "Yes."), record("4", "s", "no")]
    assert label_set(records, None) == ["No", "yes"]
    assert label_set(records, ["yes", "no"]) == ["yes", "no"]
    assert positive_index(["No", "yes"]) == 1
    assert positive_index(["True", "False"]) == 0
    assert positive_index(["cat", "dog"]) == 1
    many = [record(str(i), "s", f"answer {i}") for i in range(129)]
    with pytest.raises(ConfigError, match="129 distinct answers"):
        label_set(many, None)


def test_subsample_indices() -> None:
    sample = subsample_indices(50, 5, seed=3)
    assert sample == sorted(sample) and len(set(sample)) == 5 and all(0 <= i < 50 for i in sample)
    assert subsample_indices(50, 5, seed=3) == sample
    assert subsample_indices(50, 5, seed=4) != sample
    assert subsample_indices(4, 10, seed=0) == [0, 1, 2, 3]
    assert subsample_indices(4, None, seed=0) == [0, 1, 2, 3]


def test_hateful_memes_auroc_f1_accuracy(tiny_model, processor, fixed_model, tmp_path, solid) -> None:
    answers, scores, _ = fixed_model
    (tmp_path / "img").mkdir()
    solid("red").save(tmp_path / "img" / "m1.png")
    records = [
        record("m1", "hateful_memes", "yes", images=["img/m1.png"], label=1),
        record("m2", "hateful_memes", "no", label=0),
        record("m3", "hateful_memes", "yes", label=1),
        record("m4", "hateful_memes", "no", label=0),
    ]
    p_yes = {"m1": 0.8, "m2": 0.4, "m3": 0.35, "m4": 0.1}
    for rid, p in p_yes.items():
        scores[rid] = [math.log(1 - p), math.log(p)]  # label order: ["no", "yes"]
    answers.update({"m1": " Yes.", "m2": "no", "m3": "no", "m4": "No"})
    result = evaluate_records(tiny_model, processor, records, image_root=tmp_path)
    summary = result.summary
    assert summary["metrics"] == ["auroc", "accuracy", "f1"]
    assert summary["accuracy"] == 0.75
    # positives 0.8, 0.35 vs negatives 0.4, 0.1: 3 of 4 pairs ordered
    assert summary["auroc"] == pytest.approx(0.75)
    # argmax labels: yes, no, no, no -> tp 1, predicted yes 1, actual yes 2
    assert summary["f1"] == pytest.approx(2 / 3)
    assert summary["confusion_matrix"] == {"labels": ["no", "yes"], "matrix": [[2, 0], [1, 1]]}
    assert summary["positive_label"] == "yes"
    assert summary["num_records"] == 4
    first = result.predictions[0]
    assert list(first) == ["id", "source", "prediction", "reference", "score", "correct", "label_probs"]
    assert first["prediction"] == " Yes." and first["reference"] == "yes" and first["score"] == 1.0
    assert first["label_probs"] == pytest.approx({"no": 0.2, "yes": 0.8})
    assert [p["correct"] for p in result.predictions] == [True, True, False, True]


def test_docvqa_anls_uses_metadata_answers(tiny_model, processor, fixed_model) -> None:
    answers, _, _ = fixed_model
    records = [
        record("d1", "docvqa", "1984", answers=["1984", "the year 1984"]),
        record("d2", "docvqa", "Paris"),
    ]
    answers.update({"d1": "1985", "d2": "paris."})
    result = evaluate_records(tiny_model, processor, records, image_root=".")
    assert result.summary["metrics"] == ["anls"]
    assert result.summary["anls_definition"] == "standard"
    # standard: "paris." vs "paris" is 1 edit over 6 characters
    assert result.summary["anls"] == pytest.approx((0.75 + 5 / 6) / 2)
    assert "accuracy" not in result.summary and "auroc" not in result.summary
    assert [p["score"] for p in result.predictions] == pytest.approx([0.75, 5 / 6])
    assert result.predictions[0]["answers"] == ["1984", "the year 1984"]
    assert result.predictions[1]["answers"] == ["Paris"]
    # recipe: the dot goes, the case stays: "paris" vs "Paris" is 1 edit over 5
    recipe = evaluate_records(tiny_model, processor, records, image_root=".", anls="recipe")
    assert recipe.summary["anls_definition"] == "recipe"
    assert [p["score"] for p in recipe.predictions] == pytest.approx([0.75, 0.8])
    with pytest.raises(ConfigError, match="standard, recipe"):
        evaluate_records(tiny_model, processor, records, image_root=".", anls="lmms")


def test_constrained_answers_are_the_most_probable_label(tiny_model, processor, fixed_model) -> None:
    _, scores, seen = fixed_model
    records = [
        record("u1", "ucf101", "Archery"),
        record("u2", "ucf101", "Basketball"),
        record("u3", "ucf101", "Basketball"),
    ]
    # label order: Archery, Basketball
    scores.update({"u1": [-0.1, -3.0], "u2": [-2.0, -0.5], "u3": [-0.2, -4.0]})
    result = evaluate_records(tiny_model, processor, records, image_root=".", constrained=True)
    assert [p["prediction"] for p in result.predictions] == ["Archery", "Basketball", "Archery"]
    assert result.summary["accuracy"] == pytest.approx(2 / 3)
    assert result.summary["metrics"] == ["accuracy"]
    assert seen == []  # nothing generated


def test_limit_evaluates_a_seeded_sample(tiny_model, processor, fixed_model) -> None:
    answers, _, _ = fixed_model
    records = [record(f"r{i}", "ucf101", "A") for i in range(6)]
    answers.update({f"r{i}": "A" if i % 2 else "B" for i in range(6)})
    result = evaluate_records(tiny_model, processor, records, image_root=".", limit=3, seed=1)
    chosen = subsample_indices(6, 3, seed=1)
    assert [p["id"] for p in result.predictions] == [f"r{i}" for i in chosen]
    assert result.summary["accuracy"] == pytest.approx(sum(i % 2 for i in chosen) / 3)
    assert result.summary["num_records"] == 3 and result.summary["num_available"] == 6


def test_multi_turn_record_is_evaluated_on_its_last_turn(tiny_model, processor, fixed_model) -> None:
    answers, _, seen = fixed_model
    multi = Record.model_validate(
        {
            "id": "t",
            "source": "custom",
            "conversations": [
                {"user": "first?", "assistant": "FIRST"},
                {"user": "question t?", "assistant": "second"},
            ],
        }
    )
    answers["t"] = "second"
    result = evaluate_records(tiny_model, processor, [multi], image_root=".")
    assert result.predictions[0]["reference"] == "second" and result.summary["accuracy"] == 1.0
    expected = processor.encode_conversation(multi.conversations, [], for_generation=True).input_ids
    assert seen[0].input_ids == expected
    assert "FIRST" in processor.tokenizer.decode(expected)
    assert expected[-1] == 32001  # ends with <|assistant|>: the prompt of the last answer


def test_reference_outside_the_labels_is_an_error(tiny_model, processor, fixed_model) -> None:
    answers, scores, _ = fixed_model
    records = [record("x1", "hateful_memes", "maybe")]
    scores["x1"] = [-1.0, -1.0]
    answers["x1"] = "maybe"
    with pytest.raises(ConfigError, match="'maybe' is not in the label set"):
        evaluate_records(tiny_model, processor, records, image_root=".", labels=["no", "yes"])


def test_training_mode_is_restored(tiny_model, processor, fixed_model) -> None:
    answers, _, _ = fixed_model
    answers["r"] = "x"
    tiny_model.train()
    try:
        evaluate_records(tiny_model, processor, [record("r", "custom", "x")], image_root=".")
        assert tiny_model.training
    finally:
        tiny_model.eval()


def test_missing_and_unsafe_images_name_the_record(tmp_path) -> None:
    with pytest.raises(DataError, match=r"record 'm': cannot read image .*gone\.png"):
        load_images(record("m", "custom", "x", images=["gone.png"]), tmp_path)
    with pytest.raises(DataError, match=r"record 'u': unsafe image path '\.\./up\.png'"):
        load_images(record("u", "custom", "x", images=["../up.png"]), tmp_path)


def test_load_records_reports_the_bad_line(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "source": "s", "conversations": [{"user": "q", "assistant": "a"}]}\n{"id": 3}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        load_records(path)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="holds no records"):
        load_records(tmp_path / "empty.jsonl")
