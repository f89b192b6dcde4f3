"""`phi3v-data export FILE.jsonl --to llava|sharegpt|hf OUT`: records out to other toolkits' formats."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from phi3v_data.writers import export_records

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class ExportFormat(str, Enum):
    llava = "llava"
    sharegpt = "sharegpt"
    hf = "hf"


def export(
    jsonl: Path = typer.Argument(..., help="A `conversations` JSONL file (valid records; see `phi3v-data validate`)."),
    to: ExportFormat = typer.Option(..., "--to", help="llava: a JSON array; sharegpt: JSONL messages; hf: datasets."),
    out: Path = typer.Argument(..., help="Output folder."),
    image_root: Path | None = typer.Option(
        None, "--image-root", help="Where the records' image paths point (default: the images folder beside FILE)."
    ),
    copy_images: bool = typer.Option(
        False, "--copy-images", help="Copy the images into OUT/images/ (default: reference the originals)."
    ),
    parquet: bool = typer.Option(
        False, "--parquet", help="hf: parquet shards under OUT/data/ instead of save_to_disk."
    ),
    push_to_hub: str | None = typer.Option(None, "--push-to-hub", help="hf: push the dataset to this hub repo id."),
    split: str | None = typer.Option(None, "--split", help="hf: the split name (default: from FILE, x_val -> val)."),
) -> None:
    """Write the records for LLaVA, ms-swift / LLaMA-Factory, or as a Hugging Face dataset with an Image feature.
    `phi3v-data convert llava|sharegpt|hf` reads each back into the same records.

    Examples:

      phi3v-data export data/chartqa/chartqa_train.jsonl --to llava out/llava --copy-images

      phi3v-data export data/chartqa/chartqa_val.jsonl --to hf out/chartqa_hf --parquet
    """
    summary = export_records(
        jsonl,
        to.value,
        out,
        image_root=image_root,
        copy_images=copy_images,
        parquet=parquet,
        push_to_hub=push_to_hub,
        split=split,
    )
    where = ", ".join(escape(str(p)) for p in summary.written) or escape(str(push_to_hub))
    stderr.print(f"{summary.records:,} records ({summary.images:,} images) written as {to.value}: {where}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
