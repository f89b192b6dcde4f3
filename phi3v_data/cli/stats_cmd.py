"""`phi3v-data stats`: sources, images, token lengths and class balance of a record file, and a num_crops suggestion."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from phi3v_data.cli.options import ImageRootOption, OutputFormat, TokenizerOption
from phi3v_data.io import progress_disabled
from phi3v_data.stats import DatasetStats, compute_stats, plot_histogram
from phi3v_data.token_count import NUM_CROPS_CHOICES

SHOWN_LABELS = 30


def _counts_table(title: str, header: str, counts: dict, total: int) -> Table:
    table = Table(title=title, title_justify="left", min_width=len(title) + 4)
    table.add_column(header)
    table.add_column("records", justify="right")
    table.add_column("share", justify="right")
    for key, count in counts.items():
        table.add_row(escape(str(key)), f"{count:,}", f"{count / total:.1%}")
    return table


def print_stats(stats: DatasetStats, console: Console) -> None:
    parsed = stats.records - stats.invalid_lines
    console.print(f"[bold]{escape(stats.file)}[/]: {stats.records:,} records")
    if stats.invalid_lines:
        skipped = f"{stats.invalid_lines:,} lines do not parse and are skipped"
        console.print(f"[yellow]{skipped} (run `phi3v-data validate` for details).[/]")
    if stats.unmeasured:
        console.print(f"[yellow]{stats.unmeasured:,} records have a bad image or bad tags; their length is unknown.[/]")
    if parsed:
        console.print(_counts_table("Records per source", "source", stats.sources, parsed))
        console.print(_counts_table("Images per record", "images", stats.images_per_record, parsed))
    if stats.by_num_crops:
        table = Table(title=f"Tokens per record (text tokens: {stats.text_tokens})", title_justify="left")
        for column in ("num_crops", "p50", "p90", "p99", "max"):
            table.add_column(column, justify="right")
        if stats.max_length is not None:
            table.add_column(f"over {stats.max_length:,}", justify="right")
        for summary in stats.by_num_crops:
            row = [str(summary.num_crops), *(f"{v:,}" for v in (summary.p50, summary.p90, summary.p99, summary.max))]
            if summary.within is not None:
                row.append(f"{1 - summary.within:.2%}")
            style = "bold" if summary.num_crops == stats.num_crops else None
            table.add_row(*row, style=style)
        console.print(table)
    if stats.max_length is not None and stats.by_num_crops:
        if stats.suggested_num_crops is None:
            console.print(
                f"No num_crops keeps {stats.coverage:.0%} of the records within {stats.max_length:,} tokens: "
                "raise --max-length or shorten the texts."
            )
        else:
            console.print(
                f"Suggested num_crops: [bold]{stats.suggested_num_crops}[/] (the largest that keeps "
                f"{stats.coverage:.0%} of the records within {stats.max_length:,} tokens)."
            )
    if stats.labels is not None:
        shown = dict(list(stats.labels.items())[:SHOWN_LABELS])
        title = f"Answers of the last turn ({len(stats.labels)} distinct)"
        console.print(_counts_table(title, "answer", shown, parsed))
    for balance in stats.class_balance:
        title = f"Class balance of {balance.source} ({balance.records:,} records)"
        console.print(_counts_table(title, "label", balance.counts, balance.records))


def stats(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="JSONL record file."),
    image_root: ImageRootOption = None,
    num_crops: int = typer.Option(16, "--num-crops", min=1, help="HD crops per image for the main token figures."),
    max_length: int | None = typer.Option(
        None, "--max-length", min=1, help="Report the share of records over this length and suggest a num_crops."
    ),
    coverage: float = typer.Option(
        0.99, "--coverage", min=0.0, max=1.0, help="Share of records the suggested num_crops must keep in max_length."
    ),
    tokenizer: TokenizerOption = None,
    workers: int = typer.Option(1, "--workers", min=1, help="Processes for reading image headers."),
    plot: Path | None = typer.Option(
        None, "--plot", dir_okay=False, help="Write a PNG histogram of token lengths here (needs matplotlib)."
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.text, "--format", help="text: tables; json: one JSON object on stdout."
    ),
) -> None:
    """Records per source, images per record, token lengths (p50/p90/p99/max), a num_crops suggestion, and the
    class balance of classification sets (per source: count and share of each label).

    Lengths are counted for num_crops in {choices} from image headers, as in `validate --max-length`.

    Examples:

      phi3v-data stats data/ucf101/ucf101_train.jsonl --num-crops 4

      phi3v-data stats data/docvqa/docvqa_train.jsonl --max-length 4096 --plot lengths.png
    """
    result, lengths = compute_stats(
        file,
        image_root=image_root,
        num_crops=num_crops,
        max_length=max_length,
        tokenizer=tokenizer,
        coverage=coverage,
        workers=workers,
        progress=not progress_disabled(),
    )
    if output_format is OutputFormat.json:
        typer.echo(result.model_dump_json())
    else:
        print_stats(result, Console(highlight=False))
    if plot is not None:
        if len(lengths) == 0:
            Console(stderr=True).print("[yellow]No measured records: no histogram written.[/]")
        else:
            plot_histogram(lengths, plot, num_crops=num_crops, max_length=max_length)


stats.__doc__ = (stats.__doc__ or "").replace("{choices}", ", ".join(map(str, NUM_CROPS_CHOICES)))


def register(app: typer.Typer) -> None:
    """Adds `stats` to `app`."""
    app.command()(stats)
