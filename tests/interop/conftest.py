"""Fixtures of the interop tests: offline `datasets` and a per-test cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Never reach the hub from a test: datasets and huggingface_hub read these when they are imported.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PHI3V_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture
def cache_dir(tmp_path: Path) -> str:
    return str(tmp_path / "hf-cache")
