"""`phi3v-data preview FILE --out preview.html`: one self-contained HTML page to look at a record file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from phi3v_data.cli.options import ImageRootOption, TokenizerOption
from phi3v_data.preview import DEFAULT_LIMIT, PAGE_SIZE, THUMBNAIL_PX, write_preview


def preview(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="JSONL record file."),
    out: Path = typer.Option(..., "--out", "-o", dir_okay=False, help="The HTML file to write."),
    limit: int = typer.Option(DEFAULT_LIMIT, "--limit", min=1, help="Records shown in the grid (a sample)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample when the file has more than --limit records."),
    num_crops: int = typer.Option(16, "--num-crops", min=1, help="HD crops per image for the token-length histogram."),
    image_root: ImageRootOption = None,
    tokenizer: TokenizerOption = None,
) -> None:
    """Write one HTML page (no server, no network) showing the records per source, split and answer, the class
    balance, a histogram of token lengths, the validator's problems linked to their records, and a grid of
    records ({page_size} a page) with {thumbnail_px} px thumbnails, user texts and answers.

    Counts, lengths and problems cover the whole file; the grid shows --limit records sampled with --seed.
    The same file and options give the same bytes.

    Examples:

      phi3v-data preview data/hateful_memes/hateful_memes_dev_seen.jsonl --out preview.html

      phi3v-data preview data/ucf101/ucf101_train.jsonl --out ucf.html --limit 96 --seed 1 --num-crops 4
    """
    summary = write_preview(
        file, out, image_root=image_root, limit=limit, seed=seed, num_crops=num_crops, tokenizer=tokenizer
    )
    Console(highlight=False, soft_wrap=True).print(
        f"Wrote {escape(str(out))}: {summary.shown:,} of {summary.records:,} records on {summary.pages:,} pages, "
        f"{summary.measured:,} measured, {summary.errors:,} errors, {summary.warnings:,} warnings."
    )


preview.__doc__ = (preview.__doc__ or "").format(page_size=PAGE_SIZE, thumbnail_px=THUMBNAIL_PX)


def register(app: typer.Typer) -> None:
    """Adds `preview` to `app`."""
    app.command()(preview)
