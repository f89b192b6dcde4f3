"""`phi3v-train doctor`: versions, CUDA, bf16, flash-attn, bitsandbytes, and a 2-step smoke train."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

STATUS_STYLE = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def doctor(
    smoke: bool = typer.Option(
        True, "--smoke/--no-smoke", help="Run the 2-step tiny-model smoke train (~30 s on CPU)."
    ),
    show_ok: bool = typer.Option(False, "--all", help="List passing checks too, not only problems."),
) -> None:
    """Check that this machine can train, and print the fix for whatever is missing.

    Exits 1 when a check fails (a required package is missing, or the smoke train breaks).

    Examples:

      phi3v-train doctor

      phi3v-train doctor --no-smoke --all
    """
    from phi3v_train.training.doctor import run_checks

    console = Console(highlight=False)
    checks = run_checks(smoke=smoke)
    table = Table(title="phi3v-train doctor", title_justify="left")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column)
    for check in checks:
        if check.status != "ok" or show_ok:
            table.add_row(check.name, STATUS_STYLE[check.status], escape(check.detail), escape(check.fix))
    if table.row_count:
        console.print(table)
    failed = [check for check in checks if check.status == "fail"]
    warned = [check for check in checks if check.status == "warn"]
    passed = len(checks) - len(failed) - len(warned)
    console.print(f"{passed} ok, {len(warned)} warning(s), {len(failed)} failure(s)")
    if failed:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Adds `doctor` to `app`."""
    app.command("doctor")(doctor)
