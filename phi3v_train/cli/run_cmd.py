"""`phi3v-train run`: fine-tune from `conversations` JSONL files (full, frozen parts, LoRA, QLoRA).

The options are not written here: :func:`build_run_command` derives them from the fields of
:class:`~phi3v_train.training.config.TrainConfig` (type, choices, help, default, panel, flags).
Only ``--config`` and the command-line forms of ``resume`` (``--resume``, ``--resume-from``) are
written by hand. An option overrides the task preset and the config file only when it is on the
command line; its default, which the help shows, is the field's.
"""

from __future__ import annotations

import enum
import inspect
import logging
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import typer
from pydantic.fields import FieldInfo
from rich.console import Console

from phi3v_train.errors import ConfigError
from phi3v_train.training.config import (
    CHECKPOINTS,
    RunOption,
    TrainConfig,
    load_config,
    resolve_config_file,
    run_options,
    shipped_configs,
)

console = Console(stderr=True, highlight=False)

RUN_HELP = """Fine-tune Phi-3(.5)-vision on record files.

Options left out come from --config, then --preset, then the defaults shown.

Examples:

phi3v-train run --model tiny --mode lora --num-crops 1 --max-steps 40 \\
  --train-file data/ucf101_train.jsonl --output-dir runs/demo

torchrun --nproc_per_node 8 $(which phi3v-train) run \\
  --model microsoft/Phi-3.5-vision-instruct --preset docvqa --mode lora \\
  --train-file docvqa_train.jsonl --output-dir runs/docvqa \\
  --precision bf16 --attn flash_attention_2

phi3v-train run --config docvqa_lora --max-steps 100 --output-dir runs/try

phi3v-train run --config nlvr2_frozen --resume
"""


def _groups(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def setup_logging() -> None:
    """Library logs (phi3v_train) at INFO on stderr; transformers' own chatter at warnings only."""
    import transformers

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("phi3v_train").setLevel(logging.INFO)
    transformers.logging.set_verbosity_warning()


@dataclass(frozen=True)
class _CliParameter:
    """One generated parameter of `run`: its signature entry, and how its value becomes an override."""

    parameter: inspect.Parameter
    to_override: Callable[[Any], Any]


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kept = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(kept) == 1:
            return kept[0]
    return annotation


def _choices(name: str, literal: Any) -> type[enum.Enum]:
    """An Enum of a Literal's values, which Typer shows and checks as choices."""
    values = typing.get_args(literal)
    return enum.Enum(name.title().replace("_", ""), {str(value): value for value in values}, type=str)


def _flags(name: str, option: RunOption, is_bool: bool) -> tuple[str, ...]:
    if option.flags:
        return option.flags
    flag = name.replace("_", "-")
    return (f"--{flag}/--no-{flag}",) if is_bool else (f"--{flag}",)


def _cli_default(info: FieldInfo, cli_type: Any) -> Any:
    """The field's default in the option's own type, which the help shows; None where there is none."""
    if info.is_required():
        return None
    default = info.get_default(call_default_factory=True)
    if default is None or default == []:
        return None
    if isinstance(cli_type, type) and issubclass(cli_type, enum.Enum):
        return cli_type(default)
    if isinstance(default, list):
        return ",".join(str(item) for item in default)
    return default


def _as_given(value: Any) -> Any:
    return value


def _choice_value(value: enum.Enum | None) -> Any:
    return None if value is None else value.value


def _repeated(values: list[Path] | None) -> list[Path] | None:
    """Typer gives an empty list for a repeatable option that was not given."""
    return values or None


def _field_parameter(name: str, info: FieldInfo, option: RunOption) -> _CliParameter:
    """The Typer option of one field, and the conversion of its value into a `load_config` override."""
    annotation = _without_none(info.annotation)
    to_override: Callable[[Any], Any] = _as_given
    if typing.get_origin(annotation) is Literal:
        cli_type: Any = _choices(name, annotation)
        to_override = _choice_value
    elif typing.get_origin(annotation) is list and typing.get_args(annotation) == (Path,):
        cli_type = list[Path]
        to_override = _repeated
    elif typing.get_origin(annotation) is list:
        cli_type = str
        to_override = _groups
    else:
        cli_type = annotation
    flags = _flags(name, option, annotation is bool)
    extra = {"file_okay": False} if option.directory else {}
    typer_option = typer.Option(
        _cli_default(info, cli_type), *flags, help=info.description, rich_help_panel=option.panel, **extra
    )
    parameter = inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=typer_option, annotation=cli_type | None
    )
    return _CliParameter(parameter, to_override)


def _config_file(value: str | None) -> Path | None:
    if value is None:
        return None
    try:
        return resolve_config_file(value)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _config_parameter() -> inspect.Parameter:
    return _keyword(
        "config_file",
        str | None,
        typer.Option(
            None,
            "--config",
            callback=_config_file,
            help="YAML with any of these options (command-line values win): a path, or the name of a shipped "
            f"config ({', '.join(shipped_configs())}).",
        ),
    )


def _resume_parameters() -> list[inspect.Parameter]:
    """``--resume`` and ``--resume-from``, the command-line forms of the ``resume`` field."""
    return [
        _keyword(
            "resume",
            bool,
            typer.Option(
                False,
                "--resume",
                help="Continue from the newest checkpoint-N in --output-dir (optimizer, data position, RNG).",
                rich_help_panel=CHECKPOINTS,
            ),
        ),
        _keyword(
            "resume_from",
            Path | None,
            typer.Option(
                None,
                "--resume-from",
                file_okay=False,
                help="Continue from this checkpoint folder instead.",
                rich_help_panel=CHECKPOINTS,
            ),
        ),
    ]


# The fields marked ``on_cli=False``: their parameters, written by hand.
HAND_WRITTEN: dict[str, Callable[[], list[inspect.Parameter]]] = {"resume": _resume_parameters}


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the option was on the command line (its default, shown in the help, is not an override)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _resume(resume: bool, resume_from: Path | None) -> str | None:
    return str(resume_from) if resume_from is not None else ("latest" if resume else None)


def build_run_command(config_class: type[TrainConfig] = TrainConfig) -> Callable[..., None]:
    """The `run` command function, its signature generated from the fields of ``config_class``."""
    parameters = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        _config_parameter(),
    ]
    derived: dict[str, Callable[[Any], Any]] = {}
    for name, (info, option) in run_options(config_class).items():
        if not option.on_cli:
            parameters += HAND_WRITTEN[name]()
            continue
        generated = _field_parameter(name, info, option)
        parameters.append(generated.parameter)
        derived[name] = generated.to_override

    def run(ctx: typer.Context, **values: Any) -> None:
        given = [name for name in derived if _given(ctx, name)]
        overrides = {name: derived[name](values[name]) for name in given}
        overrides["resume"] = _resume(values["resume"], values["resume_from"])
        _train(load_config(values["config_file"], overrides, config_class))

    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__doc__ = RUN_HELP
    return run


def _train(config: TrainConfig) -> None:
    setup_logging()
    from phi3v_train.training.trainer import train

    result = train(config)
    if os.environ.get("RANK", "0") != "0":
        return
    if result.skipped_records:
        console.print(f"[yellow]Skipped {len(result.skipped_records)} over-long record(s)[/] (see the warning above)")
    if result.first_loss is not None:
        console.print(
            f"loss: first {result.first_loss:.4f} -> last {result.last_loss:.4f} over {result.global_step} steps"
        )
    if result.eval_loss is not None:
        console.print(f"eval loss: {result.eval_loss:.4f}")
    console.print(f"[green]Done.[/] Model and logs in {result.output_dir}")


def register(app: typer.Typer, config_class: type[TrainConfig] = TrainConfig) -> None:
    """Adds `run`, with the options of ``config_class``, to `app`."""
    app.command("run")(build_run_command(config_class))
