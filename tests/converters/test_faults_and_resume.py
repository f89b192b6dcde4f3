"""Bad clips are skipped and reported; interrupted runs resume to identical bytes; finished runs are left alone."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from convert_helpers import assert_valid, pixels, read_jsonl, tree_bytes, zero_frame_count
from typer.testing import CliRunner

from phi3v_data.cli.main import app
from phi3v_data.converters import Ucf101Converter, run_conversion
from phi3v_data.converters.base import OutputConflictError
from phi3v_data.samples.ucf101 import read_index


def _damage(src: Path) -> None:
    truncated = src / "Archery" / "v_Archery_g08_c01.avi"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size * 6 // 10])
    (src / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g15_c01.avi").write_bytes(b"RIFF" + bytes(range(256)) * 40)
    zero_frame_count(src / "HandstandPushups" / "v_HandStandPushups_g08_c01.avi")
    (src / "Archery" / "v_Archery_g15_c01.avi").unlink()


def test_bad_clips_are_skipped_and_reported(ucf_copy: Path, tmp_path: Path) -> None:
    _damage(ucf_copy)
    out = tmp_path / "out"
    summary = run_conversion(Ucf101Converter(ucf_copy, frames=4), out)

    reasons = {entry["item"]: entry["reason"] for entry in summary.skipped}
    assert sorted(reasons) == [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g15_c01.avi",
        "Archery/v_Archery_g08_c01.avi",
        "Archery/v_Archery_g15_c01.avi",
    ]
    assert re.fullmatch(
        r"corrupt video: the header declares 50 frames, 2\d decode \(truncated or damaged file\)",
        reasons["Archery/v_Archery_g08_c01.avi"],
    )
    assert "cannot open" in reasons["ApplyEyeMakeup/v_ApplyEyeMakeup_g15_c01.avi"]
    assert "missing video" in reasons["Archery/v_Archery_g15_c01.avi"]
    assert summary.records == {"train": 6, "test": 3}
    report = (out / "convert_report.json").read_text()
    assert '"skipped_count": 3' in report

    counted = next(r for r in read_jsonl(out / "ucf101_train.jsonl") if "HandStand" in r["metadata"]["video"])
    assert counted["metadata"]["total_frames"] == 50
    assert counted["metadata"]["total_frames_counted"] is True
    assert [read_index(pixels(out / "images" / p)) for p in counted["conversations"][0]["images"]] == [0, 12, 25, 37]
    assert_valid(*summary.files)


def test_truncated_clip_is_corrupt_for_decord_too(ucf_copy: Path, tmp_path: Path) -> None:
    pytest.importorskip("decord")
    _damage(ucf_copy)
    summary = run_conversion(Ucf101Converter(ucf_copy, frames=4, classes=("Archery",), decoder="decord"), tmp_path)
    reasons = {entry["item"]: entry["reason"] for entry in summary.skipped}
    assert re.search(r"the header declares 50 frames, 2\d decode", reasons["Archery/v_Archery_g08_c01.avi"])


def test_strict_exits_1_when_items_were_skipped(ucf_copy: Path, tmp_path: Path) -> None:
    _damage(ucf_copy)
    out = tmp_path / "out"
    args = ["convert", "ucf101", str(ucf_copy), str(out), "--frames", "4", "--classes", "Archery"]
    default = CliRunner().invoke(app, args)
    assert default.exit_code == 1
    assert "2 of 4 items (50.0%) were skipped, over --max-skip-fraction 0.01" in default.output
    assert not (out / "ucf101_train.jsonl").exists()
    assert json.loads((out / "convert_report.failed.json").read_text())["splits"] == {
        "train": {"items": 3, "records": 1, "skipped": {"corrupt video": 1, "missing video": 1}},
        "test": {"items": 1, "records": 1, "skipped": {}},
    }
    lenient = CliRunner().invoke(app, [*args, "--max-skip-fraction", "0.5"])
    assert lenient.exit_code == 0, lenient.output
    assert "skipped 2 bad items" in lenient.output
    assert "train: 3 items read, 1 records, 2 skipped (corrupt video 1, missing video 1)" in lenient.output
    assert len(read_jsonl(out / "ucf101_train.jsonl")) == 1
    assert not (out / "convert_report.failed.json").exists()
    strict = CliRunner().invoke(app, [*args, "--max-skip-fraction", "0.5", "--strict"])
    assert strict.exit_code == 1
    assert "Archery/v_Archery_g08_c01.avi" in strict.output
    assert "2 items were skipped and --strict is set" in strict.output


def test_interrupted_run_resumes_to_identical_output(
    ucf_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_conversion(Ucf101Converter(ucf_src, frames=3, val_groups=1), tmp_path / "fresh")

    calls = []
    original = Ucf101Converter.process

    def flaky(self, task, images_dir):
        calls.append(task.key)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return original(self, task, images_dir)

    monkeypatch.setattr(Ucf101Converter, "process", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_conversion(Ucf101Converter(ucf_src, frames=3, val_groups=1), tmp_path / "resumed")
    monkeypatch.setattr(Ucf101Converter, "process", original)
    assert not (tmp_path / "resumed" / "ucf101_train.jsonl").exists()

    summary = run_conversion(Ucf101Converter(ucf_src, frames=3, val_groups=1), tmp_path / "resumed")
    assert (summary.reused, summary.processed) == (4, 8)
    assert tree_bytes(tmp_path / "resumed") == tree_bytes(tmp_path / "fresh")


def test_killed_cli_run_resumes_to_identical_output(ucf_src: Path, tmp_path: Path) -> None:
    run_conversion(Ucf101Converter(ucf_src, frames=6), tmp_path / "fresh")
    out = tmp_path / "killed"
    code = "import sys; from phi3v_data.cli.main import main; sys.argv[0] = 'phi3v-data'; main()"
    args = ["convert", "ucf101", str(ucf_src), str(out), "--frames", "6"]
    env = {**os.environ, "PHI3V_DISABLE_PROGRESS_BARS": "1"}
    process = subprocess.Popen([sys.executable, "-c", code, *args], env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(out.glob("images/*/*/*.jpg")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "ucf101_train.jsonl").exists(), "the run finished before it could be killed"

    summary = run_conversion(Ucf101Converter(ucf_src, frames=6), out)
    assert summary.processed > 0
    assert tree_bytes(out) == tree_bytes(tmp_path / "fresh")


def test_rerunning_a_finished_conversion_changes_nothing(ucf_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_conversion(Ucf101Converter(ucf_src, frames=2, val_groups=1), out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    content = tree_bytes(out)
    time.sleep(0.01)

    summary = run_conversion(Ucf101Converter(ucf_src, frames=2, val_groups=1), out)
    assert (summary.reused, summary.processed) == (12, 0)
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and not p.name.startswith(".convert")}
    assert after == {p: t for p, t in before.items() if not p.name.startswith(".convert")}
    assert tree_bytes(out) == content


def test_changed_options_are_refused_unless_overwrite(ucf_src: Path, tmp_path: Path) -> None:
    run_conversion(Ucf101Converter(ucf_src, frames=2), tmp_path)
    before = tree_bytes(tmp_path)
    with pytest.raises(OutputConflictError, match=r"holds a ucf101 conversion of .* \(different frames\)"):
        run_conversion(Ucf101Converter(ucf_src, frames=3), tmp_path)
    assert tree_bytes(tmp_path) == before
    summary = run_conversion(Ucf101Converter(ucf_src, frames=3), tmp_path, overwrite=True)
    assert (summary.reused, summary.processed) == (0, 12)
    assert read_jsonl(tmp_path / "ucf101_test.jsonl")[0]["metadata"]["frame_indices"] == [0, 16, 33]
    assert len(list(tmp_path.glob("images/*/*/*.jpg"))) == 12 * 3
    assert len(list(tmp_path.glob(".convert_state.*"))) == 1


def test_two_worker_processes_give_the_same_bytes(ucf_src: Path, tmp_path: Path) -> None:
    run_conversion(Ucf101Converter(ucf_src, frames=2, val_groups=1), tmp_path / "inline")
    summary = run_conversion(Ucf101Converter(ucf_src, frames=2, val_groups=1), tmp_path / "pool", workers=2, timeout=60)
    assert summary.processed == 12
    assert tree_bytes(tmp_path / "pool") == tree_bytes(tmp_path / "inline")
