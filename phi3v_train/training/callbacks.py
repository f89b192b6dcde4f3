"""Trainer callbacks: rich progress with ETA, loss history, the task metric during training, and
self-contained checkpoints."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.progress import Progress
from transformers import TrainerCallback

from phi3v_data.io import build_progress, progress_disabled

logger = logging.getLogger("phi3v_train")

SHOWN_KEYS = ("loss", "learning_rate", "grad_norm", "images_per_second", "tokens_per_second", "eval_loss")


def format_logs(logs: dict[str, float]) -> str:
    parts = []
    for key in SHOWN_KEYS:
        if key in logs:
            value = logs[key]
            parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


def reporter_callbacks(names: list[str], logging_dir: Path) -> list[TrainerCallback]:
    """The Trainer's logging integrations for ``--report-to`` (``none`` alone: no reporter), built here so that an
    unknown or uninstalled one stops the run before training. tensorboard writes to ``logging_dir``.

    Raises:
        ConfigError: a name transformers does not know, or whose package is not installed.
    """
    from transformers.integrations import TensorBoardCallback
    from transformers.integrations.integration_utils import get_reporting_integration_callbacks

    from phi3v_train.errors import ConfigError

    wanted = [name for name in names if name != "none"]
    try:
        classes = get_reporting_integration_callbacks(wanted)
    except ValueError as exc:
        raise ConfigError(f"--report-to: {exc}") from None
    callbacks = []
    for name, callback_class in zip(wanted, classes, strict=True):
        try:
            callback = callback_class()
        except (RuntimeError, ImportError) as exc:
            raise ConfigError(f"--report-to {name}: {exc} (or drop {name} from --report-to)") from None
        if isinstance(callback, TensorBoardCallback):
            callback.logging_dir = str(logging_dir)
        callbacks.append(callback)
    return callbacks


class LossHistory(TrainerCallback):
    """Every logged training loss, as (step, loss)."""

    def __init__(self) -> None:
        self.losses: list[tuple[int, float]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append((state.global_step, float(logs["loss"])))


class RichProgress(TrainerCallback):
    """Step bar with ETA and the last loss/lr on rank 0 (stderr); log lines instead when bars are off."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or progress_disabled():
            return
        self.progress = build_progress("[bold]train", elapsed=True, status=True, transient=False)
        self.progress.start()
        self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step, status="")

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        line = format_logs(logs)
        if self.progress is not None:
            self.progress.update(self.task, status=line)
        if line:
            logger.info("step %d/%d %s", state.global_step, state.max_steps, line)

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class CheckpointExtras(TrainerCallback):
    """Writes the processor files (and phi3v_base.json in LoRA modes) into every checkpoint folder,
    so that ``checkpoint-N`` loads like a finished run."""

    def __init__(self, write: Callable[[Path], None]) -> None:
        self.write = write

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.write(Path(args.output_dir) / f"checkpoint-{state.global_step}")


class TaskMetricDuringTraining(TrainerCallback):
    """With ``--eval-metric`` and ``--eval-steps``: the task metric at every evaluation during training.

    ``score(model)`` returns the metric summaries per eval file (on the seeded ``--eval-limit`` sample);
    each evaluation's result is kept as (step, summaries) and logged. Every rank scores its shard, so
    this runs on all ranks. The evaluation after training is left to the final metric.
    """

    def __init__(self, score: Callable[[Any], dict[str, Any]]) -> None:
        self.score = score
        self.history: list[tuple[int, dict[str, Any]]] = []
        self.training = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.training = True

    def on_train_end(self, args, state, control, **kwargs):
        self.training = False

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        if not self.training or model is None:
            return
        summaries = self.score(model)
        self.history.append((state.global_step, summaries))
        if metrics is not None:
            # `eval_<metric>` (mean over the eval files) joins eval_loss, for --metric-for-best
            for name in sorted({name for summary in summaries.values() for name in summary.get("metrics", [])}):
                values = [summary[name] for summary in summaries.values() if isinstance(summary.get(name), float)]
                if values:
                    metrics[f"eval_{name}"] = sum(values) / len(values)
        if state.is_world_process_zero:
            for path, summary in summaries.items():
                names = [name for name in summary.get("metrics", []) if name in summary]
                shown = " ".join(f"{name}={summary[name]:.4g}" for name in names)
                logger.info("step %d task metric on %s: %s", state.global_step, path, shown)
