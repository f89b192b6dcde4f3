"""The training modes: what is frozen, what gets LoRA adapters, what trains in full.

Parameter groups (by hub key name):

* ``vision``: the CLIP tower, ``model.vision_embed_tokens.img_processor``;
* ``projector``: ``model.vision_embed_tokens.img_projection`` (Linear, GELU, Linear);
* ``separators``: ``glb_GN`` and ``sub_GN``;
* ``embeddings``: ``model.embed_tokens`` (the hub's ``wte`` alias is the same matrix);
* ``llm``: the decoder layers, the final norm and ``lm_head``.

``full`` trains every group not named in ``--freeze``. ``lora``/``qlora`` freeze the base and put
adapters on the recipe's targets (language model plus, unless frozen, CLIP and projector);
``--also-train`` groups train in full beside the adapters and are saved with them (PEFT
``modules_to_save``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from phi3v_train.errors import ConfigError, MissingDependencyError
from phi3v_train.training.config import TrainConfig

LM_TARGETS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head")
VISION_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
PROJECTOR_TARGETS = ("img_projection.0", "img_projection.2")
# Full module paths from the model root: PEFT matches modules_to_save by raw suffix, so a bare
# "embed_tokens" would also copy "vision_embed_tokens", the whole vision stack.
MODULES_TO_SAVE = {"projector": "model.vision_embed_tokens.img_projection", "embeddings": "model.embed_tokens"}
REPORT_GROUPS = ("vision", "projector", "separators", "embeddings", "llm_layers", "lm_head")


def parameter_group(name: str) -> str:
    """The group of a parameter name (plain, or inside PEFT/DDP wrappers): one of REPORT_GROUPS."""
    if "vision_embed_tokens.img_processor." in name:
        return "vision"
    if "vision_embed_tokens.img_projection." in name:
        return "projector"
    if "vision_embed_tokens.glb_GN" in name or "vision_embed_tokens.sub_GN" in name:
        return "separators"
    if "embed_tokens." in name:
        return "embeddings"
    if "lm_head." in name:
        return "lm_head"
    return "llm_layers"


def freeze_group(group: str) -> str:
    """The ``--freeze`` name covering a report group (``llm`` covers the layers and ``lm_head``)."""
    return "llm" if group in ("llm_layers", "lm_head") else group


def apply_freeze(model: nn.Module, frozen: Iterable[str]) -> None:
    """Full mode: every parameter trains unless its group is frozen."""
    frozen = set(frozen)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(freeze_group(parameter_group(name)) not in frozen)


def lora_target_modules(config: TrainConfig) -> list[str]:
    """``--lora-targets``, or the recipe's targets minus the frozen groups and the fully trained projector."""
    if config.lora_targets:
        return list(config.lora_targets)
    frozen = set(config.frozen_groups)
    targets: list[str] = []
    if "llm" not in frozen:
        targets += LM_TARGETS
    if "vision" not in frozen:
        targets += VISION_TARGETS
    if "projector" not in frozen and "projector" not in config.also_train:
        targets += PROJECTOR_TARGETS
    if not targets:
        raise ConfigError("LoRA has no target module left: every group is frozen; pass --lora-targets")
    return targets


def lora_config(config: TrainConfig):
    """The PEFT ``LoraConfig`` of the run (gaussian init as the recipe)."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=lora_target_modules(config),
        modules_to_save=[MODULES_TO_SAVE[group] for group in config.also_train] or None,
        init_lora_weights="gaussian",
        use_dora=config.dora,
        use_rslora=config.rslora,
        task_type="CAUSAL_LM",
    )


def apply_mode(model: nn.Module, config: TrainConfig) -> nn.Module:
    """Freezes, or wraps with LoRA, as the config says; returns the model to train.

    QLoRA models must come quantized (see :func:`phi3v_train.loading.load_model_and_processor`);
    ``prepare_model_for_kbit_training`` is applied here with non-reentrant checkpointing. Trainable
    parameters are kept in fp32 (mixed precision runs through autocast).
    """
    if config.mode == "full":
        apply_freeze(model, config.frozen_groups)
    else:
        try:
            from peft import get_peft_model, prepare_model_for_kbit_training
        except ImportError as exc:
            raise MissingDependencyError("LoRA needs peft: pip install 'phi3v[train]'") from exc
        if config.mode == "qlora":
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=config.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        model = get_peft_model(model, lora_config(config))
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()
    if not any(parameter.requires_grad for parameter in model.parameters()):
        raise ConfigError("nothing to train: every parameter group is frozen")
    return model


def trainable_summary(model: nn.Module) -> dict[str, tuple[int, int]]:
    """Per report group: (trainable, total) parameter counts."""
    summary = {group: [0, 0] for group in REPORT_GROUPS}
    for name, parameter in model.named_parameters():
        counts = summary[parameter_group(name)]
        counts[1] += parameter.numel()
        if parameter.requires_grad:
            counts[0] += parameter.numel()
    return {group: (trainable, total) for group, (trainable, total) in summary.items()}
