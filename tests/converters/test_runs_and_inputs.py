"""Bad custom tables, exit codes, re-runs that must never make outputs worse, and errors as one-line messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from convert_helpers import png, read_jsonl, tree_bytes, write_parquet
from typer.testing import CliRunner

from phi3v_data.cli.main import app
from phi3v_data.converters import Ucf101Converter, tables

runner = CliRunner()


def _custom(src: Path, out: Path, *extra: str, user: str = "{question}", assistant: str = "{answer}"):
    args = ["convert", "custom", str(src), str(out), "--user", user, "--assistant", assistant, *extra]
    return runner.invoke(app, args)


def test_json_null_answer_is_skipped_not_written_as_none(tmp_path: Path) -> None:
    rows = [{"question": "Q1?", "answer": "yes"}, {"question": "Q2?", "answer": None}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = _custom(tmp_path / "rows.jsonl", tmp_path / "out", "--max-skip-fraction", "0.5")

    assert result.exit_code == 0, result.output
    assert [r["conversations"][0]["assistant"] for r in read_jsonl(tmp_path / "out" / "custom_train.jsonl")] == ["yes"]
    assert "row 2: column 'answer' of the --assistant template is null" in result.output


def test_excel_csv_with_bom_and_semicolons(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes("\ufeffquestion;answer\nWhat?;this\nWho?;Ana, Bo\n".encode())
    result = _custom(tmp_path / "t.csv", tmp_path / "out")

    assert result.exit_code == 0, result.output
    records = read_jsonl(tmp_path / "out" / "custom_train.jsonl")
    assert [(r["conversations"][0]["user"], r["conversations"][0]["assistant"]) for r in records] == [
        ("What?", "this"),
        ("Who?", "Ana, Bo"),
    ]


def test_latin1_csv_names_the_file_line_and_fix(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes("question,answer\nCaf\xe9?,oui\n".encode("latin-1"))
    result = _custom(tmp_path / "t.csv", tmp_path / "out")

    assert result.exit_code == 1
    assert str(result.exception) == (
        f"{tmp_path / 't.csv'} line 2 is not UTF-8 (byte 0xe9); "
        "re-save the file as UTF-8 (in Excel: Save As, CSV UTF-8)"
    )


def test_llava_style_json_array(tmp_path: Path) -> None:
    rows = [{"question": f"Q{i}?", "answer": f"A{i}"} for i in range(3)]
    (tmp_path / "rows.json").write_text(json.dumps(rows, indent=2))
    result = _custom(tmp_path / "rows.json", tmp_path / "out")

    assert result.exit_code == 0, result.output
    assert [r["conversations"][0]["assistant"] for r in read_jsonl(tmp_path / "out" / "custom_train.jsonl")] == [
        "A0",
        "A1",
        "A2",
    ]


def test_template_typo_fails_before_writing_and_keeps_earlier_outputs(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("question,answer\nWhat?,this\n")
    assert _custom(tmp_path / "t.csv", tmp_path / "out").exit_code == 0
    before = tree_bytes(tmp_path / "out")
    result = _custom(tmp_path / "t.csv", tmp_path / "out", assistant="{answr}")

    assert result.exit_code == 1
    assert str(result.exception) == (
        f"--assistant template field 'answr' is not a column of {tmp_path / 't.csv'} (columns: question, answer); "
        "did you mean 'answer'?"
    )
    assert tree_bytes(tmp_path / "out") == before


def test_two_image_columns_read_each_row_group_once(tmp_path: Path) -> None:
    rows = [
        {"a": {"bytes": png((i, 0, 0)), "path": None}, "b": {"bytes": png((0, i, 0)), "path": None}, "c": str(i)}
        for i in range(40)
    ]
    write_parquet(tmp_path / "rows.parquet", rows)
    tables._row_group_column.cache_clear()
    result = _custom(
        tmp_path / "rows.parquet",
        tmp_path / "out",
        "--image-column",
        "a",
        "--image-column",
        "b",
        user="Describe.",
        assistant="{c}",
    )

    assert result.exit_code == 0, result.output
    assert len(read_jsonl(tmp_path / "out" / "custom_train.jsonl")) == 40
    assert tables._row_group_column.cache_info().misses == 2


def test_zero_records_exit_1(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("question,answer\nWhat?,\n")
    result = _custom(tmp_path / "t.csv", tmp_path / "out", "--max-skip-fraction", "1")

    assert result.exit_code == 1
    assert "no records were written" in result.output
    assert not (tmp_path / "out" / "custom_train.jsonl").exists()
    assert json.loads((tmp_path / "out" / "convert_report.failed.json").read_text())["status"] == "failed"


def test_out_of_another_source_is_refused_unless_overwrite(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("question,answer\nA?,a\n")
    (tmp_path / "b.csv").write_text("question,answer\nB?,b\n")
    assert _custom(tmp_path / "a.csv", tmp_path / "out", "--source", "first").exit_code == 0
    refused = _custom(tmp_path / "b.csv", tmp_path / "out", "--source", "second")

    assert refused.exit_code == 1
    assert str(refused.exception).startswith(f"{tmp_path / 'out'} holds a custom conversion of {tmp_path / 'a.csv'}")
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jsonl")) == ["first_train.jsonl"]
    replaced = _custom(tmp_path / "b.csv", tmp_path / "out", "--source", "second", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jsonl")) == ["second_train.jsonl"]
    assert len(list((tmp_path / "out").glob(".convert_state.*"))) == 1


def test_relative_and_absolute_src_share_the_journal(ucf_src: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ucf_src.parent)
    args = ["--frames", "2", "--classes", "Archery"]
    assert runner.invoke(app, ["convert", "ucf101", "UCF-101", str(tmp_path / "out"), *args]).exit_code == 0
    again = runner.invoke(app, ["convert", "ucf101", str(ucf_src), str(tmp_path / "out"), *args])

    assert again.exit_code == 0, again.output
    assert "(0 items converted, 4 already done)" in again.output


def test_forced_redo_removes_stale_images(ucf_src: Path, tmp_path: Path) -> None:
    from phi3v_data.converters import run_conversion

    run_conversion(Ucf101Converter(ucf_src, frames=2, classes=("Archery",)), tmp_path)
    stale = tmp_path / "images" / "train" / "Archery" / "v_Archery_g99_c01.0.jpg"
    stale.write_bytes(b"old")
    for journal in tmp_path.glob(".convert_state.*"):
        journal.unlink()
    summary = run_conversion(Ucf101Converter(ucf_src, frames=2, classes=("Archery",)), tmp_path)

    assert summary.processed == 4
    assert not stale.exists()
    assert len(list(tmp_path.glob("images/*/*/*.jpg"))) == 8


def test_mistyped_local_src_is_not_tried_as_a_hub_id(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "raw" / "nlvr2").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["convert", "nlvr2", "raw/nlvr", "out"])

    assert result.exit_code == 1
    assert str(result.exception) == "raw/nlvr does not exist; raw holds: nlvr2"


def test_unreadable_file_is_one_message_and_a_traceback_only_with_debug(
    ucf_src: Path, tmp_path: Path, monkeypatch
) -> None:
    def unreadable(self):
        raise PermissionError(13, "Permission denied", str(ucf_src / "ucfTrainTestlist" / "classInd.txt"))

    monkeypatch.setattr(Ucf101Converter, "plan", unreadable)
    result = runner.invoke(app, ["convert", "ucf101", str(ucf_src), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: Permission denied: {ucf_src / 'ucfTrainTestlist' / 'classInd.txt'} "
        "(check that SRC is readable and OUT is writable)"
    )
    monkeypatch.setenv("PHI3V_DEBUG", "1")
    debug = runner.invoke(app, ["convert", "ucf101", str(ucf_src), str(tmp_path / "out")])
    assert isinstance(debug.exception, PermissionError)


def test_ctrl_c_with_two_workers_prints_one_line(ucf_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = "import sys; from phi3v_data.cli.main import main; sys.argv[0] = 'phi3v-data'; main()"
    args = ["convert", "ucf101", str(ucf_src), str(out), "--frames", "6", "--workers", "2"]
    env = {**os.environ, "PHI3V_DISABLE_PROGRESS_BARS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not list(out.glob("images/*/*/*.jpg")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: interrupted: ")
    assert lines[0].endswith(f"items done in {out}; re-run the same command to resume")


@pytest.mark.parametrize(
    ("allowed", "code", "message"), [("0.01", 1, "1 of 12 items (8.3%) were skipped"), ("0.1", 0, "")]
)
def test_skip_fraction_decides_the_exit_code(
    ucf_copy: Path, tmp_path: Path, allowed: str, code: int, message: str
) -> None:
    (ucf_copy / "Archery" / "v_Archery_g15_c01.avi").unlink()
    args = ["convert", "ucf101", str(ucf_copy), str(tmp_path / "out"), "--frames", "2", "--max-skip-fraction", allowed]
    result = runner.invoke(app, args)

    assert result.exit_code == code, result.output
    assert message in result.output
    assert (tmp_path / "out" / "ucf101_train.jsonl").exists() == (code == 0)
