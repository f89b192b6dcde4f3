"""Property: however a the_cauldron table is cut into shards, the conversion is byte-identical."""

from __future__ import annotations

import tempfile
from pathlib import Path

from convert_helpers import png, tree_bytes, write_parquet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phi3v_data.converters import HatefulMemesConverter, run_conversion

ROWS = st.lists(
    st.tuples(st.integers(0, 3), st.lists(st.sampled_from(["Yes", "No", "maybe"]), min_size=1, max_size=3)),
    min_size=1,
    max_size=8,
)


def _rows(spec: list[tuple[int, list[str]]]) -> list[dict]:
    return [
        {
            "images": [{"bytes": png((colour * 60, 0, 0)), "path": None}],
            "texts": [{"user": f"Row {i} turn {t}?", "assistant": a, "source": "hm"} for t, a in enumerate(answers)],
        }
        for i, (colour, answers) in enumerate(spec)
    ]


def _convert(root: Path, shards: list[list[dict]]) -> dict[str, bytes]:
    for index, rows in enumerate(shards):
        write_parquet(root / "src" / f"train-{index:05d}-of-{len(shards):05d}-{index:016x}.parquet", rows)
    run_conversion(HatefulMemesConverter(root / "src"), root / "out")
    # The reports name the shard files (skipped items, SRC): everything else must be identical.
    return {k: v for k, v in tree_bytes(root / "out").items() if not k.startswith("convert_report")}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=ROWS, data=st.data())
def test_any_shard_split_gives_the_single_shard_output(spec: list[tuple[int, list[str]]], data) -> None:
    rows = _rows(spec)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(rows) - 1), max_size=3)) if len(rows) > 1 else [])
    shards = [rows[a:b] for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True)]
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
        single = _convert(Path(one), [rows])
        assert _convert(Path(many), shards) == single
    expected = sum(len(answers) for _, answers in spec if "maybe" not in answers)
    lines = single.get("hateful_memes_train.jsonl", b"").decode().splitlines()
    assert len(lines) == expected
