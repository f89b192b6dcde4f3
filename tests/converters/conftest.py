"""Fixtures of the converter tests: small raw datasets in the official layouts, built once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from phi3v_data.samples import SAMPLES
from phi3v_data.samples.ucf101 import write_ucf101_sample


@pytest.fixture(autouse=True)
def _no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHI3V_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def ucf_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x groups 1, 8, 15, 22 x 1 clip of 50 frames (2 s at 25 fps); split 1 tests group 1."""
    root = tmp_path_factory.mktemp("ucf") / "UCF-101"
    write_ucf101_sample(root, clips_per_group=1)
    return root


@pytest.fixture
def ucf_copy(ucf_src: Path, tmp_path: Path) -> Path:
    """A private copy of ``ucf_src`` that a test may damage."""
    return Path(shutil.copytree(ucf_src, tmp_path / "UCF-101"))


@pytest.fixture(scope="session")
def sample_src(tmp_path_factory: pytest.TempPathFactory):
    """``sample_src("nlvr2")``: that dataset's `phi3v-data sample`, written once."""
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            made[name] = tmp_path_factory.mktemp(name.replace("-", "_")) / "raw"
            SAMPLES[name](made[name])
        return made[name]

    return make
