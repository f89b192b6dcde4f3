"""preview.py without a browser: exact counts in the HTML, escaping, sampling, determinism, the CLI."""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from phi3v_data.cli.main import app, main
from phi3v_data.preview import PAGE_SIZE, histogram_bins, record_split, render_preview, write_preview
from phi3v_data.schema import Record
from phi3v_data.token_count import estimate_text_tokens, record_token_count

INJECTION = "Is this hateful? <script>alert('x')</script> & \"quoted\""


def _record(record_id: str, source: str, answer: str, images: list[str], user: str = "What is it?", **extra) -> str:
    data = {"id": record_id, "source": source, "conversations": [{"images": images, "user": user, "assistant": answer}]}
    return json.dumps(data | extra)


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Seven lines: three classification sources and docvqa, one line that does not parse, one missing image."""
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (1000, 500), (20, 120, 200)).save(images / "wide.jpg")
    Image.new("RGB", (8, 6), "green").save(images / "small.png")
    lines = [
        _record("42953", "hateful_memes", "no", ["wide.jpg"], INJECTION, metadata={"split": "dev_seen"}),
        _record("train-0000000001", "hateful_memes", "yes", ["small.png"]),
        _record("train-0000000002", "hateful-memes", "no", ["small.png"]),
        _record("dev-850-0-0", "nlvr2", "True", ["wide.jpg", "small.png"], "<|image_1|><|image_2|>Same?"),
        _record("1001", "docvqa", "42", []),
        "{oops",
        _record("1002", "docvqa", "x", ["nope.jpg"]),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _table(page: str, table_id: str) -> dict[str, int]:
    body = re.search(rf'<table id="{re.escape(table_id)}">.*?</table>', page)
    assert body is not None, table_id
    return {
        key: int(count) for key, count in re.findall(r'<tr><td>(.*?)</td><td class="n" data-count="(\d+)">', body[0])
    }


def _cards(page: str) -> list[int]:
    return [int(line) for line in re.findall(r'<article class="record[^"]*" id="line-(\d+)"', page)]


def test_counts_balance_and_problems_are_exact(mixed: Path) -> None:
    page, summary = render_preview(mixed)
    assert (summary.records, summary.shown, summary.pages, summary.measured) == (7, 7, 1, 5)
    assert (summary.errors, summary.warnings) == (2, 0)
    assert '<dd id="count-records" data-count="7">7</dd>' in page
    assert '<dd id="count-invalid" data-count="1">1</dd>' in page
    assert '<dd id="count-measured" data-count="5">5</dd>' in page
    assert _table(page, "sources") == {"docvqa": 2, "hateful-memes": 1, "hateful_memes": 2, "nlvr2": 1}
    assert _table(page, "splits") == {"(none)": 2, "dev": 1, "dev_seen": 1, "train": 2}
    assert _table(page, "balance-hateful_memes") == {"no": 2, "yes": 1}
    assert _table(page, "balance-nlvr2") == {"False": 0, "True": 1}
    assert '<td class="n" data-count="2">2</td><td class="n">66.7%</td>' in page
    # Six answers with five distinct values read as free text: no overall answer table.
    assert 'id="answers"' not in page
    assert _cards(page) == [1, 2, 3, 4, 5, 6, 7]
    # Each problem links to its record's card.
    assert re.findall(r'<a href="#line-(\d+)">line \d+</a></td><td>([^<]*)</td>', page) == [("6", ""), ("7", "1002")]
    assert page.count("<code>missing_image</code>") == 2  # the problems table and the card


def test_user_text_and_answers_are_escaped(mixed: Path) -> None:
    page, _ = render_preview(mixed)
    assert "<script>alert" not in page
    assert "Is this hateful? &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in page
    assert "&lt;|image_1|&gt;&lt;|image_2|&gt;Same?" in page
    assert page.count("<script>") == 1  # the page's own pagination script


def test_self_contained_and_thumbnails_downscaled(mixed: Path) -> None:
    page, _ = render_preview(mixed)
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(link.startswith(("data:image/jpeg;base64,", "#line-")) for link in links)
    assert "http://" not in page and "https://" not in page and "@import" not in page
    thumbs = re.findall(r'<img class="thumb" src="data:image/jpeg;base64,([^"]+)" width="(\d+)" height="(\d+)"', page)
    # wide.jpg twice (records 1 and 4), small.png three times; nope.jpg is missing.
    assert [(int(w), int(h)) for _, w, h in thumbs] == [(128, 64), (8, 6), (8, 6), (128, 64), (8, 6)]
    with Image.open(io.BytesIO(base64.b64decode(thumbs[0][0]))) as image:
        assert (image.format, image.size) == ("JPEG", (128, 64))
    assert page.count('<div class="noimg" title="nope.jpg">no image</div>') == 1


def test_histogram_and_card_lengths_use_the_token_count(mixed: Path) -> None:
    page, _ = render_preview(mixed, num_crops=4)
    text_only = Record.model_validate_json(mixed.read_text().splitlines()[4])
    expected = record_token_count(text_only, [], 4, estimate_text_tokens)
    assert f"· (none) · {expected:,} tokens</header>" in page
    bars = [int(count) for count in re.findall(r'<rect class="bar" data-count="(\d+)"', page)]
    assert sum(bars) == 5
    assert "Tokens per record at num_crops=4" in page


def test_histogram_bins() -> None:
    assert histogram_bins([10, 12, 30, 31], bins=4) == [(10, 15, 2), (16, 21, 0), (22, 27, 0), (28, 33, 2)]
    assert histogram_bins([5, 5, 5]) == [(5, 5, 3)]
    assert histogram_bins([1, 2, 3], bins=20) == [(1, 1, 1), (2, 2, 1), (3, 3, 1)]


def test_record_split() -> None:
    def split_of(record_id: str, metadata: dict | None = None) -> str | None:
        data = {"id": record_id, "source": "s", "conversations": [{"user": "u", "assistant": "a"}]}
        return record_split(Record.model_validate(data | ({"metadata": metadata} if metadata else {})))

    assert split_of("val-0000000012") == "val"
    assert split_of("dev-850-0-0") == "dev"
    assert split_of("train-00000001-0", {"split": "test"}) == "test"
    assert split_of("42953") is None
    assert split_of("q-a") is None


@pytest.fixture
def many(tmp_path: Path) -> Path:
    path = tmp_path / "many.jsonl"
    path.write_text("".join(_record(f"r{i}", "test", f"answer {i}", []) + "\n" for i in range(30)), encoding="utf-8")
    return path


def test_pages_and_deterministic_sample(many: Path) -> None:
    page, summary = render_preview(many)
    assert (summary.shown, summary.pages) == (30, 2)
    assert re.findall(r'<div class="page grid" data-page="(\d)">', page) == ["1", "2"]
    assert page.split('<div class="page grid" data-page="2">', 1)[1].count("<article") == 30 - PAGE_SIZE
    first, _ = render_preview(many, limit=5, seed=3)
    again, _ = render_preview(many, limit=5, seed=3)
    assert first == again
    lines = _cards(first)
    assert len(lines) == 5 and lines == sorted(lines) and set(lines) <= set(range(1, 31))
    samples = {tuple(_cards(render_preview(many, limit=5, seed=seed)[0])) for seed in range(5)}
    assert len(samples) > 1
    assert "a sample of 5 of 30 lines (seed 3;" in first
    # Counts always cover the whole file, whatever the sample.
    assert '<dd id="count-records" data-count="30">30</dd>' in first


def test_write_is_byte_identical(mixed: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one.html", tmp_path / "two.html"
    write_preview(mixed, one, limit=4, seed=1, num_crops=2)
    write_preview(mixed, two, limit=4, seed=1, num_crops=2)
    assert one.read_bytes() == two.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".html" or "incomplete" in p.name) == [
        "one.html",
        "two.html",
    ]


def test_cli_writes_the_page(mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "preview.html"
    result = CliRunner().invoke(app, ["preview", str(mixed), "--out", str(out), "--limit", "3", "--num-crops", "4"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (f"Wrote {out}: 3 of 7 records on 1 pages, 5 measured, 2 errors, 0 warnings.")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_cli_empty_file_is_one_clean_error(tmp_path: Path, monkeypatch, capsys) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["phi3v-data", "preview", str(empty), "--out", str(tmp_path / "p.html")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert " ".join(err.split()) == (
        f"Error: {empty} has no records (it is empty or has only blank lines): nothing to preview"
    )
    assert not (tmp_path / "p.html").exists()
