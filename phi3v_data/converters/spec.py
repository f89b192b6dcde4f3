"""Dataset specs: short YAML files that drive the ``hf`` reader (the top-level ``converters/`` folder ships them).

A spec names the source (hub id and config, or file patterns for a local copy), the columns, the prompt
templates, the split names and the eval metric::

    name: chartqa
    description: ChartQA (HuggingFaceM4/ChartQA); the first label is the answer.
    hub: HuggingFaceM4/ChartQA
    splits: [train, val, test]
    image_columns: [image]
    user: "{query}"
    assistant: "{label[0]}"
    answers: label
    metric: relaxed_accuracy

Templates are ``str.format`` over the row's columns (``{label[0]}``, ``{text[user]}``) and the spec's
``fields``, values computed from columns for multiple-choice prompts (``choices``, ``letter``, ``pick``,
``prefix``) and VQA answers (``majority``). ``explode`` makes one record per item of a list column (the_cauldron's
``texts``).
"""

from __future__ import annotations

import string
from collections import Counter
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from phi3v_data.converters.base import ItemSkipped
from phi3v_data.errors import MissingDependencyError, Phi3vDataError

SPEC_SUFFIX = ".yaml"
SPEC_PACKAGE = "phi3v_data.specs"
"""The import name of the top-level ``converters/`` folder inside the installed package (see pyproject.toml)."""


class SpecError(Phi3vDataError):
    """A dataset spec is malformed; every problem is listed together."""

    hint = "See docs/converters.md, 'Writing a spec', for the keys a spec may hold."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Choices(_Strict):
    """The options of a list column as lines ``A. first`` ``B. second`` …"""

    op: Literal["choices"]
    of: str


class Letter(_Strict):
    """An option index (int, or a string holding one) as its letter: 0 -> ``A``."""

    op: Literal["letter"]
    of: str


class Pick(_Strict):
    """Item ``index`` (a column holding an int) of a list column: the answer text of a multiple-choice row."""

    op: Literal["pick"]
    of: str
    index: str


class Majority(_Strict):
    """The most frequent non-empty string of a list column (the earliest on ties): VQA's ten annotator answers."""

    op: Literal["majority"]
    of: str


class Prefix(_Strict):
    """``text + value + suffix`` when the column is not empty, else the empty string (an optional context)."""

    op: Literal["prefix"]
    of: str
    text: str = ""
    suffix: str = "\n"


SpecField = Annotated[Choices | Letter | Majority | Pick | Prefix, Field(discriminator="op")]


class Explode(_Strict):
    """One record per item of list column ``column``; templates see the item as ``{as}``."""

    column: str
    as_: str = Field(alias="as")


class DatasetSpec(_Strict):
    """One dataset spec. ``splits`` are the source's split names, which the output files keep."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str
    hub: str | None = None
    config: str | None = None
    configs: list[str] = Field(default_factory=list)
    """The source's config names when it has several and one must be chosen (``--config``)."""
    data_files: dict[str, list[str]] = Field(default_factory=dict)
    """Patterns (relative to a local SRC folder, ``{config}`` filled in) per split, for copies without a card."""
    splits: list[str] = Field(default_factory=list)
    image_columns: list[str] = Field(default_factory=list)
    user: str
    assistant: str
    fields: dict[str, SpecField] = Field(default_factory=dict)
    explode: Explode | None = None
    answers: str | None = None
    """Column of reference answers kept in ``metadata.answers``; ``col[].key`` takes ``key`` of each item."""
    id_column: str | None = None
    source: str | None = None
    """The records' ``source`` (``{config}`` filled in); default: ``name``."""
    metric: str | None = None
    """How predictions on the eval split are scored (the name used by the published benchmark)."""
    require_image: bool = False

    @field_validator("user", "assistant")
    @classmethod
    def _template(cls, value: str) -> str:
        template_names(value)
        return value

    def record_source(self, config: str | None) -> str:
        return (self.source or self.name).format(config=config or "")

    def columns_used(self) -> set[str]:
        """Source columns the spec reads (template names that are not ``fields`` or the explode item)."""
        derived = set(self.fields) | ({self.explode.as_} if self.explode else set())
        names = {name for t in (self.user, self.assistant) for name in template_names(t)} - derived
        for value in self.fields.values():
            names |= {value.of} | ({value.index} if isinstance(value, Pick) else set())
        names |= set(self.image_columns)
        if self.explode:
            names.add(self.explode.column)
        if self.answers:
            names.add(self.answers.split("[]")[0])
        if self.id_column:
            names.add(self.id_column)
        return names


def template_names(template: str) -> list[str]:
    """The top-level names a ``str.format`` template reads; positional fields are refused."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from exc
    roots = []
    for name in names:
        root = name.split(".")[0].split("[")[0]
        if not root or root.isdigit():
            raise ValueError(f"template {template!r} uses a positional field; name a column, e.g. {{question}}")
        roots.append(root)
    return roots


def _yaml():
    try:
        import yaml
    except ImportError as exc:
        raise MissingDependencyError("dataset specs need PyYAML: pip install 'phi3v[hf]'") from exc
    return yaml


def parse_spec(text: str, where: str) -> DatasetSpec:
    """A spec from YAML text; ``where`` names the file in errors."""
    yaml = _yaml()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{where}: a spec is a YAML mapping of keys (name, description, user, assistant, …)")
    try:
        return DatasetSpec.model_validate(data)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise SpecError(f"{where}: {len(lines)} problem(s):\n  " + "\n  ".join(lines)) from exc


def load_spec(path: Path) -> DatasetSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file")
    return parse_spec(path.read_text(encoding="utf-8"), str(path))


def builtin_spec_names() -> list[str]:
    """The names of the shipped specs (file names, without reading them)."""
    folder = resources.files(SPEC_PACKAGE)
    return sorted(p.name.removesuffix(SPEC_SUFFIX) for p in folder.iterdir() if p.name.endswith(SPEC_SUFFIX))


@cache
def builtin_spec(name: str) -> DatasetSpec:
    resource = resources.files(SPEC_PACKAGE) / f"{name}{SPEC_SUFFIX}"
    if not resource.is_file():
        raise SpecError(f"no built-in spec {name!r}; built-in: {', '.join(builtin_spec_names())}")
    spec = parse_spec(resource.read_text(encoding="utf-8"), f"converters/{name}{SPEC_SUFFIX}")
    if spec.name != name:
        raise SpecError(f"converters/{name}{SPEC_SUFFIX}: its name is {spec.name!r}; name a spec after its file")
    return spec


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ItemSkipped(f"{what} is {value!r}, not an index") from exc


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ItemSkipped(f"{what} is {type(value).__name__}, not a list")
    return value


def derived_value(spec_field: Choices | Letter | Majority | Pick | Prefix, row: dict[str, Any]) -> str:
    """The text of one ``fields`` entry for ``row``; ItemSkipped when the row's values do not fit."""
    value = row.get(spec_field.of)
    if isinstance(spec_field, Choices):
        options = _list(value, f"column {spec_field.of!r}")
        return "\n".join(f"{chr(ord('A') + i)}. {option}" for i, option in enumerate(options))
    if isinstance(spec_field, Letter):
        return chr(ord("A") + _int(value, f"column {spec_field.of!r}"))
    if isinstance(spec_field, Majority):
        answers = [str(a) for a in _list(value, f"column {spec_field.of!r}") if a is not None and str(a).strip()]
        if not answers:
            raise ItemSkipped(f"column {spec_field.of!r} holds no answer")
        counts = Counter(answers)
        return max(answers, key=lambda answer: (counts[answer], -answers.index(answer)))
    if isinstance(spec_field, Pick):
        options = _list(value, f"column {spec_field.of!r}")
        index = _int(row.get(spec_field.index), f"column {spec_field.index!r}")
        if not 0 <= index < len(options):
            raise ItemSkipped(f"column {spec_field.index!r} is {index}, outside the {len(options)} options")
        return str(options[index])
    text = "" if value is None else str(value)
    return f"{spec_field.text}{text}{spec_field.suffix}" if text.strip() else ""


def fill(template: str, values: dict[str, Any], which: str) -> str:
    """``template`` over ``values``; a missing column or index is ItemSkipped naming the template."""
    try:
        return template.format(**values)
    except (KeyError, IndexError, AttributeError, ValueError, TypeError) as exc:
        raise ItemSkipped(f"cannot fill the {which} template {template!r}: {type(exc).__name__} {exc}") from exc


def answers_of(path: str, row: dict[str, Any]) -> list[str]:
    """The reference answers named by ``answers`` (``col`` or ``col[].key``), non-empty ones, as strings."""
    column, _, key = path.partition("[].")
    value = row.get(column)
    items = value if isinstance(value, list) else [value]
    if key:
        items = [item.get(key) if isinstance(item, dict) else None for item in items]
    return [str(item) for item in items if item is not None and str(item).strip()]
