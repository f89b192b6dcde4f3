"""How long training steps wait on the DataLoader, measured, with a warning above a share of the step time.

The Trainer fetches every micro-batch of an optimizer step before ``on_step_begin``, after the previous
step's ``on_step_end`` and its logging, evaluation and saving. So the time from the last of those
events to ``on_step_begin`` is the wait on data, and from ``on_step_begin`` to ``on_step_end`` is the
compute. The first step is not counted (it includes starting the workers).
"""

from __future__ import annotations

import logging
import time

from transformers import TrainerCallback

logger = logging.getLogger("phi3v_train")

DATA_WAIT_WARNING_SHARE = 0.10


class DataWaitMonitor(TrainerCallback):
    """Sums data-wait and compute time; every ``window`` steps, warns (once per run) when waiting took more
    than ``share`` of the time. ``wait_share`` is the share over the whole run so far."""

    def __init__(self, share: float = DATA_WAIT_WARNING_SHARE, window: int = 20) -> None:
        self.share = share
        self.window = window
        self.waited = 0.0
        self.computed = 0.0
        self.steps = 0
        self.warned = False
        self._mark: float | None = None
        self._step_start = 0.0

    @property
    def wait_share(self) -> float:
        total = self.waited + self.computed
        return self.waited / total if total else 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if self._mark is not None:
            self.waited += now - self._mark
        self._step_start = now

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if self._mark is not None:
            self.computed += now - self._step_start
            self.steps += 1
            if self.steps % self.window == 0:
                self._check(state.global_step, args.dataloader_num_workers)
        self._mark = now

    def _after_step_work(self, args, state, control, **kwargs):
        if self._mark is not None:
            self._mark = time.perf_counter()

    on_log = on_save = on_evaluate = _after_step_work

    def _check(self, step: int, workers: int) -> None:
        if self.warned or self.wait_share <= self.share:
            return
        self.warned = True
        logger.warning(
            "steps wait on data %.0f%% of the time (up to step %d, %d DataLoader worker(s)): raise --workers, "
            "or convert the images once to smaller files (video: pre-extracted frames)",
            100 * self.wait_share,
            step,
            workers,
        )


__all__ = ["DATA_WAIT_WARNING_SHARE", "DataWaitMonitor"]
