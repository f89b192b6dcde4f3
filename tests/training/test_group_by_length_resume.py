"""`--group-by-length`: a run resumed in the middle of its second epoch replays the batches of the straight run."""

from __future__ import annotations

import torch
from safetensors.torch import load_file
from stop_at_step import StopAt

from phi3v_train.data.prepare import prepare_data
from phi3v_train.model.tiny_tokenizer import tiny_processor
from phi3v_train.training.sampling import SeededLengthGroupedSampler

RECORDS = [{"id": f"r{letter}", "source": "t", "conversations": [{"user": f"Say {letter}.", "assistant": letter}]}
           for letter in "ABCD"]  # fmt: skip
OPTIONS = {"mode": "lora", "max_steps": 8, "save_steps": 6, "group_by_length": True, "learning_rate": 5e-3}


def test_epoch_order_is_a_function_of_seed_and_epoch():
    sampler = SeededLengthGroupedSampler(1, lengths=[5] * 6, seed=3)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) == list(range(6)) and second != first
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_resumed_grouped_run_equals_the_straight_one(tmp_path, write_jsonl, quick_run):
    data = write_jsonl(tmp_path, RECORDS)
    lengths = prepare_data([data], [], tiny_processor(num_crops=1)).train_lengths
    assert len(set(lengths)) == 1  # equal lengths: the order within an epoch comes from the shuffle alone
    straight = quick_run(data, tmp_path / "straight", **OPTIONS)
    first = quick_run(data, tmp_path / "resumed", [StopAt(6)], **OPTIONS)
    resumed = quick_run(data, tmp_path / "resumed", resume="latest", **OPTIONS)
    assert first.global_step == 6 and resumed.global_step == 8
    assert first.losses + resumed.losses == straight.losses
    expected = load_file(tmp_path / "straight" / "adapter_model.safetensors")
    actual = load_file(tmp_path / "resumed" / "adapter_model.safetensors")
    assert expected.keys() == actual.keys()
    assert all(torch.equal(value, actual[key]) for key, value in expected.items())
