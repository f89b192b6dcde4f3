"""`phi3v-data schema`: prints the record JSON Schema, or checks a committed copy for drift."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from phi3v_data.schema import record_json_schema_text


def schema(
    check: Path | None = typer.Option(
        None,
        "--check",
        exists=True,
        dir_okay=False,
        help="Compare this file with the schema of the models instead of printing; exit 1 when they differ.",
    ),
) -> None:
    """Print the JSON Schema of one record (the models in phi3v_data.schema are its source).

    Examples:

      phi3v-data schema > schemas/record.schema.json

      phi3v-data schema --check schemas/record.schema.json
    """
    text = record_json_schema_text()
    if check is None:
        typer.echo(text, nl=False)
        return
    if check.read_text(encoding="utf-8") != text:
        Console(stderr=True, highlight=False).print(
            f"[bold red]Error:[/] {check} differs from the record models.\n"
            f"[dim]Hint: regenerate it with `phi3v-data schema > {check}`.[/]"
        )
        raise typer.Exit(1)
    typer.echo(f"{check} matches the record models.")


def register(app: typer.Typer) -> None:
    """Adds `schema` to `app`."""
    app.command()(schema)
