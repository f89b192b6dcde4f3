"""The callback that stops a training run at a given step, shared by the resume tests of every folder.

(A module of its own, not conftest.py, so test files can import it; the name is unique across tests/.)
"""

from __future__ import annotations

from transformers import TrainerCallback


class StopAt(TrainerCallback):
    """Stops training after `step` (the checkpoint of that step is written first), like a killed job."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True
        return control
