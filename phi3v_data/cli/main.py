"""Entry point of `phi3v-data`: builds the Typer app from the command modules."""

from __future__ import annotations

import typer

from phi3v_data.cli import convert_cmd, export_cmd, preview_cmd, schema_cmd, stats_cmd, validate_cmd
from phi3v_data.cli.reporter import run_with_error_mapping

app = typer.Typer(
    name="phi3v-data",
    help=(
        "Build, check and inspect `conversations` JSONL files for Phi-3(.5)-vision fine-tuning.\n\n"
        "Examples:\n\n"
        "  phi3v-data sample ucf101 raw/ucf101\n\n"
        "  phi3v-data convert ucf101 raw/ucf101 data/ucf101 --num-classes 10\n\n"
        "  phi3v-data validate data/ucf101/ucf101_train.jsonl --max-length 8192 --num-crops 4\n\n"
        "  phi3v-data stats data/ucf101/ucf101_train.jsonl --num-crops 4"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
validate_cmd.register(app)
stats_cmd.register(app)
schema_cmd.register(app)
convert_cmd.register(app)
export_cmd.register(app)
preview_cmd.register(app)


def main() -> None:
    run_with_error_mapping(app)
