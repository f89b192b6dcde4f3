"""`phi3v-data validate`: checks record files and prints a summary table or one JSON report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from phi3v_data.cli.options import ImageRootOption, OutputFormat, TokenizerOption
from phi3v_data.io import progress_disabled
from phi3v_data.leakage import find_leakage
from phi3v_data.validate import FIXES, ValidationReport, validate_files

SHOWN_PROBLEMS = 20


def print_report(report: ValidationReport, console: Console) -> None:
    """The rich summary: counts by code with their fix, then the first problems with file:line."""
    counts = report.counts_by_code()
    if counts:
        severities = {problem.code: problem.severity for problem in report.problems}
        table = Table(title="Problems by code", title_justify="left")
        table.add_column("code")
        table.add_column("severity")
        table.add_column("count", justify="right")
        table.add_column("fix")
        for code, count in counts.items():
            table.add_row(code, severities[code], f"{count:,}", FIXES.get(code, ""))
        console.print(table)
        shown = report.problems[:SHOWN_PROBLEMS]
        console.print(f"\n[bold]First {len(shown)} of {len(report.problems):,} problems[/]")
        for problem in shown:
            colour = "red" if problem.severity == "error" else "yellow"
            record = f" id={escape(problem.id)}" if problem.id is not None else ""
            console.print(
                f"{escape(problem.file)}:{problem.line}{record} [{colour}]{problem.code}[/]: {escape(problem.message)}",
                soft_wrap=True,
            )
    verdict = "[green]OK[/]" if report.ok else "[red]FAILED[/]"
    console.print(
        f"\n{verdict} {report.records:,} records, {report.valid:,} valid, "
        f"{report.errors:,} errors, {report.warnings:,} warnings"
    )


def validate(
    files: list[Path] = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="JSONL record files to check."
    ),
    image_root: ImageRootOption = None,
    num_crops: int = typer.Option(16, "--num-crops", min=1, help="HD crops per image, for image-token counts."),
    max_length: int | None = typer.Option(
        None, "--max-length", min=1, help="Report records longer than this many tokens (text + images) as too_long."
    ),
    tokenizer: TokenizerOption = None,
    no_check_images: bool = typer.Option(
        False, "--no-check-images", help="Skip image files: no missing/corrupt checks, no length check for images."
    ),
    deep: bool = typer.Option(False, "--deep", help="Decode every image fully instead of reading its header only."),
    strict: bool = typer.Option(False, "--strict", help="Count warnings (unknown keys) as errors."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.text, "--format", help="text: summary table; json: one JSON object on stdout."
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes for image checks."),
    write_valid: Path | None = typer.Option(
        None, "--write-valid", dir_okay=False, help="Write the records without errors to this JSONL file, atomically."
    ),
    against: list[Path] = typer.Option(
        [],
        "--against",
        exists=True,
        dir_okay=False,
        help="Train file(s): report images (by content) and UCF-101 "
        "video groups that FILES share with them, as errors.",
    ),
) -> None:
    """Check record files: JSON, schema, unique ids, safe image paths, image files, image tags, length.

    Exit status: 0 without errors (warnings allowed unless --strict), 1 with errors, 2 on usage errors.

    Examples:

      phi3v-data validate data/ucf101/ucf101_train.jsonl

      phi3v-data validate data/docvqa/*.jsonl --max-length 4096 --num-crops 4 --workers 4

      phi3v-data validate train.jsonl --format json --write-valid train.clean.jsonl

      phi3v-data validate data/ucf101/ucf101_test.jsonl --against data/ucf101/ucf101_train.jsonl
    """
    report = validate_files(
        files,
        image_root=image_root,
        num_crops=num_crops,
        max_length=max_length,
        tokenizer=tokenizer,
        check_images=not no_check_images,
        deep=deep,
        strict=strict,
        workers=workers,
        write_valid=write_valid,
        progress=not progress_disabled(),
    )
    notes = Console(stderr=True, highlight=False)
    if no_check_images and max_length is not None:
        notes.print("[dim]Note: --no-check-images: records with images were not length-checked.[/]")
    if output_format is OutputFormat.json:
        typer.echo(report.to_json())
    else:
        print_report(report, Console(highlight=False))
    if write_valid is not None:
        notes.print(f"Wrote {report.valid:,} valid records to {escape(str(write_valid))}")
    leaks = find_leakage(files, against, image_root) if against else []
    for leak in leaks:
        notes.print(
            f"{escape(leak.file)}:{leak.line} ({escape(leak.id)}): {leak.kind} {escape(leak.what)} "
            f"is also in {escape(leak.train)}"
        )
    if against:
        notes.print(f"{len(leaks):,} overlap(s) with {', '.join(escape(str(p)) for p in against)}")
    if not report.ok or leaks:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Adds `validate` to `app`."""
    app.command()(validate)
