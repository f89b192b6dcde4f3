"""Turns library exceptions into one clean message plus a hint, in the style of huggingface_hub's CLI."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from rich.console import Console

from phi3v_data.errors import Phi3vDataError

stderr = Console(stderr=True, highlight=False)

DEBUG_ENV = "PHI3V_DEBUG"


def report_error(exc: Exception) -> None:
    hint = getattr(exc, "hint", "")
    stderr.print(f"[bold red]Error:[/] {exc}")
    if hint:
        stderr.print(f"[dim]Hint: {hint}[/]")


def run_with_error_mapping(app: Callable[[], object], known: tuple[type[Exception], ...] = (Phi3vDataError,)) -> None:
    """Runs a Typer app; ``known`` errors print a message and exit 1 (a traceback with PHI3V_DEBUG=1)."""
    try:
        app()
    except known as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        report_error(exc)
        sys.exit(1)
