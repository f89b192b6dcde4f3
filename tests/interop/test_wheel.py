"""The specs ship inside the wheel: build it, install it into a fresh venv (dependencies from this one), convert."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from datasets import Features, Image, List, Value
from interop_files import png, read_jsonl, write_parquet

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "phi3v_data", "phi3v_train", "converters")


def run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_wheel_ships_the_specs(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, tree / name)
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        tmp_path / "dist",
        ".",
        cwd=tree,
    )
    [wheel] = (tmp_path / "dist").glob("phi3v-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(
        sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp_path
    )
    where = run(python, "-c", "import phi3v_data.specs as s; print(s.__file__)", cwd=tmp_path)
    assert where.startswith(str(site))
    features = Features({"image": Image(), "query": Value("string"), "label": List(Value("string"))})
    write_parquet(
        tmp_path / "chartqa/data/val-00000-of-00001.parquet",
        {"image": [{"bytes": png("red"), "path": None}], "query": ["Max?"], "label": [["9"]]},
        features,
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "PHI3V_DISABLE_PROGRESS_BARS": "1"}
    done = subprocess.run(
        [str(venv / "bin" / "phi3v-data"), "convert", "chartqa", "chartqa", "out", "--cache-dir", "cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    [record] = read_jsonl(tmp_path / "out" / "chartqa_val.jsonl")
    assert record["conversations"][0]["user"] == "Max?" and record["conversations"][0]["assistant"] == "9"
