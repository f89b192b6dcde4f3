"""`phi3v-data validate EVAL --against TRAIN`: shared images by content hash, shared UCF-101 video groups."""

from __future__ import annotations

import json
from pathlib import Path

from interop_files import png
from typer.testing import CliRunner

from phi3v_data.cli.main import app
from phi3v_data.leakage import Overlap, find_leakage


def write(folder: Path, name: str, records: list[dict], images: dict[str, bytes]) -> Path:
    for rel, data in images.items():
        (folder / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / "images" / rel).write_bytes(data)
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def rec(rid: str, images: list[str], video: str | None = None) -> dict:
    record = {"id": rid, "source": "x", "conversations": [{"images": images, "user": "q", "assistant": "a"}]}
    if video:
        record["metadata"] = {"video": video}
    return record


def test_shared_image_content_and_video_group(tmp_path: Path) -> None:
    red, blue = png("red"), png("blue")
    train = write(
        tmp_path / "train",
        "train.jsonl",
        [rec("t1", ["a.png"]), rec("t2", ["c.png"], "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi")],
        {"a.png": red, "c.png": png("green")},
    )
    evaluation = write(
        tmp_path / "eval",
        "val.jsonl",
        [
            rec("e1", ["other_name.png"]),
            rec("e2", ["b.png"]),
            rec("e3", ["d.png"], "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c04.avi"),
        ],
        {"other_name.png": red, "b.png": blue, "d.png": png("white")},
    )
    assert find_leakage([evaluation], [train]) == [
        Overlap(str(evaluation), 1, "e1", "image", "other_name.png", "train.jsonl:1 (t1)"),
        Overlap(str(evaluation), 3, "e3", "video_group", "applyeyemakeup/g08", "train.jsonl:2 (t2)"),
    ]
    result = CliRunner().invoke(app, ["validate", str(evaluation), "--against", str(train)])
    assert result.exit_code == 1
    assert "2 overlap(s) with" in result.output
    clean = write(tmp_path / "clean", "val.jsonl", [rec("e2", ["b.png"])], {"b.png": blue})
    result = CliRunner().invoke(app, ["validate", str(clean), "--against", str(train)])
    assert result.exit_code == 0, result.output
    assert "0 overlap(s) with" in result.output
