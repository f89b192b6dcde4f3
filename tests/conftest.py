"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _reference_model(name: str, required: str) -> Path:
    """The reference folder of model ``name``; skips the test when ``required`` is not in it."""
    path = Path(os.environ.get("PHI3V_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference")) / name
    if not (path / required).is_file():
        pytest.skip(f"reference files not found at {path}; set PHI3V_REFERENCE_DIR to the folder holding them")
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The real phi-3.5-vision-instruct tokenizer and configs; skips the test when they are absent."""
    return _reference_model("phi-3.5-vision-instruct", "tokenizer.json")


@pytest.fixture(scope="session")
def reference_dir_128k() -> Path:
    """The real phi-3-vision-128k-instruct tokenizer and configs; skips the test when they are absent."""
    return _reference_model("phi-3-vision-128k-instruct", "config.json")
