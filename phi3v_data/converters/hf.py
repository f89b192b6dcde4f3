"""The ``hf`` reader: any dataset ``datasets.load_dataset`` opens (a local folder, parquet/JSON/CSV files, a
``save_to_disk`` folder, or a hub id when online), one record per row, texts from a :class:`DatasetSpec`.

Image columns may hold ``Image`` features, lists of them, or ``{bytes, path}`` structs; their stored bytes are
copied (not re-encoded) to ``OUT/images/<split>/<content hash>.<ext>``. Example, ChartQA's spec over the row
``{"image": <PNG>, "query": "What is the peak value?", "label": ["42"], "human_or_machine": 0}``::

    {"id": "val-0000000000", "source": "chartqa", "conversations": [{"images": ["val/9c1e….png"],
     "user": "What is the peak value?", "assistant": "42"}], "metadata": {"split": "val", "row": 0, "answers": ["42"]}}

Without templates the reader expects the layout ``phi3v-data export --to hf`` writes and restores its records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from phi3v_data.converters.base import Converter, ItemSkipped, Plan, Task, missing_source
from phi3v_data.converters.chat import ASSISTANT, PLACEHOLDER, USER, placeholder_turns, store_image
from phi3v_data.converters.hub import HUB_ID, download_hint
from phi3v_data.converters.spec import DatasetSpec, answers_of, derived_value, fill
from phi3v_data.errors import MissingDependencyError, SourceLayoutError
from phi3v_data.prompt import image_tag_problem

FILE_BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv", ".arrow": "arrow"}
PHI3V_COLUMNS = ("id", "source", "images", "conversations", "metadata")
"""The columns of ``export --to hf``: ``conversations`` is a list of {user, assistant, num_images}."""

_OPENED: dict[str, dict[str, Any]] = {}


def datasets_module():
    try:
        import datasets
    except ImportError as exc:
        raise MissingDependencyError("reading Hugging Face datasets needs `datasets`: pip install 'phi3v[hf]'") from exc
    datasets.disable_progress_bars()
    return datasets


def _matching(folder: Path, patterns: list[str]) -> list[str]:
    return [str(folder / p) for p in patterns if any(folder.glob(p))]


def open_dataset(
    src: str, config: str | None, data_files: dict[str, list[str]], streaming: bool, cache_dir: str | None
) -> dict[str, Any]:
    """The splits of ``src`` as ``{name: Dataset | IterableDataset}``."""
    datasets = datasets_module()
    path = Path(src)
    common: dict[str, Any] = {"streaming": streaming, "cache_dir": cache_dir}
    try:
        if path.is_file():
            if path.suffix.lower() not in FILE_BUILDERS:
                raise SourceLayoutError(
                    f"{path}: expected one of {', '.join(FILE_BUILDERS)} (or a folder, or a hub id)"
                )
            loaded = datasets.load_dataset(
                FILE_BUILDERS[path.suffix.lower()], data_files={"train": str(path)}, **common
            )
        elif path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.Dataset):
                loaded = {"train": loaded}
            if streaming:
                loaded = {name: ds.to_iterable_dataset() for name, ds in loaded.items()}
        elif path.is_dir():
            files = {
                split: found
                for split, patterns in data_files.items()
                if (found := _matching(path, [p.format(config=config or "") for p in patterns]))
            }
            if files:
                loaded = datasets.load_dataset("parquet", data_files=files, **common)
            else:
                loaded = datasets.load_dataset(str(path), config, **common)
        elif HUB_ID.fullmatch(path.as_posix()):
            loaded = datasets.load_dataset(path.as_posix(), config, **common)
        else:
            raise missing_source(path)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as exc:
        hint = f"; {download_hint(src)}" if HUB_ID.fullmatch(path.as_posix()) and not path.exists() else ""
        raise SourceLayoutError(f"cannot open {src} with datasets ({type(exc).__name__}: {exc}){hint}") from exc
    return dict(loaded)


def _image_cells(value: Any) -> list[Any]:
    if value is None:
        return []
    return [cell for cell in value if cell is not None] if isinstance(value, list) else [value]


def _column_names(ds: Any) -> list[str]:
    return list(ds.features) if ds.features is not None else list(ds.column_names or [])


@dataclass
class HfConverter(Converter):
    """Rows of a ``datasets`` dataset through ``spec`` (``None``: the layout of ``export --to hf``)."""

    src: str
    spec: DatasetSpec | None = None
    config: str | None = None
    wanted_splits: tuple[str, ...] = ()
    streaming: bool = False
    cache_dir: str | None = None
    name: str = field(default="hf")

    opens_hub_ids: ClassVar[bool] = True
    """SRC may be a hub id: ``datasets`` downloads it (the CLI passes it through unresolved)."""

    def __post_init__(self) -> None:
        self.src = str(self.src)
        if self.spec is not None:
            self.name = self.spec.name
            self.config = self.config or self.spec.config
            if self.spec.configs and self.config not in self.spec.configs:
                raise SourceLayoutError(
                    f"{self.spec.name} needs --config, one of: {', '.join(self.spec.configs)}"
                    + (f" (not {self.config!r})" if self.config else "")
                )

    @property
    def source(self) -> str:
        return self.spec.record_source(self.config) if self.spec else "hf"

    @property
    def file_stem(self) -> str:
        return self.source.replace("-", "_")

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.wanted_splits or (self.spec.splits if self.spec else ()))

    def options(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "spec": self.spec.model_dump(mode="json", by_alias=True) if self.spec else None,
            "config": self.config,
            "splits": list(self.wanted_splits),
        }

    def _open(self) -> dict[str, Any]:
        key = json.dumps([self.options(), self.streaming, self.cache_dir], sort_keys=True)
        if key not in _OPENED:
            data_files = self.spec.data_files if self.spec else {}
            _OPENED[key] = open_dataset(self.src, self.config, data_files, self.streaming, self.cache_dir)
        return _OPENED[key]

    def _chosen(self, available: dict[str, Any]) -> list[str]:
        if self.wanted_splits:
            missing = [s for s in self.wanted_splits if s not in available]
            if missing:
                raise SourceLayoutError(f"{self.src} has no split {missing[0]!r}; its splits: {', '.join(available)}")
            return list(self.wanted_splits)
        listed = [s for s in (self.spec.splits if self.spec else ()) if s in available]
        return listed or sorted(available)

    def _check_columns(self, split: str, columns: list[str]) -> None:
        needed = set(PHI3V_COLUMNS) - {"metadata"} if self.spec is None else self.spec.columns_used()
        missing = sorted(needed - set(columns))
        if missing:
            fix = (
                "pass --user and --assistant templates (and --image-column) for this dataset"
                if self.spec is None
                else "fix the spec's columns or the --user/--assistant/--image-column options"
            )
            raise SourceLayoutError(
                f"{self.src} split {split}: no column {', '.join(map(repr, missing))}; "
                f"its columns: {', '.join(columns)}; {fix}"
            )

    def plan(self) -> Plan:
        opened = self._open()
        tasks = []
        for split in self._chosen(opened):
            ds = opened[split]
            self._check_columns(split, _column_names(ds))
            if self.streaming:
                # One pass over the stream; rows keep their stored image bytes until their task runs.
                for index, row in enumerate(ds.decode(False)):
                    tasks.append(Task(key=f"{split}:{index}", split=split, payload=(split, index, row)))
            else:
                tasks.extend(Task(key=f"{split}:{i}", split=split, payload=(split, i, None)) for i in range(len(ds)))
        return Plan(tasks=tasks)

    def process(self, task: Task, images_dir: Path) -> list[dict[str, Any]]:
        split, index, row = task.payload
        if row is None:
            row = self._open()[split].with_format("arrow")[index].to_pylist()[0]
        base = Path(self.src) if Path(self.src).is_dir() else Path(self.src).parent
        if self.spec is None:
            return [restored_record(row, task.split, images_dir, base)]
        return spec_records(self.spec, self.source, row, split, index, images_dir, base)


def _turn(user: str, assistant: str, image_count: int) -> tuple[str, str]:
    """The user text with ``<image>`` placeholders turned into tags (they must match the images), else as is."""
    if PLACEHOLDER in user:
        [(user, assistant, _)] = placeholder_turns([(USER, user), (ASSISTANT, assistant)], image_count)
        return user, assistant
    problem = image_tag_problem(user, 1, image_count)
    if problem:
        raise ItemSkipped(problem)
    return user, assistant


def spec_records(
    spec: DatasetSpec, source: str, row: dict[str, Any], split: str, index: int, images_dir: Path, base: Path
) -> list[dict[str, Any]]:
    """The records of one source row: one, or one per item of the ``explode`` column."""
    cells = [cell for column in spec.image_columns for cell in _image_cells(row.get(column))]
    if spec.require_image and not cells:
        raise ItemSkipped("the row has no image")
    values = dict(row)
    for name, spec_field in spec.fields.items():
        values[name] = derived_value(spec_field, row)
    items: list[Any] = [None]
    if spec.explode:
        items = row.get(spec.explode.column) or []
        if not isinstance(items, list) or not items:
            raise ItemSkipped(f"column {spec.explode.column!r} holds no items")
    texts = []
    for k, item in enumerate(items):
        scope = values if spec.explode is None else {**values, spec.explode.as_: item}
        user, assistant = fill(spec.user, scope, "user"), fill(spec.assistant, scope, "assistant")
        if not user.strip() or not assistant.strip():
            where = f"item {k} of {spec.explode.column!r}: " if spec.explode else ""
            raise ItemSkipped(f"{where}the {'user' if not user.strip() else 'assistant'} text is empty")
        texts.append(_turn(user, assistant, len(cells)))
    images = [store_image(cell, base, split, images_dir, f"row {index} image {i}") for i, cell in enumerate(cells)]
    metadata: dict[str, Any] = {"split": split, "row": index}
    if spec.answers:
        metadata["answers"] = answers_of(spec.answers, row)
    records = []
    for k, (user, assistant) in enumerate(texts):
        record: dict[str, Any] = {
            "source": source,
            "conversations": [{"images": images, "user": user, "assistant": assistant}],
            "metadata": metadata if spec.explode is None else {**metadata, "item": k},
        }
        if spec.id_column:
            if row.get(spec.id_column) in (None, ""):
                raise ItemSkipped(f"no value in the id column {spec.id_column!r}")
            record["id"] = str(row[spec.id_column]) + (f"-{k}" if spec.explode else "")
        elif spec.explode:
            record["id"] = f"{split}-{index:08d}-{k}"
        records.append(record)
    return records


def restored_record(row: dict[str, Any], split: str, images_dir: Path, base: Path) -> dict[str, Any]:
    """A record from a row of ``export --to hf``."""
    cells = _image_cells(row["images"])
    stored = [
        store_image(cell, base, split, images_dir, f"record {row['id']} image {i}") for i, cell in enumerate(cells)
    ]
    conversations = []
    for turn in row["conversations"] or []:
        count = int(turn.get("num_images") or 0)
        conversations.append({"images": stored[:count], "user": turn["user"], "assistant": turn["assistant"]})
        stored = stored[count:]
    if stored:
        raise ItemSkipped(f"record {row['id']}: {len(stored)} image(s) more than its turns' num_images")
    record: dict[str, Any] = {"id": row["id"], "source": row["source"], "conversations": conversations}
    if row.get("metadata"):
        record["metadata"] = json.loads(row["metadata"])
    return record
