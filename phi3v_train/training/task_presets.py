"""Task presets (`--preset`): the recipe's published settings, and the freeze presets.

The numbers come from the recipe guide's result tables (SPEC section 1: DocVQA and Hateful Memes
per mode, NLVR2 full and frozen). Where the guide publishes nothing (NLVR2 LoRA/QLoRA, UCF-101),
the recipe scripts' own defaults apply: learning rate 4e-5, one epoch, rank 64, alpha 128.
Every table run used a batch of 64; UCF-101's script defaults to 16 and to 4 crops.
"""

from __future__ import annotations

from typing import Any

TASK_PRESETS = ("docvqa", "hateful-memes", "nlvr2", "ucf101")

# The recipe's "frozen image model": `vision_embed_tokens.requires_grad_(False)` froze the CLIP tower,
# the projector, the glb_GN/sub_GN separators and, through the `wte` alias, the token embeddings.
FROZEN_IMAGE_MODEL = ("vision", "projector", "separators", "embeddings")
FREEZE_ALIASES = {"image-model": FROZEN_IMAGE_MODEL}

SCRIPT_DEFAULTS: dict[str, Any] = {"learning_rate": 4e-5, "epochs": 1.0, "lora_rank": 64, "lora_alpha": 128}

# (task, kind) -> values; kind is "full", "frozen" (full with the image model frozen) or "lora" (LoRA and QLoRA).
_TABLE: dict[tuple[str, str], dict[str, Any]] = {
    ("docvqa", "full"): {"learning_rate": 5e-6, "epochs": 2.0},
    ("docvqa", "frozen"): {"learning_rate": 1e-4, "epochs": 2.0},
    ("docvqa", "lora"): {"learning_rate": 2e-4, "epochs": 2.0, "lora_rank": 32, "lora_alpha": 16},
    ("hateful-memes", "full"): {"learning_rate": 5e-5, "epochs": 2.0},
    ("hateful-memes", "frozen"): {"learning_rate": 1e-4, "epochs": 3.0},
    ("hateful-memes", "lora"): {"learning_rate": 2e-4, "epochs": 2.0, "lora_rank": 128, "lora_alpha": 256},
    ("nlvr2", "full"): {"learning_rate": 1e-5, "epochs": 3.0},
    ("nlvr2", "frozen"): {"learning_rate": 2e-5, "epochs": 2.0},
}

_TASK_SHAPE: dict[str, dict[str, Any]] = {
    "docvqa": {"num_crops": 16, "global_batch_size": 64},
    "hateful-memes": {"num_crops": 16, "global_batch_size": 64},
    "nlvr2": {"num_crops": 16, "global_batch_size": 64},
    "ucf101": {"num_crops": 4, "global_batch_size": 16},
}

# The random `tiny` model learns nothing at the recipe's 4e-5 within a demo's few dozen steps.
TINY_MODEL_DEFAULTS: dict[str, Any] = {"learning_rate": 1e-2, "warmup_steps": 4, "logging_steps": 5}


def expand_freeze(groups: list[str]) -> list[str]:
    """Replaces aliases (``image-model``) by their groups, keeping order and dropping repeats."""
    expanded: list[str] = []
    for group in groups:
        for name in FREEZE_ALIASES.get(group, (group,)):
            if name not in expanded:
                expanded.append(name)
    return expanded


def is_frozen_image_model(freeze: list[str]) -> bool:
    return set(FROZEN_IMAGE_MODEL) <= set(expand_freeze(freeze))


def task_preset(task: str, mode: str, freeze: list[str]) -> dict[str, Any]:
    """The values ``--preset task`` sets for this mode; `full` with the image model frozen is the "frozen" row."""
    if task not in TASK_PRESETS:
        raise KeyError(task)
    frozen = "frozen" if is_frozen_image_model(freeze) else "full"
    kind = "lora" if mode in ("lora", "qlora") else frozen
    values = {**SCRIPT_DEFAULTS, **_TASK_SHAPE[task], **_TABLE.get((task, kind), {})}
    if kind != "lora":
        del values["lora_rank"], values["lora_alpha"]
    return values
