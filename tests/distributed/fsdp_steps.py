"""Test-only launcher for real FSDP2 on CPU: ``torchrun --nproc_per_node 2 fsdp_steps.py SPEC.json``.

accelerate never enables FSDP on CPU, so this applies ``torch.distributed.fsdp.fully_shard`` itself: per
decoder layer and per CLIP layer, then the root, on ``init_device_mesh("cpu", (2,))``. Everything else
is the project's: the run config (``load_config``), the model and its mode (``build_model_for_run``),
the data (``prepare_data`` + the collator), the vision guard, the loss (the model's, with the Trainer's
token averaging over ranks), and the Trainer's AdamW, schedule and clipping settings. Each step rank
``r`` trains on record ``r``, so every step sees the whole two-record file, as the Trainer's DDP run does.

Writes ``rank<R>.json`` into the spec's ``out``: per run the losses, the shards seen after step 1 and,
with ``eval_metric``, the generation eval of the trained, still sharded model.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from transformers import Trainer, get_scheduler

from phi3v_train.data.collator import Phi3VDataCollator
from phi3v_train.data.prepare import prepare_data
from phi3v_train.loading import load_processor
from phi3v_train.training.config import load_config
from phi3v_train.training.trainer import _eval_metrics, build_model_for_run, training_arguments
from phi3v_train.training.vision_guard import find_phi3v, set_vision_every_forward

PROBED = ("model.layers.0.mlp.down_proj.weight", "model.embed_tokens.weight")


def shard(model: torch.nn.Module, mesh: Any) -> None:
    inner = find_phi3v(model)
    for layer in inner.model.layers:
        fully_shard(layer, mesh=mesh)
    for layer in inner.model.vision_embed_tokens.img_processor.vision_model.encoder.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)


def probe(model: torch.nn.Module) -> dict[str, Any]:
    seen = {}
    for name, parameter in model.named_parameters():
        name = name.replace(".base_layer", "")
        for wanted in PROBED:
            if name.endswith(wanted) and "lora_" not in name and "modules_to_save" not in name:
                seen[wanted] = {
                    "dtensor": isinstance(parameter, DTensor),
                    "global_shape": list(parameter.shape),
                    "local_shape": list(parameter.to_local().shape) if isinstance(parameter, DTensor) else None,
                }
    return seen


def run(overrides: dict[str, Any], rank: int, world: int, mesh: Any) -> dict[str, Any]:
    config = load_config(None, overrides)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    args = training_arguments(config, "fp32", 1, False)
    processor = load_processor(config.model, num_crops=config.num_crops)
    prepared = prepare_data(config.train_files, config.eval_files, processor)
    model = build_model_for_run(config, "fp32", rank == 0)
    set_vision_every_forward(model, config.vision_every_step != "never")
    model.train()
    shard(model, mesh)

    decay = set(Trainer.get_decay_parameter_names(None, model))
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    groups = [
        {"params": [p for n, p in trainable if n in decay], "weight_decay": args.weight_decay},
        {"params": [p for n, p in trainable if n not in decay], "weight_decay": 0.0},
    ]
    optimizer = optimizer_cls(groups, **optimizer_kwargs)
    scheduler = get_scheduler(
        args.lr_scheduler_type,
        optimizer,
        num_warmup_steps=args.get_warmup_steps(config.max_steps),
        num_training_steps=config.max_steps,
    )
    collator = Phi3VDataCollator(pad_token_id=processor.tokenizer.pad_token_id)
    batch = collator([prepared.train[rank]])
    tokens = batch["labels"][..., 1:].ne(-100).sum()
    total = tokens.clone()
    dist.all_reduce(total)
    losses, shards = [], {}
    for step in range(1, config.max_steps + 1):
        loss = model(**batch, num_items_in_batch=total).loss * world
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        logged = loss.detach().clone()
        dist.all_reduce(logged)
        losses.append([step, logged.item() / world])
        if step == 1:
            shards = probe(model)
    # the project's generation eval on the sharded model: equal shards, synced_gpus, dummy images
    metrics = _eval_metrics(config, model, processor, prepared.eval_records) if config.eval_metric else None
    return {"losses": losses, "probe": shards, "eval_metrics": metrics}


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    results = {entry["name"]: run(entry["config"], rank, world, mesh) for entry in spec["runs"]}
    Path(spec["out"], f"rank{rank}.json").write_text(json.dumps(results, indent=1))
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("PHI3V_DISABLE_PROGRESS_BARS", "1")
    main(sys.argv[1])
