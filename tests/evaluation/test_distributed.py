"""Under torch.distributed, each rank evaluates a strided shard and every rank gets the gathered result.

The two ranks run one after the other in this process, with the rank lookup and the all-gather
replaced; the gather returns the rows of both ranks in rank order, as ``all_gather_object`` does.
"""

from __future__ import annotations

from pathlib import Path

from phi3v_data.schema import Record
from phi3v_train.evaluation import evaluate as evaluate_module
from phi3v_train.evaluation import evaluate_records
from phi3v_train.evaluation.generation import equal_shard


def records() -> list[Record]:
    questions = ["Hi?", "What now?", "A longer question here?", "Why?", "Tell me more, please?"]
    return [
        Record.model_validate({"id": f"q{i}", "source": "custom", "conversations": [{"user": q, "assistant": "x"}]})
        for i, q in enumerate(questions)
    ]


def test_ranks_evaluate_strided_shards_and_share_the_gathered_result(tiny_model, processor, monkeypatch) -> None:
    single = evaluate_records(tiny_model, processor, records(), image_root=Path(), max_new_tokens=3)

    shards: dict[int, list[int]] = {}
    rows_of_rank: dict[int, list[dict]] = {}
    original = evaluate_module._predict_shard
    current = {"rank": 0}

    def recording(model, proc, shard, **kwargs):
        shards[current["rank"]] = [index for index, _ in shard]
        return original(model, proc, shard, **kwargs)

    def gather(rows, world_size):
        rows_of_rank[current["rank"]] = rows
        return [row for r in range(world_size) for row in rows_of_rank.get(r, [])]

    monkeypatch.setattr(evaluate_module, "_predict_shard", recording)
    monkeypatch.setattr(evaluate_module, "_distributed", lambda: (current["rank"], 2))
    monkeypatch.setattr(evaluate_module, "_gather", gather)
    results = []
    for rank in (1, 0):
        current["rank"] = rank
        results.append(evaluate_records(tiny_model, processor, records(), image_root=Path(), max_new_tokens=3))

    # equal shards (rank 1 repeats its first record), and the repeat is dropped before the gather
    assert shards == {0: [0, 2, 4], 1: [1, 3, 1]}
    assert {rank: [row["index"] for row in rows] for rank, rows in rows_of_rank.items()} == {0: [0, 2, 4], 1: [1, 3]}
    assert results[1].predictions == single.predictions
    assert results[1].summary == single.summary
    assert [p["id"] for p in single.predictions] == ["q0", "q1", "q2", "q3", "q4"]


def test_windows_and_batch_size_do_not_change_predictions(tiny_model, processor) -> None:
    """batch size 1 encodes 4 records per window (2 windows here); batch size 8 encodes all at once."""
    small = evaluate_records(tiny_model, processor, records(), image_root=Path(), max_new_tokens=3, batch_size=1)
    large = evaluate_records(tiny_model, processor, records(), image_root=Path(), max_new_tokens=3, batch_size=8)
    assert small.predictions == large.predictions
    assert len({p["prediction"] for p in large.predictions}) == 5


def test_equal_shards_pad_with_repeats():
    assert [equal_shard(list("abcde"), rank, 2) for rank in (0, 1)] == [(list("ace"), 0), (list("bdb"), 1)]
    assert [equal_shard(["a"], rank, 3) for rank in (0, 1, 2)] == [(["a"], 0), (["a"], 1), (["a"], 1)]
    assert equal_shard(list("abcd"), 1, 2) == (list("bd"), 0)
    assert equal_shard([], 0, 2) == ([], 0)
