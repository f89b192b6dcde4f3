"""Distribution options without launching: what QLoRA accepts, and the engine read from the accelerator state."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from accelerate.utils import DistributedType

from phi3v_train.errors import ConfigError
from phi3v_train.training.distributed import check_engine, describe, engine_of


def accelerator(kind: DistributedType, processes: int, stage: int | None = None) -> SimpleNamespace:
    plugin = SimpleNamespace(zero_stage=stage)
    return SimpleNamespace(
        state=SimpleNamespace(distributed_type=kind, deepspeed_plugin=plugin), num_processes=processes
    )


def test_qlora_runs_with_zero2(colour_data, tmp_path, make_config):
    assert make_config(colour_data, tmp_path / "o", mode="qlora", deepspeed="zero2").deepspeed == "zero2"


@pytest.mark.parametrize("options", [{"deepspeed": "zero3"}, {"fsdp": "full_shard"}])
def test_qlora_is_refused_where_4bit_weights_would_be_sharded(colour_data, tmp_path, make_config, options):
    with pytest.raises(ConfigError, match=r"mode qlora: not with FSDP or ZeRO-3.*use --deepspeed zero2 or plain DDP"):
        make_config(colour_data, tmp_path / "o", mode="qlora", **options)


def test_qlora_reads_the_stage_of_a_deepspeed_file(colour_data, tmp_path, make_config):
    stage3 = tmp_path / "ds.json"
    stage3.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    with pytest.raises(ConfigError, match="mode qlora: not with FSDP or ZeRO-3"):
        make_config(colour_data, tmp_path / "o", mode="qlora", deepspeed=str(stage3))


def test_the_engine_comes_from_the_accelerator_state():
    assert engine_of(accelerator(DistributedType.NO, 1)) == {"engine": "none", "zero_stage": None, "world_size": 1}
    assert engine_of(accelerator(DistributedType.MULTI_CPU, 2)) == {
        "engine": "ddp",
        "zero_stage": None,
        "world_size": 2,
    }
    assert engine_of(accelerator(DistributedType.MULTI_GPU, 8)) == {
        "engine": "ddp",
        "zero_stage": None,
        "world_size": 8,
    }
    zero3 = engine_of(accelerator(DistributedType.DEEPSPEED, 2, stage=3))
    assert zero3 == {"engine": "deepspeed", "zero_stage": 3, "world_size": 2}
    assert engine_of(accelerator(DistributedType.FSDP, 4)) == {"engine": "fsdp", "zero_stage": None, "world_size": 4}
    assert describe(zero3) == "engine: deepspeed ZeRO-3 on 2 process(es)"


def test_a_run_that_did_not_get_its_engine_stops(colour_data, tmp_path, make_config):
    ddp = {"engine": "ddp", "zero_stage": None, "world_size": 2}
    with pytest.raises(ConfigError, match=r"--deepspeed zero3 was given but the Trainer set up 'ddp' on 2 process"):
        check_engine(make_config(colour_data, tmp_path / "o", deepspeed="zero3"), ddp)
    check_engine(make_config(colour_data, tmp_path / "o"), ddp)
