"""Options shared by the `phi3v-data` commands, each declared once."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, get_type_hints

import typer

from phi3v_data.token_count import ESTIMATE_DOC


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


def tokenizer_folder(value: Path | None) -> Path | None:
    """Typer callback: the folder must hold tokenizer.json (a usage error, exit 2, otherwise)."""
    if value is not None and not (value / "tokenizer.json").is_file():
        raise typer.BadParameter(f"{value} has no tokenizer.json")
    return value


ImageRootOption = Annotated[
    Path | None,
    typer.Option(
        "--image-root",
        exists=True,
        file_okay=False,
        help="Folder image paths are relative to. Default: the `images` folder beside each JSONL file.",
    ),
]
TokenizerOption = Annotated[
    Path | None,
    typer.Option(
        "--tokenizer",
        file_okay=False,
        exists=True,
        callback=tokenizer_folder,
        help="Folder with tokenizer.json for exact text-token counts (needs the `tokenizers` package). " + ESTIMATE_DOC,
    ),
]


@dataclass(frozen=True)
class RunOptions:
    """How a `convert` subcommand runs the conversion and when it fails: every subcommand takes these options."""

    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 1
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when any item was skipped (corrupt, missing, unreadable).")
    ] = False
    max_skip_fraction: Annotated[
        float,
        typer.Option(
            "--max-skip-fraction",
            min=0.0,
            max=1.0,
            help="Exit 1 (and keep the earlier outputs) when more than this fraction of the items was skipped.",
        ),
    ] = 0.01
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Replace a conversion of another source or with other options in OUT (and its images)."
        ),
    ] = False


def with_option_groups(command: Callable[..., None]) -> Callable[..., None]:
    """Typer sees each keyword-only parameter of ``command`` typed with an option group (a dataclass whose fields carry
    their ``typer.Option``, like RunOptions) as the group's options, in place; the call hands them back to
    ``command`` as one instance of the group."""
    groups: dict[str, type] = {}
    params = []
    for param in inspect.signature(command, eval_str=True).parameters.values():
        group = param.annotation
        if param.kind is not param.KEYWORD_ONLY or not is_dataclass(group):
            params.append(param)
            continue
        groups[param.name] = group
        hints = get_type_hints(group, include_extras=True)
        params += [
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=f.default if f.default is not MISSING else f.default_factory(),
                annotation=hints[f.name],
            )
            for f in fields(group)
        ]

    @functools.wraps(command)
    def wrapper(**kwargs: object) -> None:
        for name, group in groups.items():
            kwargs[name] = group(**{f.name: kwargs.pop(f.name) for f in fields(group)})
        command(**kwargs)

    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return wrapper
