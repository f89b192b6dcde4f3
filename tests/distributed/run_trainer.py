"""Test-only launcher: ``torchrun --nproc_per_node 2 run_trainer.py SPEC.json``.

Runs the project's ``train()`` once per entry of the spec's ``runs`` (``{"name", "config"}``, the config
as ``load_config`` overrides), in one process group, and writes ``rank<R>.json`` into the spec's
``out`` folder: per run the ``TrainResult`` plus what :class:`EngineProbe` saw inside the run. Entries
with ``"stop_at"`` stop after that step (a killed job, for resume tests).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from phi3v_train.training.config import load_config
from phi3v_train.training.trainer import train

PROBED = "model.embed_tokens.weight"


class EngineProbe(TrainerCallback):
    """After the first step: the local shape of the token embedding (ZeRO-3 frees it to ``(0,)``) and the
    optimizer's own view of the partitioned fp32 weights (ZeRO-1/2 hold ``1 / world`` of them per rank)."""

    def __init__(self, stop_at: int | None) -> None:
        self.stop_at = stop_at
        self.seen: dict[str, Any] = {}

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if state.global_step == 1:
            weight = next(p for n, p in model.named_parameters() if n.endswith(PROBED) and "modules_to_save" not in n)
            inner = getattr(optimizer, "optimizer", optimizer)
            partitions = getattr(inner, "single_partition_of_fp32_groups", None)
            self.seen = {
                "local_shape": list(weight.data.shape),
                "full_shape": list(getattr(weight, "ds_shape", weight.shape)),
                "optimizer": type(inner).__name__,
                "fp32_partition_numel": sum(p.numel() for p in partitions) if partitions is not None else None,
                "trainable_numel": sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel()
                                       for p in model.parameters() if p.requires_grad),
            }  # fmt: skip
        if self.stop_at is not None and state.global_step == self.stop_at:
            control.should_training_stop = True
        return control


def reset_between_runs() -> None:
    """accelerate's and transformers' process-wide DeepSpeed/accelerator state, so the next run starts clean."""
    from accelerate.state import AcceleratorState
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    AcceleratorState._reset_state(reset_partial_state=True)
    unset_hf_deepspeed_config()


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    rank = int(os.environ["RANK"])
    results: dict[str, Any] = {}
    for run in spec["runs"]:
        probe = EngineProbe(run.get("stop_at"))
        result = train(load_config(None, run["config"]), callbacks=[probe])
        entry: dict[str, Any] = {"result": asdict(result), "probe": probe.seen}
        results[run["name"]] = entry
        reset_between_runs()
    Path(spec["out"], f"rank{rank}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
