"""Entry point of `phi3v-train`: builds the Typer app from the command modules."""

from __future__ import annotations

import logging
import warnings

import typer

from phi3v_data.cli.reporter import run_with_error_mapping
from phi3v_data.io import progress_disabled
from phi3v_train.cli import doctor_cmd, eval_cmd, export_cmd, predict_cmd, run_cmd, score_cmd

# bitsandbytes (imported by peft) warns on every CPU start that it cannot download an optional kernel
# from the hub; nothing is wrong, and the fallback it uses is the one our tests run.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
# peft 0.21 still reads transformers' deprecated `is_gradient_checkpointing` when it wraps a model.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

app = typer.Typer(
    name="phi3v-train",
    help=(
        "Fine-tune, evaluate and export Phi-3(.5)-vision models from `conversations` JSONL files.\n\n"
        "Examples:\n\n"
        "  phi3v-train run --model tiny --mode lora --train-file data/ucf101_train.jsonl --output-dir runs/demo\n\n"
        "  phi3v-train eval --model runs/demo --data data/ucf101_val.jsonl\n\n"
        "  phi3v-train export --model runs/demo --out merged --merge --verify\n\n"
        "  phi3v-train doctor"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
run_cmd.register(app)
doctor_cmd.register(app)
eval_cmd.register(app)
predict_cmd.register(app)
export_cmd.register(app)
score_cmd.register(app)


def main() -> None:
    if progress_disabled():
        # Imported only here: transformers takes most of a second, which `--help` should not pay.
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    run_with_error_mapping(app)
