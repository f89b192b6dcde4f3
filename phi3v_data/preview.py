"""A record file as one self-contained HTML page: counts, a token-length histogram, a record grid, problems.

The page needs no server and no network: CSS and JavaScript are inline and the thumbnails are JPEG
``data:`` URIs. Counts, token lengths and problems cover every line of the file (one validator pass,
image headers only); the grid shows a sample of ``limit`` records drawn with ``seed`` (reservoir
sampling, so memory grows with ``limit``, not with the file), in file order. The same file and options
give byte-identical HTML.
"""

from __future__ import annotations

import base64
import html
import io
import math
import random
import re
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from phi3v_data.errors import Phi3vDataError
from phi3v_data.image_check import check_images
from phi3v_data.io import atomic_write_text
from phi3v_data.schema import Record
from phi3v_data.stats import AnswerTally
from phi3v_data.token_count import record_token_count, text_counter
from phi3v_data.validate import CheckedRecord, Problem, checked_records

DEFAULT_LIMIT = 240
PAGE_SIZE = 24
THUMBNAIL_PX = 128
THUMBNAIL_QUALITY = 80
HISTOGRAM_BINS = 20
SHOWN_PROBLEMS = 1000
TEXT_CHARS = 2000
"""User texts and answers longer than this are cut in the grid."""
NO_SPLIT = "(none)"

_ID_SPLIT = re.compile(r"([A-Za-z][A-Za-z0-9_]*)-\d")


def record_split(record: Record) -> str | None:
    """``metadata.split`` when the record has one, else the ``<split>-<number>`` prefix of converter ids."""
    split = (record.metadata or {}).get("split")
    if isinstance(split, str) and split.strip():
        return split
    match = _ID_SPLIT.match(record.id)
    return match[1] if match else None


@dataclass
class PreviewSummary:
    """What a preview page holds: ``shown`` of ``records`` lines in the grid, on ``pages`` pages."""

    records: int
    shown: int
    pages: int
    measured: int
    errors: int
    warnings: int


@dataclass
class _Collected:
    records: int = 0
    invalid: int = 0
    sources: Counter[str] = field(default_factory=Counter)
    splits: Counter[str] = field(default_factory=Counter)
    answers: AnswerTally = field(default_factory=AnswerTally)
    lengths: array[int] = field(default_factory=lambda: array("i"))
    """Token lengths of the measured records."""
    problems: list[Problem] = field(default_factory=list)
    sample: list[tuple[CheckedRecord, int | None]] = field(default_factory=list)
    """The grid's lines, each with its token length (None when not measured)."""


def _collect(
    path: Path, *, image_root: Path | None, limit: int, seed: int, num_crops: int, tokenizer: Path | None
) -> _Collected:
    data = _Collected()
    counter = text_counter(tokenizer)
    rng = random.Random(seed)
    with checked_records([path], image_root=image_root, num_crops=num_crops) as files:
        for _path, entries in files:
            for index, entry in enumerate(entries):
                data.records += 1
                data.problems.extend(entry.problems)
                record = entry.record
                length = None
                if record is None:
                    data.invalid += 1
                else:
                    data.sources[record.source] += 1
                    data.splits[record_split(record) or NO_SPLIT] += 1
                    data.answers.add(record)
                    if entry.image_sizes is not None and entry.tags_ok:
                        length = record_token_count(record, entry.image_sizes, num_crops, counter)
                        data.lengths.append(length)
                if index < limit:
                    data.sample.append((entry, length))
                elif (slot := rng.randrange(index + 1)) < limit:
                    data.sample[slot] = (entry, length)
    if data.records == 0:
        raise Phi3vDataError(f"{path} has no records (it is empty or has only blank lines): nothing to preview")
    data.sample.sort(key=lambda item: item[0].line)
    return data


def thumbnail(path: str) -> tuple[str, int, int] | None:
    """A JPEG ``data:`` URI of the image at most THUMBNAIL_PX on its longer side, with its width and height;
    None when the image is missing or broken. The header is checked first, so a decompression bomb is
    never decoded."""
    if check_images([path])[0].problem is not None:
        return None
    try:
        with Image.open(path) as image:
            image.draft("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))
            small = image.convert("RGB")
    except OSError:  # Pillow reports pixel data it cannot decode (truncated, corrupt) as OSError
        return None
    small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), *small.size


def histogram_bins(lengths: list[int], bins: int = HISTOGRAM_BINS) -> list[tuple[int, int, int]]:
    """(first, last, count) of equal integer-width bins from the shortest to the longest length."""
    low, high = min(lengths), max(lengths)
    width = math.ceil((high - low + 1) / bins)
    counts = Counter((length - low) // width for length in lengths)
    return [(low + i * width, low + (i + 1) * width - 1, counts[i]) for i in range(math.ceil((high - low + 1) / width))]


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _cut(text: str) -> str:
    if len(text) <= TEXT_CHARS:
        return _e(text)
    return f'{_e(text[:TEXT_CHARS])}<span class="cut">… ({len(text) - TEXT_CHARS:,} more characters)</span>'


def _share(count: int, total: int) -> str:
    return f"{count / total:.1%}" if total else "-"


def _table(table_id: str, title: str, header: str, counts: dict[str, int], total: int) -> str:
    rows = "".join(
        f'<tr><td>{_e(key)}</td><td class="n" data-count="{count}">{count:,}</td>'
        f'<td class="n">{_share(count, total)}</td></tr>'
        for key, count in counts.items()
    )
    return (
        f'<table id="{table_id}"><caption>{_e(title)}</caption>'
        f"<thead><tr><th>{_e(header)}</th><th>records</th><th>share</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _histogram(lengths: list[int], num_crops: int) -> str:
    if not lengths:
        return '<p id="no-histogram">No record could be measured (bad images or tags: see the problems).</p>'
    bins = histogram_bins(lengths)
    tallest = max(count for _first, _last, count in bins)
    plot_width, plot_height, top = 720, 180, 10
    bar = plot_width / len(bins)
    parts = []
    for index, (first, last, count) in enumerate(bins):
        height = plot_height * count / tallest
        span = f"{first:,}" if first == last else f"{first:,}–{last:,}"
        parts.append(
            f'<rect class="bar" data-count="{count}" data-first="{first}" data-last="{last}" '
            f'x="{index * bar + 1:.2f}" y="{top + plot_height - height:.2f}" width="{bar - 2:.2f}" '
            f'height="{height:.2f}"><title>{span} tokens: {count:,} records</title></rect>'
        )
    axis_y = top + plot_height + 16
    labels = (
        f'<text x="0" y="{axis_y}">{bins[0][0]:,}</text>'
        f'<text x="{plot_width}" y="{axis_y}" text-anchor="end">{bins[-1][1]:,} tokens</text>'
    )
    return (
        f'<svg id="histogram" role="img" viewBox="0 0 {plot_width} {axis_y + 4}" width="{plot_width}" '
        f'height="{axis_y + 4}" aria-label="token lengths at num_crops={num_crops}">{"".join(parts)}{labels}</svg>'
        f'<p class="note">{len(lengths):,} measured records in {len(bins)} bins; tallest bar: {tallest:,} records.</p>'
    )


def _problem_rows(problems: list[Problem], shown_lines: set[int]) -> str:
    rows = []
    for problem in problems[:SHOWN_PROBLEMS]:
        if problem.line in shown_lines:
            where = f'<a href="#line-{problem.line}">line {problem.line}</a>'
        elif problem.line:
            where = f'line {problem.line} <span class="note">(not in the sample)</span>'
        else:
            where = "file"
        record_id = "" if problem.id is None else _e(problem.id)
        rows.append(
            f'<tr class="{problem.severity}"><td>{where}</td><td>{record_id}</td><td>{_e(problem.severity)}</td>'
            f"<td><code>{_e(problem.code)}</code></td><td>{_e(problem.message)}</td></tr>"
        )
    more = len(problems) - SHOWN_PROBLEMS
    note = f'<p class="note">{more:,} more problems not listed: run `phi3v-data validate`.</p>' if more > 0 else ""
    return (
        '<table id="problems-table"><thead><tr><th>where</th><th>id</th><th>severity</th><th>code</th>'
        f"<th>message</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{note}"
    )


def _card(entry: CheckedRecord, length: int | None, thumbnails: dict[str, tuple[str, int, int] | None]) -> str:
    record = entry.record
    problems = "".join(
        f'<li class="{p.severity}"><code>{_e(p.code)}</code> {_e(p.message)}</li>' for p in entry.problems
    )
    problems = f'<ul class="record-problems">{problems}</ul>' if problems else ""
    if record is None:
        raw = entry.raw.decode("utf-8", "replace")
        body = f'<p class="invalid">This line does not parse:</p><pre class="raw">{_cut(raw)}</pre>'
        header = f"<header>line {entry.line}</header>"
        return f'<article class="record bad" id="line-{entry.line}">{header}{body}{problems}</article>'
    split = record_split(record) or NO_SPLIT
    tokens = f"{length:,} tokens" if length is not None else "length unknown"
    header = (
        f"<header>line {entry.line} · <code>{_e(record.id)}</code> · {_e(record.source)} · {_e(split)} · "
        f"{tokens}</header>"
    )
    paths: Iterator[str | None] = iter(entry.image_paths or [])
    turns = []
    for turn in record.conversations:
        images = []
        for relative in turn.images:
            path = next(paths)
            if path is not None and path not in thumbnails:
                thumbnails[path] = thumbnail(path)
            thumb = thumbnails.get(path) if path is not None else None
            if thumb is None:
                images.append(f'<div class="noimg" title="{_e(relative)}">no image</div>')
            else:
                uri, width, height = thumb
                images.append(
                    f'<img class="thumb" src="{uri}" width="{width}" height="{height}" '
                    f'alt="{_e(relative)}" title="{_e(relative)}">'
                )
        thumbs = f'<div class="thumbs">{"".join(images)}</div>' if images else ""
        turns.append(
            f'<div class="turn">{thumbs}<p class="user">{_cut(turn.user)}</p>'
            f'<p class="assistant">{_cut(turn.assistant)}</p></div>'
        )
    bad = " bad" if entry.has_errors else ""
    return f'<article class="record{bad}" id="line-{entry.line}">{header}{"".join(turns)}{problems}</article>'


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.3rem;word-break:break-all}h2{font-size:1.1rem;margin-top:2rem}
.tables{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}
table{border-collapse:collapse;background:#fff}caption{text-align:left;font-weight:600;padding:.2rem 0}
th,td{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}td.n{text-align:right}
.note{color:#666}.bar{fill:#4477aa}svg text{font-size:12px;fill:#444}
tr.error td{background:#fdecea}tr.warning td{background:#fff8e1}
.pager{margin:1rem 0;display:flex;gap:.3rem;flex-wrap:wrap;align-items:center}
.pager button[aria-current=page]{font-weight:700;background:#4477aa;color:#fff}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:.8rem}.page[hidden]{display:none}
#summary{display:grid;grid-template-columns:max-content max-content;gap:.1rem 1rem}#summary dd{margin:0}
.record{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6rem;overflow-wrap:anywhere}
.record.bad{border-color:#cc3311}.record:target{outline:3px solid #ee7733}
.record header{font-size:12px;color:#555;margin-bottom:.4rem}
.thumbs{display:flex;flex-wrap:wrap;gap:4px}.thumb{max-width:128px;max-height:128px}
.noimg{width:128px;height:64px;background:#eee;color:#a00;display:flex;align-items:center;justify-content:center}
.user,.assistant,.raw{white-space:pre-wrap;margin:.3rem 0}.assistant{font-weight:600;color:#225522}
.raw{font-size:12px;background:#f4f4f4}.record-problems{margin:.3rem 0;padding-left:1.2rem;color:#a00}
"""

SCRIPT = """
(function () {
  var pages = Array.prototype.slice.call(document.querySelectorAll(".page"));
  var buttons = Array.prototype.slice.call(document.querySelectorAll(".page-button"));
  var label = document.getElementById("page-label");
  var current = 1;
  function show(number) {
    current = Math.min(Math.max(number, 1), pages.length);
    pages.forEach(function (page) { page.hidden = Number(page.dataset.page) !== current; });
    buttons.forEach(function (button) {
      button.setAttribute("aria-current", Number(button.dataset.page) === current ? "page" : "false");
    });
    label.textContent = "page " + current + " of " + pages.length;
  }
  function follow() {
    var target = location.hash ? document.getElementById(location.hash.slice(1)) : null;
    var page = target ? target.closest(".page") : null;
    if (page) { show(Number(page.dataset.page)); target.scrollIntoView(); }
  }
  document.getElementById("prev").addEventListener("click", function () { show(current - 1); });
  document.getElementById("next").addEventListener("click", function () { show(current + 1); });
  buttons.forEach(function (button) {
    button.addEventListener("click", function () { show(Number(button.dataset.page)); });
  });
  window.addEventListener("hashchange", follow);
  show(1);
  follow();
})();
"""


def render_preview(
    path: Path,
    *,
    image_root: Path | None = None,
    limit: int = DEFAULT_LIMIT,
    seed: int = 0,
    num_crops: int = 16,
    tokenizer: Path | None = None,
) -> tuple[str, PreviewSummary]:
    """The HTML page of one record file, and its summary.

    Raises:
        Phi3vDataError: the file cannot be read or has no records.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    data = _collect(path, image_root=image_root, limit=limit, seed=seed, num_crops=num_crops, tokenizer=tokenizer)
    parsed = data.records - data.invalid
    errors = sum(problem.severity == "error" for problem in data.problems)
    warnings = len(data.problems) - errors
    lengths = data.lengths.tolist()
    shown = len(data.sample)
    pages = math.ceil(shown / PAGE_SIZE)

    tables = [
        _table("sources", "Records per source", "source", dict(sorted(data.sources.items())), parsed),
        _table("splits", "Records per split", "split", dict(sorted(data.splits.items())), parsed),
    ]
    labels = data.answers.labels()
    if labels is not None:
        tables.append(_table("answers", "Answers of the last turn", "answer", labels, parsed))
    for balance in data.answers.class_balance():
        title = f"Class balance of {balance.source}"
        tables.append(_table(f"balance-{_e(balance.source)}", title, "label", balance.counts, balance.records))

    thumbnails: dict[str, tuple[str, int, int] | None] = {}
    page_blocks = []
    for start in range(0, shown, PAGE_SIZE):
        cards = "".join(_card(entry, length, thumbnails) for entry, length in data.sample[start : start + PAGE_SIZE])
        page_blocks.append(f'<div class="page grid" data-page="{start // PAGE_SIZE + 1}">{cards}</div>')
    page_buttons = "".join(
        f'<button type="button" class="page-button" data-page="{n}">{n}</button>' for n in range(1, pages + 1)
    )
    sample_note = (
        f"all {data.records:,} lines"
        if shown == data.records
        else f"a sample of {shown:,} of {data.records:,} lines (seed {seed}; --limit and --seed change it)"
    )
    summary = (
        f'<dl id="summary"><dt>records</dt><dd id="count-records" data-count="{data.records}">{data.records:,}</dd>'
        f'<dt>lines that do not parse</dt><dd id="count-invalid" data-count="{data.invalid}">{data.invalid:,}</dd>'
        f'<dt>measured (token length known)</dt><dd id="count-measured" data-count="{len(lengths)}">'
        f"{len(lengths):,}</dd>"
        f'<dt>problems</dt><dd id="count-problems" data-errors="{errors}" data-warnings="{warnings}">'
        f"{errors:,} errors, {warnings:,} warnings</dd></dl>"
    )
    shown_lines = {entry.line for entry, _length in data.sample}
    problems = _problem_rows(data.problems, shown_lines) if data.problems else "<p>None.</p>"
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Preview of {_e(path.name)}</title><style>{STYLE}</style></head><body>"
        f"<h1>Preview of {_e(path)}</h1>{summary}"
        f'<section id="counts"><h2>Counts</h2><div class="tables">{"".join(tables)}</div></section>'
        f'<section id="lengths"><h2>Tokens per record at num_crops={num_crops}</h2>'
        f"{_histogram(lengths, num_crops)}</section>"
        f'<section id="problems"><h2>Problems</h2>{problems}</section>'
        f'<section id="records"><h2>Records</h2><p class="note">The grid shows {sample_note}.</p>'
        f'<nav class="pager"><button type="button" id="prev">previous</button>{page_buttons}'
        f'<button type="button" id="next">next</button><span id="page-label">page 1 of {pages}</span></nav>'
        f"{''.join(page_blocks)}</section><script>{SCRIPT}</script></body></html>\n"
    )
    result = PreviewSummary(
        records=data.records,
        shown=shown,
        pages=pages,
        measured=len(lengths),
        errors=errors,
        warnings=warnings,
    )
    return page, result


def write_preview(
    path: Path,
    out: Path,
    *,
    image_root: Path | None = None,
    limit: int = DEFAULT_LIMIT,
    seed: int = 0,
    num_crops: int = 16,
    tokenizer: Path | None = None,
) -> PreviewSummary:
    """Writes the preview page of ``path`` to ``out`` atomically (see :func:`render_preview`)."""
    page, summary = render_preview(
        path, image_root=image_root, limit=limit, seed=seed, num_crops=num_crops, tokenizer=tokenizer
    )
    atomic_write_text(out, page)
    return summary
