"""`phi3v-data sample` and `phi3v-data convert` as `make demo` runs them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from convert_helpers import read_jsonl
from typer.testing import CliRunner

from phi3v_data.cli.main import app


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def test_demo_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    raw = tmp_path / "raw" / "UCF-101"
    assert runner.invoke(app, ["sample", "ucf101", str(raw)]).exit_code == 0
    assert len(list(raw.glob("*/*.avi"))) == 48
    result = runner.invoke(
        app, ["convert", "ucf101", str(raw), str(tmp_path / "data"), "--frames", "4", "--val-groups", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "24 train, 12 val, 12 test records" in result.output
    assert len(read_jsonl(tmp_path / "data" / "ucf101_val.jsonl")) == 12
    validated = runner.invoke(app, ["validate", str(tmp_path / "data" / "ucf101_train.jsonl"), "--strict"])
    assert validated.exit_code == 0, validated.output


def test_samples_are_deterministic(tmp_path: Path) -> None:
    runner = CliRunner()
    for name in ("nlvr2", "hateful-memes", "docvqa"):
        for copy in ("a", "b"):
            assert runner.invoke(app, ["sample", name, str(tmp_path / copy / name)]).exit_code == 0
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
