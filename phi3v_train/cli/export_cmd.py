"""`phi3v-train export`: a standalone hub-layout checkpoint, LoRA merged, verified, optionally pushed."""

from __future__ import annotations

import enum
from pathlib import Path

import typer
from rich.console import Console

stdout = Console(highlight=False)


class DType(str, enum.Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


def export_command(
    model: str = typer.Option(..., "--model", help="Run output folder, checkpoint folder, hub id or preset name."),
    out: Path = typer.Option(..., "--out", file_okay=False, help="Folder to write the exported model into."),
    merge: bool = typer.Option(
        False, "--merge", help="Merge the LoRA/DoRA adapter and saved non-LoRA weights into the base weights."
    ),
    verify: bool = typer.Option(
        False, "--verify", help="Check that the export's logits match the source model's on a few samples."
    ),
    data: Path | None = typer.Option(
        None, "--data", exists=True, dir_okay=False, help="With --verify: records to compare on (default: synthetic)."
    ),
    num_samples: int = typer.Option(2, "--num-samples", min=1, help="With --verify and --data: records compared."),
    tolerance: float | None = typer.Option(
        None, "--tolerance", min=0.0, help="With --verify: largest allowed logit difference (default by dtype)."
    ),
    num_crops: int | None = typer.Option(
        None, "--num-crops", min=1, help="num_crops saved with the processor (default: the model's own)."
    ),
    dtype: DType = typer.Option(DType.auto, "--dtype", help="Weight dtype of the export (auto: as saved)."),
    push_to_hub: str | None = typer.Option(
        None, "--push-to-hub", help="Upload the export to this hub repo (needs network and a token)."
    ),
    private: bool = typer.Option(False, "--private", help="With --push-to-hub: create the repo private."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
) -> None:
    """Exports a model as a hub-layout safetensors checkpoint plus its processor.

    LoRA runs need --merge. Serve with the same num_crops the model was trained with.

    Examples:

      phi3v-train export --model runs/demo --out merged --merge --verify

      phi3v-train export --model runs/docvqa --out merged --merge --verify --data data/docvqa_val.jsonl

      phi3v-train export --model runs/docvqa --out merged --merge --push-to-hub me/phi35v-docvqa --private
    """
    import torch

    from phi3v_train.export import export_model

    result = export_model(
        model,
        out,
        merge=merge,
        verify=verify,
        push_to_hub=push_to_hub,
        private=private,
        data=data,
        num_samples=num_samples,
        num_crops=num_crops,
        dtype=None if dtype is DType.auto else getattr(torch, dtype.value),
        tolerance=tolerance,
        overwrite=overwrite,
    )
    stdout.print(
        f"exported {model} -> {result.out_dir} ({'merged, ' if result.merged else ''}num_crops {result.num_crops})"
    )
    if result.max_abs_diff is not None:
        stdout.print(f"verified: max logit difference {result.max_abs_diff:.3g} (tolerance {result.tolerance:g})")
    if result.hub_url is not None:
        stdout.print(f"pushed to {result.hub_url}")


def register(app: typer.Typer) -> None:
    """Adds `export` to `app`."""
    app.command("export")(export_command)
