"""Small synthetic datasets in the official raw layouts, for `phi3v-data sample`, the demo and the tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from phi3v_data.samples.docvqa import write_docvqa_sample
from phi3v_data.samples.hateful_memes import write_hateful_memes_sample
from phi3v_data.samples.nlvr2 import write_nlvr2_sample
from phi3v_data.samples.ucf101 import write_ucf101_sample

SAMPLES: dict[str, Callable[[Path], object]] = {
    "ucf101": write_ucf101_sample,
    "docvqa": write_docvqa_sample,
    "hateful-memes": write_hateful_memes_sample,
    "nlvr2": write_nlvr2_sample,
}

__all__ = ["SAMPLES"]
