"""Which distributed engine a run uses, set up before the Trainer and read back from it afterwards.

* DeepSpeed: ``deepspeed.init_distributed`` must run before ``TrainingArguments``. On CPU the Trainer
  otherwise builds a plain gloo group that DeepSpeed cannot see, and ``zero.Init`` counts one process
  ("train_batch_size 2 != 1 * 1 * 1").
* FSDP: accelerate never turns a CPU run into FSDP (it stays ``MULTI_CPU``, i.e. DDP), so ``--fsdp``
  without a GPU is refused instead of silently running DDP.
* The engine recorded in ``train_results.json`` is the one the Trainer's accelerator state reports, and
  a run that asked for DeepSpeed or FSDP but did not get it stops before the first step.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from phi3v_train.errors import ConfigError, MissingDependencyError
from phi3v_train.training.config import TrainConfig

logger = logging.getLogger("phi3v_train")

ENGINES = ("none", "ddp", "deepspeed", "fsdp")


def launched_ranks() -> int:
    """The process count the launcher (torchrun, deepspeed, accelerate) reports; 1 without one."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def prepare_distributed(config: TrainConfig) -> None:
    """Refuses what cannot run here and starts DeepSpeed's communication backend when it is asked for.

    Raises:
        ConfigError: ``--fsdp`` without a GPU.
        MissingDependencyError: ``--deepspeed`` without the deepspeed package.
    """
    if config.fsdp is not None and not torch.cuda.is_available():
        raise ConfigError(
            "--fsdp needs GPUs: accelerate does not run FSDP on CPU and the run would silently train as DDP; "
            "on CPU use --deepspeed zero2/zero3 (gloo) or no sharding"
        )
    if config.deepspeed is None or launched_ranks() == 1:
        return
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    try:
        import deepspeed
    except ImportError as exc:
        raise MissingDependencyError("--deepspeed needs deepspeed: pip install 'phi3v[deepspeed]'") from exc
    deepspeed.init_distributed(dist_backend=None if torch.cuda.is_available() else "gloo", auto_mpi_discovery=False)


def engine_of(accelerator: Any) -> dict[str, Any]:
    """``{"engine", "zero_stage", "world_size"}`` of an accelerate ``Accelerator`` (the Trainer's)."""
    from accelerate.utils import DistributedType

    state = accelerator.state
    kind = state.distributed_type
    zero_stage = None
    if kind == DistributedType.DEEPSPEED:
        engine = "deepspeed"
        zero_stage = int(state.deepspeed_plugin.zero_stage)
    elif kind == DistributedType.FSDP:
        engine = "fsdp"
    elif kind == DistributedType.NO:
        engine = "none"
    else:
        engine = "ddp"
    return {"engine": engine, "zero_stage": zero_stage, "world_size": int(accelerator.num_processes)}


def check_engine(config: TrainConfig, engine: dict[str, Any]) -> None:
    """The engine the Trainer set up is the one the run asked for.

    Raises:
        ConfigError: ``--deepspeed``/``--fsdp`` given, and the Trainer runs something else.
    """
    wanted = "deepspeed" if config.deepspeed is not None else "fsdp" if config.fsdp is not None else None
    if wanted is not None and engine["engine"] != wanted:
        flag = f"--deepspeed {config.deepspeed}" if wanted == "deepspeed" else f"--fsdp {config.fsdp!r}"
        raise ConfigError(
            f"{flag} was given but the Trainer set up {engine['engine']!r} on {engine['world_size']} process(es); "
            "launch with torchrun (or accelerate/deepspeed) so that every rank starts the same run"
        )


def describe(engine: dict[str, Any]) -> str:
    """One line for the start of a run, e.g. ``engine: deepspeed ZeRO-3 on 2 processes``."""
    stage = f" ZeRO-{engine['zero_stage']}" if engine["zero_stage"] is not None else ""
    return f"engine: {engine['engine']}{stage} on {engine['world_size']} process(es)"
