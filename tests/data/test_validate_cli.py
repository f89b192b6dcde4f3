"""`phi3v-data validate` and `stats` through Typer's CliRunner: exit codes, the JSON report, clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from recordkit import record, write_lines
from typer.testing import CliRunner

from phi3v_data.cli.main import app

runner = CliRunner()
REPORT_KEYS = {"records", "valid", "errors", "warnings", "problems"}
PROBLEM_KEYS = {"file", "line", "id", "severity", "code", "message"}


def invoke(*args: str | Path):
    return runner.invoke(app, [str(arg) for arg in args], env={"PHI3V_DISABLE_PROGRESS_BARS": "1"})


@pytest.fixture
def files(dataset: Path) -> dict[str, Path]:
    return {
        "valid": write_lines(dataset / "valid.jsonl", [record("a", ["a.jpg"]), record("b")]),
        "warning": write_lines(dataset / "warning.jsonl", [record("a", ["a.jpg"], split="train")]),
        "errors": write_lines(dataset / "errors.jsonl", [record("a", ["nope.jpg"]), "{oops", record("a")]),
    }


def test_exit_codes(files: dict[str, Path], dataset: Path) -> None:
    assert invoke("validate", files["valid"]).exit_code == 0
    assert invoke("validate", files["warning"]).exit_code == 0
    assert invoke("validate", files["warning"], "--strict").exit_code == 1
    assert invoke("validate", files["errors"]).exit_code == 1
    assert invoke("validate", files["valid"], files["errors"]).exit_code == 1
    assert invoke("validate", dataset / "missing.jsonl").exit_code == 2
    assert invoke("validate", files["valid"], "--num-crops", "0").exit_code == 2
    assert invoke("validate", files["valid"], "--format", "xml").exit_code == 2
    assert invoke("validate", files["valid"], "--tokenizer", dataset / "images").exit_code == 2
    assert invoke("validate", files["valid"], "--bogus").exit_code == 2
    assert invoke("validate", files["valid"], "--image-root", dataset / "no_such_folder").exit_code == 2


def test_json_report_shape(files: dict[str, Path]) -> None:
    result = invoke("validate", files["errors"], "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert set(report) == REPORT_KEYS
    assert (report["records"], report["valid"], report["errors"], report["warnings"]) == (3, 0, 3, 0)
    for problem in report["problems"]:
        assert set(problem) == PROBLEM_KEYS
    assert [(p["line"], p["id"], p["severity"], p["code"]) for p in report["problems"]] == [
        (1, "a", "error", "missing_image"),
        (2, None, "error", "invalid_json"),
        (3, "a", "error", "duplicate_id"),
    ]
    assert report["problems"][0]["file"] == str(files["errors"])


def test_text_report_names_file_line_and_fix(files: dict[str, Path]) -> None:
    result = invoke("validate", files["errors"])
    assert result.exit_code == 1
    out = " ".join(result.stdout.split())
    assert f"{files['errors']}:2 invalid_json: invalid JSON" in out
    assert f"{files['errors']}:3 id=a duplicate_id: id 'a' is already used on line 1" in out
    assert "Give every record of the file its own id." in out
    assert "FAILED 3 records, 0 valid, 3 errors, 0 warnings" in out
    assert "Traceback" not in result.output


def test_garbage_file_gives_a_clean_report(dataset: Path) -> None:
    garbage = dataset / "garbage.jsonl"
    garbage.write_bytes(b"\x00\xff\xfe binary \x89PNG\n" + bytes(range(11, 256)) + b"\n")
    result = invoke("validate", garbage, "--format", "json")
    assert result.exit_code == 1
    assert [(p["line"], p["code"]) for p in json.loads(result.stdout)["problems"]] == [
        (1, "invalid_json"),
        (2, "invalid_json"),
    ]
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_write_valid_option(files: dict[str, Path], dataset: Path) -> None:
    out = dataset / "clean.jsonl"
    both = write_lines(dataset / "both.jsonl", [record("a", ["a.jpg"]), record("b", ["nope.jpg"])])
    result = invoke("validate", both, "--write-valid", out)
    assert result.exit_code == 1
    assert out.read_text() == json.dumps(record("a", ["a.jpg"])) + "\n"
    assert invoke("validate", out, "--image-root", dataset / "images").exit_code == 0


def test_max_length_with_the_real_tokenizer(dataset: Path, reference_dir: Path) -> None:
    Image.new("RGB", (336, 336)).save(dataset / "images" / "square.png")
    path = write_lines(dataset / "d.jsonl", [record("r", ["square.png"])])
    common = ("validate", path, "--num-crops", "1", "--tokenizer", reference_dir, "--format", "json")
    # 4 + 313 + 11 + 5 tokens, as in SPEC section 4 (see test_record_token_count).
    assert invoke(*common, "--max-length", "333").exit_code == 0
    result = invoke(*common, "--max-length", "332")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["problems"][0]["message"].startswith("333 tokens (text 20, images 313)")


def test_stats_json(dataset: Path, tmp_path: Path) -> None:
    lines = [
        record(str(i), ["a.jpg"] if i % 2 else ["c.jpg", "b.png"], assistant="cat" if i < 3 else "dog")
        for i in range(6)
    ]
    lines.append(record("x", ["nope.jpg"]))
    lines.append("{oops")
    path = write_lines(dataset / "d.jsonl", lines)
    plot = tmp_path / "plots" / "lengths.png"
    result = invoke("stats", path, "--num-crops", "4", "--max-length", "1000", "--format", "json", "--plot", plot)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert (stats["records"], stats["invalid_lines"], stats["unmeasured"]) == (8, 1, 1)
    assert stats["sources"] == {"test": 7}
    assert stats["images_per_record"] == {"1": 4, "2": 3}
    assert stats["labels"] == {"cat": 3, "dog": 3, "Yes": 1}
    # Estimated text: '<|user|>\n' 4, '\nWhat is shown?<|end|>\n<|assistant|>\n' 14, 'cat'/'dog' answers 5,
    # plus 1 for the empty chunk between two images. a.jpg at 4 crops: 757; c.jpg 757 + b.png (1x2 grid) 457.
    one, two = 757 + 4 + 14 + 5, 757 + 457 + 4 + 1 + 14 + 5
    assert stats["tokens"] == {"num_crops": 4, "p50": one, "p90": two, "p99": two, "max": two, "within": 0.5}
    assert stats["over_max_length"] == 0.5
    assert stats["suggested_num_crops"] == 2
    assert Image.open(plot).format == "PNG"
