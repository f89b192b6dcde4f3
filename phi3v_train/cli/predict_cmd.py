"""`phi3v-train` commands of this module (being written)."""

import typer


def register(app: typer.Typer) -> None:
    """Adds this module's commands to `app`."""
