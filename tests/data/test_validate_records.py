"""validate_files: every problem code at its exact line, record shapes, images, length, --write-valid."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image, ImageFile
from recordkit import conversation, png_header_only, record, turn, write_lines

from phi3v_data import image_check
from phi3v_data import validate as validate_module
from phi3v_data.errors import UnsafePathError
from phi3v_data.image_check import ImageChecker
from phi3v_data.paths import default_image_root, resolve_image_path, unsafe_path_reason
from phi3v_data.schema import Record
from phi3v_data.token_count import estimate_text_tokens, record_token_count
from phi3v_data.validate import validate_files


def codes(report) -> list[tuple[int, str]]:
    return [(problem.line, problem.code) for problem in report.problems]


def test_every_code_at_its_line(dataset: Path) -> None:
    (dataset / "images" / "not_an_image.jpg").write_text("plain text")
    lines = [
        record("r1", ["a.jpg"]),  # 1
        '{"id": "r2", "source": "test",',  # 2 invalid_json
        record("r3"),  # 3 text-only
        b'{"id": "r4", "source": "t\xff", "conversations": []}',  # 4 bad UTF-8
        {"id": "r5", "source": "test", "conversations": [{"user": "Q?"}]},  # 5 schema: no assistant
        record("r6", ["b.png"]),  # 6
        record("r1", ["c.jpg"]),  # 7 duplicate of line 1
        record("r8", ["../a.jpg"]),  # 8 unsafe_path
        record("r9", ["nope.jpg"]),  # 9 missing_image
        record("r10", ["not_an_image.jpg"]),  # 10 corrupt_image
        record("r11", ["a.jpg"], user="<|image_2|>\nWhat is shown?"),  # 11 image_tag_mismatch
        record("r12", ["a.jpg"], split="train"),  # 12 unknown_key (a warning)
        record("r13", user="word " * 5000),  # 13 too_long
        "",  # 14 blank, skipped
        record("r15", ["a.jpg", "c.jpg"]),  # 15
        record("r1"),  # 16 duplicate again
    ]
    path = write_lines(dataset / "data.jsonl", lines)
    empty = write_lines(dataset / "empty.jsonl", ["", "   "])
    report = validate_files([path, empty], max_length=6000)
    assert codes(report) == [
        (2, "invalid_json"),
        (4, "invalid_json"),
        (5, "schema"),
        (7, "duplicate_id"),
        (8, "unsafe_path"),
        (9, "missing_image"),
        (10, "corrupt_image"),
        (11, "image_tag_mismatch"),
        (12, "unknown_key"),
        (13, "too_long"),
        (16, "duplicate_id"),
        (0, "empty_file"),
    ]
    assert (report.records, report.valid, report.errors, report.warnings) == (15, 5, 11, 1)
    by_line = {problem.line: problem for problem in report.problems}
    assert by_line[7].message == "id 'r1' is already used on line 1"
    assert by_line[16].message == "id 'r1' is already used on line 1"
    assert by_line[4].message == "not valid UTF-8: byte 0xff at byte 26 of the line"
    assert by_line[5].message == "conversations[0].assistant: Field required"
    assert (by_line[5].id, by_line[2].id, by_line[7].id) == ("r5", None, "r1")
    assert by_line[12].severity == "warning"
    assert by_line[12].message == "unknown key 'split' in the record"
    assert by_line[0].file == str(empty)
    assert {p.file for p in report.problems[:-1]} == {str(path)}


def test_valid_records_of_every_shape(dataset: Path) -> None:
    multi_turn = conversation(
        "mt",
        turn("<|image_1|><|image_2|>\nCompare them.", "Same.", ["a.jpg", "b.png"]),
        turn("Which is bigger?", "The first."),
        turn("And <|image_3|>?", "Square.", ["c.jpg"]),
        metadata={"answers": ["Same."]},
    )
    untagged = conversation("untagged", turn("First?", "A.", ["a.jpg"]), turn("Then?", "B.", ["b.png", "c.jpg"]))
    path = write_lines(dataset / "d.jsonl", [multi_turn, untagged, record("text", images=[])])
    report = validate_files([path])
    assert report.problems == []
    assert (report.records, report.valid, report.errors, report.warnings) == (3, 3, 0, 0)


@pytest.mark.parametrize(
    ("turns", "message"),
    [
        (
            [("<|image_1|> a", 1), ("<|image_1|> b", 1)],
            "conversations[1]: user text has tags <|image_1|> but the turn has 1 image(s); expected <|image_2|>",
        ),
        ([("<|image_1|> a", 0)], "conversations[0]: user text has tags <|image_1|> but the turn has 0 image(s)"),
        ([("<|image_2|><|image_1|> a", 2)], "conversations[0]: user text has tags <|image_2|>, <|image_1|> but"),
        ([("<|image_1|> a", 2)], "conversations[0]: user text has tags <|image_1|> but the turn has 2 image(s)"),
    ],
)
def test_tags_numbered_globally(dataset: Path, turns: list[tuple[str, int]], message: str) -> None:
    conversations = [{"images": ["a.jpg"] * count, "user": user, "assistant": "x"} for user, count in turns]
    path = write_lines(dataset / "d.jsonl", [record("ok"), {"id": "t", "source": "s", "conversations": conversations}])
    report = validate_files([path])
    assert codes(report) == [(2, "image_tag_mismatch")]
    assert report.problems[0].message.startswith(message)


def test_valid_records_are_handed_on_with_their_image_sizes(dataset: Path) -> None:
    first = write_lines(dataset / "a.jsonl", [record("a1", ["a.jpg", "tall.png"]), record("a2", ["nope.jpg"])])
    second = write_lines(dataset / "b.jsonl", ["{bad", record("b1"), record("b2", ["b.png"], split="x")])
    seen = []
    report = validate_files(
        [first, second],
        on_valid=lambda index, entry: seen.append((index, entry.line, entry.record.id, entry.image_sizes)),
    )
    assert (report.records, report.valid) == (5, 3)
    assert seen == [(0, 1, "a1", [(320, 240), (200, 1000)]), (1, 2, "b1", []), (1, 3, "b2", [(100, 50)])]


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        ("", "the path is empty"),
        ("/data/a.jpg", "the path is absolute"),
        ("C:/data/a.jpg", "the path starts with a drive letter"),
        ("val\\a.jpg", "the path contains a backslash (use '/')"),
        ("../a.jpg", "the path has a '..' component"),
        ("val/../../a.jpg", "the path has a '..' component"),
        ("val/a\x00.jpg", "the path contains a NUL character"),
        ("val/a.jpg", None),
        ("val/a..b.jpg", None),
        ("./a.jpg", None),
    ],
)
def test_unsafe_paths(relative: str, reason: str | None) -> None:
    assert unsafe_path_reason(relative) == reason
    if reason is None:
        assert resolve_image_path(Path("root"), relative) == Path("root") / relative
    else:
        with pytest.raises(UnsafePathError, match="unsafe image path"):
            resolve_image_path(Path("root"), relative)


def test_image_root_default_and_override(dataset: Path) -> None:
    assert default_image_root(Path("data/ucf101/ucf101_val.jsonl")) == Path("data/ucf101/images")
    other = dataset / "elsewhere"
    other.mkdir()
    Image.new("RGB", (10, 10)).save(other / "only_here.png")
    path = write_lines(dataset / "d.jsonl", [record("a", ["only_here.png"]), record("b", ["a.jpg"])])
    assert codes(validate_files([path])) == [(1, "missing_image")]
    assert codes(validate_files([path], image_root=other)) == [(2, "missing_image")]


def test_symlinks_are_followed(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("other_disk")
    Image.new("RGB", (64, 48)).save(outside / "frame.png")
    os.symlink(outside, dataset / "images" / "linked_folder")
    os.symlink(outside / "gone.png", dataset / "images" / "broken.png")
    path = write_lines(dataset / "d.jsonl", [record("a", ["linked_folder/frame.png"]), record("b", ["broken.png"])])
    report = validate_files([path])
    assert codes(report) == [(2, "missing_image")]
    assert "broken symlink" in report.problems[0].message


def _corrupt_images(images: Path) -> None:
    jpeg = (images / "a.jpg").read_bytes()
    (images / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    png = (images / "tall.png").read_bytes()
    (images / "truncated.png").write_bytes(png[:-20])
    start = png.index(b"IDAT") + 8
    (images / "bad_data.png").write_bytes(png[:start] + b"\x00" * 40 + png[start + 40 :])
    png_header_only(images / "bomb.png", 30000, 30000)
    png_header_only(images / "over_limit.png", 10000, 10000)


def test_corrupt_images_from_header(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _corrupt_images(dataset / "images")

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("a header check decoded pixel data")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    names = ["truncated.jpg", "truncated.png", "bad_data.png", "bomb.png", "over_limit.png", "a.jpg"]
    path = write_lines(dataset / "d.jsonl", [record(name, [name]) for name in names])
    report = validate_files([path])
    assert codes(report) == [(1, "corrupt_image"), (2, "corrupt_image"), (4, "corrupt_image"), (5, "corrupt_image")]
    messages = [problem.message for problem in report.problems]
    assert messages[0] == "conversations[0].images[0] 'truncated.jpg': truncated JPEG file (no end marker)"
    assert messages[1] == "conversations[0].images[0] 'truncated.png': truncated PNG file (no end marker)"
    assert "decompression bomb" in messages[2]
    limit = Image.MAX_IMAGE_PIXELS
    assert messages[3] == (
        f"conversations[0].images[0] 'over_limit.png': 10000x10000 = 100,000,000 pixels is over Pillow's "
        f"decompression-bomb limit of {limit:,} (judged from the header, not decoded)"
    )


def test_deep_decodes(dataset: Path) -> None:
    _corrupt_images(dataset / "images")
    path = write_lines(dataset / "d.jsonl", [record("a", ["a.jpg"]), record("b", ["bad_data.png"])])
    assert codes(validate_files([path])) == []
    report = validate_files([path], deep=True)
    assert codes(report) == [(2, "corrupt_image")]
    assert report.problems[0].message.startswith("conversations[0].images[0] 'bad_data.png': cannot decode image")


def test_no_check_images(dataset: Path) -> None:
    path = write_lines(dataset / "d.jsonl", [record("a", ["nope.jpg"]), record("b", ["../x.jpg"])])
    assert codes(validate_files([path], check_images=False)) == [(2, "unsafe_path")]


def test_too_long_counts_the_whole_conversation(dataset: Path) -> None:
    line = conversation("long", turn("Compare.", "Same.", ["a.jpg", "tall.png"]), turn("Sure?", "Yes."))
    path = write_lines(dataset / "d.jsonl", [line])
    total = record_token_count(Record.model_validate(line), [(320, 240), (200, 1000)], 4, estimate_text_tokens)
    # 757 + 781 image tokens at num_crops=4. Estimated text, BOS where a chunk starts: turn 1 has the chunks
    # "<|user|>\n" 3+1, "" 0+1 (between the two tags), "\nCompare.<|end|>\n<|assistant|>\n" 11+1 and the
    # earlier answer "Same.<|end|>\n" 5; turn 2 continues that chunk, "<|user|>\nSure?<|end|>\n<|assistant|>\n"
    # 11 without BOS, and ends with the final answer "Yes.<|end|>\n<|endoftext|>" 6: 39.
    assert total == 757 + 781 + 39
    assert codes(validate_files([path], max_length=total, num_crops=4)) == []
    report = validate_files([path], max_length=total - 1, num_crops=4)
    assert codes(report) == [(1, "too_long")]
    assert report.problems[0].message == (
        f"{total:,} tokens (text 39, images 1,538) at num_crops=4 > {total - 1:,}; fits at --num-crops 2 (821 tokens)"
    )
    text_only = write_lines(dataset / "t.jsonl", [record("t", user="word " * 100), record("i", ["a.jpg"])])
    assert codes(validate_files([text_only], max_length=50, check_images=False)) == [(1, "too_long")]


def test_strict_makes_warnings_errors(dataset: Path) -> None:
    lines = [record("a", ["a.jpg"], note="x")]
    lines.append({"id": "b", "source": "s", "conversations": [{"user": "u", "assistant": "a", "turn_id": 3}]})
    path = write_lines(dataset / "d.jsonl", lines)
    report = validate_files([path])
    assert [(p.line, p.severity) for p in report.problems] == [(1, "warning"), (2, "warning")]
    assert report.problems[1].message == "unknown key 'turn_id' in conversations[0]"
    assert (report.valid, report.errors, report.ok) == (2, 0, True)
    strict = validate_files([path], strict=True)
    assert [(p.line, p.severity) for p in strict.problems] == [(1, "error"), (2, "error")]
    assert (strict.valid, strict.errors, strict.ok) == (0, 2, False)


def test_line_endings_bom_and_blank_lines(dataset: Path) -> None:
    first = b"\xef\xbb\xbf" + json.dumps(record("a")).encode() + b"\r"
    path = write_lines(dataset / "d.jsonl", [first, "", " \t", json.dumps(record("b")) + "\r", "{oops"])
    report = validate_files([path])
    assert codes(report) == [(5, "invalid_json")]
    assert report.records == 3


def test_write_valid_keeps_exact_lines(dataset: Path) -> None:
    lines = [record("a", ["a.jpg"]), record("b", ["nope.jpg"]), '{"bad', record("c", extra_key=1), record("a")]
    path = write_lines(dataset / "d.jsonl", lines)
    out = dataset / "out" / "valid.jsonl"
    report = validate_files([path], write_valid=out)
    assert report.valid == 2
    assert out.read_text().splitlines() == [json.dumps(lines[0]), json.dumps(lines[3])]
    validate_files([out], image_root=dataset / "images", write_valid=dataset / "again.jsonl")
    assert (dataset / "again.jsonl").read_bytes() == out.read_bytes()


def test_write_valid_is_atomic(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_lines(dataset / "d.jsonl", [record(str(i), ["a.jpg"]) for i in range(10)])
    out = dataset / "valid.jsonl"
    out.write_text("previous\n")
    calls = 0
    original = ImageChecker.get

    def interrupted(self: ImageChecker, image: str):
        nonlocal calls
        calls += 1
        if calls == 5:
            raise KeyboardInterrupt
        return original(self, image)

    monkeypatch.setattr(ImageChecker, "get", interrupted)
    with pytest.raises(KeyboardInterrupt):
        validate_files([path], write_valid=out)
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in dataset.iterdir()) == ["d.jsonl", "images", "valid.jsonl"]


def test_workers_and_chunks_give_the_same_report(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_module, "CHUNK_RECORDS", 3)
    monkeypatch.setattr(image_check, "BATCH_SIZE", 2)  # start the worker processes on the first chunk
    names = ["a.jpg", "b.png", "nope.jpg", "c.jpg", "tall.png"]
    lines = [record(str(i), [names[i % 5], names[(i * 3) % 5]]) for i in range(23)]
    path = write_lines(dataset / "d.jsonl", lines)
    one = validate_files([path], max_length=3000, workers=1)
    two = validate_files([path], max_length=3000, workers=2)
    assert one == two
    # Every pair without nope.jpg is over 3000 tokens at num_crops=16 (e.g. 1921 + 1921 for a.jpg twice).
    assert codes(one) == [(i + 1, "missing_image" if i % 5 in (2, 4) else "too_long") for i in range(23)]
