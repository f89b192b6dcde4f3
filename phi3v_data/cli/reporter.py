"""The one error reporter of both CLIs: a :class:`Phi3vError` becomes one clean message plus a hint."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

from phi3v_data.errors import Phi3vError

stderr = Console(stderr=True, highlight=False)

DEBUG_ENV = "PHI3V_DEBUG"


def report_error(exc: Phi3vError) -> None:
    # Messages name files: printed unwrapped (a path split across lines cannot be copied) and unparsed
    # (brackets in a message are text, not markup).
    stderr.print(f"[bold red]Error:[/] {escape(str(exc))}", soft_wrap=True)
    if exc.hint:
        stderr.print(f"[dim]Hint: {escape(exc.hint)}[/]", soft_wrap=True)


def run_with_error_mapping(app: Callable[[], object]) -> None:
    """Runs a Typer app; a :class:`Phi3vError` prints a message and exits 1 (a traceback with PHI3V_DEBUG=1).

    Other exceptions propagate with their traceback.
    """
    try:
        app()
    except Phi3vError as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        report_error(exc)
        sys.exit(1)
