"""The preview page in a real headless Chromium (Debian's package, driven by Playwright; no browser download).

`make test` installs chromium where it can (`make browser`); without it, or without the `playwright`
package, the test skips with the reason. PHI3V_CHROMIUM names another Chromium binary.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from phi3v_data.preview import PAGE_SIZE, histogram_bins, write_preview
from phi3v_data.stats import compute_stats

CHROMIUM_ENV = "PHI3V_CHROMIUM"
RECORDS = 30
MISSING_LINE = 3


def chromium_binary() -> str | None:
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        return shutil.which(named)
    return next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)


@pytest.fixture
def browser():
    binary = chromium_binary()
    if binary is None:
        pytest.skip(f"no Chromium installed (apt-get install chromium, `make browser`, or set {CHROMIUM_ENV})")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox refuses to start as root, as in containers and CI.
        launched = playwright.chromium.launch(executable_path=binary, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """30 records on two pages: hateful_memes and nlvr2 with images of three sizes, one missing image."""
    images = tmp_path / "images"
    images.mkdir()
    sizes = {"wide.jpg": (640, 320), "tall.png": (90, 300), "square.jpg": (336, 336)}
    for index, (name, size) in enumerate(sizes.items()):
        Image.new("RGB", size, (60 * index, 120, 200 - 60 * index)).save(images / name)
    names = list(sizes)
    lines = []
    for i in range(RECORDS):
        source, answer = ("hateful_memes", "yes" if i % 3 else "no") if i % 2 else ("nlvr2", "True")
        image = "missing.jpg" if i + 1 == MISSING_LINE else names[i % 3]
        turns = [{"images": [image], "user": f"Question {i} <b>bold?</b>", "assistant": answer}]
        lines.append(json.dumps({"id": f"train-{i:010d}", "source": source, "conversations": turns}))
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(page, table_id: str) -> dict[str, int]:
    cells = page.eval_on_selector_all(
        f"#{table_id} tbody tr", "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])"
    )
    return {key: int(count.replace(",", "")) for key, count in cells}


def test_preview_page_in_chromium(browser, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "preview.html"
    write_preview(dataset, out, num_crops=4)
    records = [json.loads(line) for line in dataset.read_text(encoding="utf-8").splitlines()]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda request: errors.append(f"request {request.url}") if request.url != out.as_uri() else None)
    page.goto(out.as_uri())

    # Every thumbnail decoded, on hidden pages too.
    widths = page.eval_on_selector_all(
        "img.thumb", "images => Promise.all(images.map(i => i.decode().then(() => i.naturalWidth)))"
    )
    assert len(widths) == RECORDS - 1 and all(width > 0 for width in widths)
    assert page.locator(".noimg").count() == 1

    # The counts shown match the file.
    assert page.text_content("#count-records") == str(RECORDS)
    assert _rows(page, "sources") == dict(sorted(Counter(r["source"] for r in records).items()))
    assert _rows(page, "splits") == {"train": RECORDS}
    answers = Counter(r["conversations"][0]["assistant"] for r in records if r["source"] == "hateful_memes")
    assert _rows(page, "balance-hateful_memes") == {"no": answers["no"], "yes": answers["yes"]}

    # The histogram rendered: the bars of the lengths `stats` measures on the same file, drawn with a height.
    _stats, lengths = compute_stats(dataset, num_crops=4)
    expected = histogram_bins(lengths.tolist())
    bars = page.eval_on_selector_all(
        "#histogram rect.bar", "bars => bars.map(b => [Number(b.dataset.count), b.getBoundingClientRect().height])"
    )
    assert [count for count, _height in bars] == [count for _first, _last, count in expected]
    assert all((height > 0) == (count > 0) for count, height in bars)

    # Pagination: page 1, then page 2; a problem link brings its record's page back.
    assert page.text_content("#page-label") == "page 1 of 2"
    assert page.locator(".page:visible article.record").count() == PAGE_SIZE
    page.click(".page-button[data-page='2']")
    assert page.text_content("#page-label") == "page 2 of 2"
    visible = page.eval_on_selector_all(".page:visible article.record", "cards => cards.map(c => c.id)")
    assert visible == [f"line-{n}" for n in range(PAGE_SIZE + 1, RECORDS + 1)]
    page.screenshot(path=str(tmp_path / "preview-page-2.png"), full_page=True)
    page.click(f"#problems a[href='#line-{MISSING_LINE}']")
    page.wait_for_function("document.getElementById('page-label').textContent === 'page 1 of 2'")
    assert page.locator(f"#line-{MISSING_LINE}").is_visible()

    assert errors == []
    with Image.open(tmp_path / "preview-page-2.png") as shot:
        assert shot.width == 1280 and shot.height > 900
