"""Reading source tables: JSON lines with line numbers, and parquet through pyarrow (an optional extra).

Parquet images are read lazily, one cell at a time, so planning a conversion reads only the text columns.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from phi3v_data.errors import MissingDependencyError, SourceLayoutError


def pyarrow_parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError(
            "reading parquet needs pyarrow; install it with `pip install 'phi3v[parquet]'`"
        ) from exc
    return pq


# `train-00000-of-00007-33e2982e1d27df29.parquet` (the_cauldron's hash suffix), `validation-00001-of-00006.parquet`,
# or `train/0000.parquet` (the hub's refs/convert/parquet branch: the split is the folder).
_SHARD = re.compile(r"(?P<split>[^-]+)(?:-(?P<index>\d+)-of-(?P<count>\d+)(?:-[0-9a-f]+)?)?")
_NUMBERED = re.compile(r"\d+")


def parquet_split(path: Path) -> str:
    """The split a hub shard belongs to: ``train-00000-of-00002.parquet`` or ``train/0000.parquet`` -> ``train``."""
    stem = path.name.removesuffix(".parquet")
    return path.parent.name if _NUMBERED.fullmatch(stem) else stem.split("-")[0]


def _shard_index(path: Path) -> int:
    stem = path.name.removesuffix(".parquet")
    if _NUMBERED.fullmatch(stem):
        return int(stem)
    match = _SHARD.fullmatch(stem)
    return int(match["index"]) if match and match["index"] else 0


def parquet_files(src: Path) -> list[Path]:
    """The parquet files of SRC, each folder's shards in shard-index order (not name order)."""
    if not src.is_dir():
        return [src] if src.suffix == ".parquet" else []
    return sorted(src.rglob("*.parquet"), key=lambda p: (str(p.parent), parquet_split(p), _shard_index(p), p.name))


def check_shards_complete(files: list[Path]) -> None:
    """Refuses a set of ``-NNNNN-of-MMMMM`` shards with some missing: their rows would be lost unseen."""
    groups: dict[tuple[str, str, int], set[int]] = {}
    for file in files:
        match = _SHARD.fullmatch(file.name.removesuffix(".parquet"))
        if match and match["count"]:
            groups.setdefault((str(file.parent), match["split"], int(match["count"])), set()).add(int(match["index"]))
    for (folder, split, count), present in sorted(groups.items()):
        missing = sorted(set(range(count)) - present)
        if missing:
            names = ", ".join(f"{split}-{i:05d}-of-{count:05d}" for i in missing[:5])
            names += " …" if len(missing) > 5 else ""
            raise SourceLayoutError(
                f"{folder} has {len(present)} of the {count} {split} shards; missing {names}: download them all"
            )


def parquet_columns(path: Path) -> list[str]:
    return list(pyarrow_parquet().read_schema(path).names)


def read_parquet_rows(path: Path, columns: list[str]) -> list[dict[str, Any]]:
    """The given columns of every row, as Python values."""
    try:
        return pyarrow_parquet().read_table(path, columns=columns).to_pylist()
    except (OSError, ValueError) as exc:
        raise SourceLayoutError(f"cannot read {path}: {exc}") from exc


@lru_cache(maxsize=4)
def _row_groups(path: str) -> tuple[Any, list[int]]:
    file = pyarrow_parquet().ParquetFile(path)
    starts = [0]
    for i in range(file.num_row_groups):
        starts.append(starts[-1] + file.metadata.row_group(i).num_rows)
    return file, starts


# Several image columns are read in turn, row by row: one cached column per image column, not one in all.
@lru_cache(maxsize=4)
def _row_group_column(path: str, group: int, column: str) -> Any:
    file, _ = _row_groups(path)
    return file.read_row_group(group, columns=[column]).column(0)


def read_parquet_cell(path: Path, row: int, column: str) -> Any:
    """One cell, reading (and caching) only its row group's column: images stay out of memory until needed."""
    _, starts = _row_groups(str(path))
    group = bisect.bisect_right(starts, row) - 1
    return _row_group_column(str(path), group, column)[row - starts[group]].as_py()


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """(1-based line number, object or None, error) for each non-blank line."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, None, f"invalid JSON ({exc.msg} at column {exc.colno})"
                continue
            if not isinstance(value, dict):
                yield number, None, "not a JSON object"
                continue
            yield number, value, ""
