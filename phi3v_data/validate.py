"""Streaming validation of record files: every problem with its file, line, record id, code and fix.

Files are read line by line. A record whose images are all checked already (or that has none) is
finished at once; the others wait in chunks whose image checks run (on worker processes when asked)
while the next chunk is parsed. Memory grows with the number of distinct ids and image paths (ids
must be unique, image results are cached), not with the records themselves.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

from pydantic import BaseModel, ValidationError

from phi3v_data.image_check import ImageChecker
from phi3v_data.io import atomic_write, iter_jsonl_lines, progress_bar
from phi3v_data.paths import image_root_for, unsafe_path_reason
from phi3v_data.prompt import image_tag_problem
from phi3v_data.schema import Record, Turn
from phi3v_data.token_count import NUM_CROPS_CHOICES, TextCounter, image_token_count, text_counter, text_token_count

if TYPE_CHECKING:
    from typing_extensions import Unpack

Severity = Literal["error", "warning"]

INVALID_JSON = "invalid_json"
SCHEMA = "schema"
DUPLICATE_ID = "duplicate_id"
UNSAFE_PATH = "unsafe_path"
MISSING_IMAGE = "missing_image"
CORRUPT_IMAGE = "corrupt_image"
IMAGE_TAG_MISMATCH = "image_tag_mismatch"
TOO_LONG = "too_long"
UNKNOWN_KEY = "unknown_key"
MISSPELLED_KEY = "misspelled_key"
EMPTY_FILE = "empty_file"

FIXES: dict[str, str] = {
    INVALID_JSON: "Make the line one JSON object in UTF-8 (check quotes, commas and escapes).",
    SCHEMA: "Give the record the fields of the record schema (`phi3v-data schema` prints it).",
    DUPLICATE_ID: "Give every record of the file its own id.",
    UNSAFE_PATH: "Write image paths relative to the image root, with '/' separators and no '..'.",
    MISSING_IMAGE: "Check the path and --image-root (default: the `images` folder beside the JSONL file).",
    CORRUPT_IMAGE: "Re-extract or re-download the image, or drop the record.",
    IMAGE_TAG_MISMATCH: "Write no <|image_N|> tags, or one per image of the turn, numbered globally from 1.",
    TOO_LONG: "Lower --num-crops, raise --max-length, or shorten or drop the record.",
    UNKNOWN_KEY: "Remove the key, or move it into `metadata` (any JSON object).",
    MISSPELLED_KEY: "Rename the key as suggested: under its current name the field is ignored.",
    EMPTY_FILE: "The file holds no records: check that it is the file you meant.",
}
"""Every problem code with the fix the reports suggest."""

CHUNK_RECORDS = 1024
_validate_json = Record.__pydantic_validator__.validate_json
FILE_LINE = 0
"""The line number of problems about a whole file (``empty_file``)."""


class Problem(BaseModel):
    """One finding. ``line`` is 1-based, or 0 for a problem about the whole file."""

    file: str
    line: int
    id: str | None
    severity: Severity
    code: str
    message: str


class ValidationReport(BaseModel):
    """The result of :func:`validate_files`; ``errors`` and ``warnings`` count problems."""

    records: int
    valid: int
    errors: int
    warnings: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def counts_by_code(self) -> dict[str, int]:
        return dict(Counter(problem.code for problem in self.problems).most_common())

    def to_json(self) -> str:
        return self.model_dump_json()


@dataclass(slots=True)
class CheckedRecord:
    """A non-blank line after all checks. ``record`` is None when the line did not parse.

    ``image_sizes`` holds (width, height) of every image in tag order, or None when they are not
    known (images not checked, or one of them is bad).
    """

    file: str
    line: int
    raw: bytes
    record: Record | None
    problems: list[Problem] = field(default_factory=list)
    image_paths: list[str | None] | None = None
    image_sizes: list[tuple[int, int]] | None = None
    tags_ok: bool = True

    @property
    def has_errors(self) -> bool:
        return bool(self.problems) and any(problem.severity == "error" for problem in self.problems)


def _loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "record"


KNOWN_KEYS: dict[str, tuple[str, ...]] = {"record": tuple(Record.model_fields), "turn": tuple(Turn.model_fields)}
# Names other formats give these fields (LLaVA, ShareGPT, ms-swift, hub tables): a sure misspelling here.
KEY_ALIASES = {
    "image": "images",
    "img": "images",
    "image_path": "images",
    "image_paths": "images",
    "question": "user",
    "prompt": "user",
    "human": "user",
    "answer": "assistant",
    "response": "assistant",
    "gpt": "assistant",
    "conversation": "conversations",
    "messages": "conversations",
    "turns": "conversations",
    "meta": "metadata",
}


def misspelled_key(key: str, level: str) -> str | None:
    """The known key of ``level`` ("record" or "turn") that ``key`` most likely misspells, or None."""
    known = KNOWN_KEYS[level]
    alias = KEY_ALIASES.get(key.lower())
    if alias in known:
        return alias
    folded = key.lower().replace("-", "_")
    for name in known:
        if folded == name or folded.startswith(name + "_") or folded.removesuffix("s") == name:
            return name
    close = difflib.get_close_matches(folded, known, n=1, cutoff=0.75)
    return close[0] if close else None


def _missing_key_hints(raw: bytes, errors: list[dict]) -> str:
    """For a missing required field, the misspelled key the line holds instead: `(found 'conversation')`."""
    try:
        data = json.loads(raw)
    except ValueError:
        return ""
    hints = []
    for error in errors:
        if error["type"] != "missing":
            continue
        node = data
        for step in error["loc"][:-1]:
            inside = isinstance(node, dict) or (isinstance(node, list) and isinstance(step, int) and step < len(node))
            node = node[step] if inside and (not isinstance(node, dict) or step in node) else None
        level = "record" if len(error["loc"]) == 1 else "turn"
        for key in node if isinstance(node, dict) else ():
            if key != error["loc"][-1] and misspelled_key(key, level) == error["loc"][-1]:
                hints.append(f"{_loc(error['loc'])}: found {key!r}, did you mean {error['loc'][-1]!r}?")
    return "".join(f"; {hint}" for hint in hints)


def _schema_message(errors: list[dict]) -> str:
    parts = []
    for error in errors:
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "model_type" and not error["loc"]:
            message = "the line is JSON but not an object"
        parts.append(f"{_loc(error['loc'])}: {message}")
    return "; ".join(parts)


def line_problem(raw: bytes, exc: ValidationError) -> tuple[str, str]:
    """The problem code (``invalid_json`` or ``schema``) and message of a line that is not a valid record."""
    errors = exc.errors(include_url=False)
    if errors[0]["type"] == "json_invalid":
        return INVALID_JSON, _invalid_json_message(raw, errors)
    return SCHEMA, _schema_message(errors) + _missing_key_hints(raw, errors)


def _invalid_json_message(raw: bytes, errors: list[dict]) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line"
    message = str(errors[0]["msg"]).removeprefix("Invalid JSON: ")
    return "invalid JSON: " + message.replace("at line 1 column", "at column")


def _id_of_bad_record(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    record_id = data.get("id") if isinstance(data, dict) else None
    return record_id if isinstance(record_id, str) else None


def _too_long_message(sizes: list[tuple[int, int]], text: int, num_crops: int, limit: int) -> str:
    images = image_token_count(sizes, num_crops)
    message = f"{text + images:,} tokens (text {text:,}, images {images:,}) at num_crops={num_crops} > {limit:,}"
    for choice in (c for c in NUM_CROPS_CHOICES if c < num_crops):
        smaller = text + image_token_count(sizes, choice)
        if smaller <= limit:
            return f"{message}; fits at --num-crops {choice} ({smaller:,} tokens)"
    return message + ("; too long even at --num-crops 1" if sizes else "; the text alone is too long")


class _FileChecker:
    """Checks files one after another, sharing one image checker and one set of options."""

    def __init__(
        self,
        *,
        image_root: Path | None,
        num_crops: int,
        max_length: int | None,
        counter: TextCounter,
        checker: ImageChecker | None,
        strict: bool,
        keep_raw: bool,
    ) -> None:
        self.image_root = image_root
        self.num_crops = num_crops
        self.max_length = max_length
        self.counter = counter
        self.checker = checker
        self.strict = strict
        self.keep_raw = keep_raw
        # Chunks whose image checks may still be running while the next chunk is parsed.
        self.pipeline_depth = checker.workers + 1 if checker is not None else 0

    def check_file(self, path: Path, advance: Callable[[int], None]) -> Iterator[CheckedRecord]:
        root = os.path.join(image_root_for(path, self.image_root), "")
        name = os.fspath(path)
        ids: dict[str, int] = {}
        if self.checker is None:
            for line_number, raw in iter_jsonl_lines(path, advance):
                yield self._finish_one(self._parse(name, line_number, raw, ids, root))
            return
        checker = self.checker
        pending: deque[list[CheckedRecord]] = deque()
        chunk: list[CheckedRecord] = []
        for line_number, raw in iter_jsonl_lines(path, advance):
            entry = self._parse(name, line_number, raw, ids, root)
            if not chunk and not pending and _images_known(entry, checker):
                yield self._finish_one(entry)
                continue
            chunk.append(entry)
            if len(chunk) == CHUNK_RECORDS:
                pending.append(self._submit(chunk))
                chunk = []
                while pending and (len(pending) > self.pipeline_depth or not checker.busy):
                    yield from self._finish(pending.popleft())
        pending.append(self._submit(chunk))
        while pending:
            yield from self._finish(pending.popleft())

    def _problem(self, entry: CheckedRecord, code: str, message: str) -> None:
        severity: Severity = "warning" if code == UNKNOWN_KEY and not self.strict else "error"
        record_id = entry.record.id if entry.record is not None else _id_of_bad_record(entry.raw)
        entry.problems.append(
            Problem(file=entry.file, line=entry.line, id=record_id, severity=severity, code=code, message=message)
        )

    def _key_problem(self, entry: CheckedRecord, key: str, level: str, where: str) -> None:
        """A misspelled known key is an error (its field would be silently empty); any other unknown key a warning."""
        known = misspelled_key(key, level)
        if known is not None:
            self._problem(entry, MISSPELLED_KEY, f"unknown key {key!r} in {where}: did you mean {known!r}?")
        else:
            self._problem(entry, UNKNOWN_KEY, f"unknown key {key!r} in {where}")

    def _parse(self, name: str, line_number: int, raw: bytes, ids: dict[str, int], root: str) -> CheckedRecord:
        """Checks that need no image file; ``root`` ends with a separator."""
        try:
            record = _validate_json(raw)
        except ValidationError as exc:
            entry = CheckedRecord(name, line_number, raw, None)
            self._problem(entry, *line_problem(raw, exc))
            return entry
        entry = CheckedRecord(name, line_number, raw if self.keep_raw else b"", record)
        first = ids.setdefault(record.id, line_number)
        if first != line_number:
            self._problem(entry, DUPLICATE_ID, f"id {record.id!r} is already used on line {first}")
        if record.__pydantic_extra__:
            for key in record.__pydantic_extra__:
                self._key_problem(entry, key, "record", "the record")
        number = 1
        for index, turn in enumerate(record.conversations):
            if turn.__pydantic_extra__:
                for key in turn.__pydantic_extra__:
                    self._key_problem(entry, key, "turn", f"conversations[{index}]")
            if "<|image_" in turn.user:
                problem = image_tag_problem(turn.user, number, len(turn.images))
                if problem is not None:
                    entry.tags_ok = False
                    self._problem(entry, IMAGE_TAG_MISMATCH, f"conversations[{index}]: {problem}")
            if turn.images:
                paths = entry.image_paths if entry.image_paths is not None else []
                for image_index, relative in enumerate(turn.images):
                    reason = unsafe_path_reason(relative)
                    paths.append(root + relative if reason is None else None)
                    if reason is not None:
                        self._problem(entry, UNSAFE_PATH, f"{_place(index, image_index, relative)}: {reason}")
                entry.image_paths = paths
                number += len(turn.images)
        return entry

    def _submit(self, chunk: list[CheckedRecord]) -> list[CheckedRecord]:
        if self.checker is not None:
            self.checker.submit(p for entry in chunk if entry.image_paths for p in entry.image_paths if p is not None)
        return chunk

    def _finish(self, chunk: list[CheckedRecord]) -> Iterator[CheckedRecord]:
        for entry in chunk:
            yield self._finish_one(entry)

    def _finish_one(self, entry: CheckedRecord) -> CheckedRecord:
        if entry.record is not None:
            self._check_images(entry.record, entry)
            if self.max_length is not None and entry.image_sizes is not None and entry.tags_ok:
                self._check_length(entry.record, entry.image_sizes, self.max_length, entry)
        return entry

    def _check_images(self, record: Record, entry: CheckedRecord) -> None:
        if entry.image_paths is None:
            entry.image_sizes = []
            return
        if self.checker is None:
            return
        sizes: list[tuple[int, int]] | None = []
        paths = iter(entry.image_paths)
        for index, turn in enumerate(record.conversations):
            for image_index, relative in enumerate(turn.images):
                path = next(paths)
                info = self.checker.get(path) if path is not None else None
                if info is not None and info.problem is None:
                    if sizes is not None:
                        sizes.append((info.width, info.height))
                    continue
                sizes = None
                if info is not None and info.problem is not None:
                    self._problem(entry, info.problem, f"{_place(index, image_index, relative)}: {info.message}")
        entry.image_sizes = sizes

    def _check_length(self, record: Record, sizes: list[tuple[int, int]], limit: int, entry: CheckedRecord) -> None:
        text = text_token_count(record, self.counter)
        if text + image_token_count(sizes, self.num_crops) > limit:
            self._problem(entry, TOO_LONG, _too_long_message(sizes, text, self.num_crops, limit))


def _images_known(entry: CheckedRecord, checker: ImageChecker) -> bool:
    """Whether the entry can be finished now: its images, if any, are checked already."""
    return entry.image_paths is None or all(p is None or checker.known(p) for p in entry.image_paths)


def _place(turn_index: int, image_index: int, relative: str) -> str:
    return f"conversations[{turn_index}].images[{image_index}] {relative!r}"


PROGRESS_MIN_BYTES = 1 << 20
"""Inputs smaller than this validate without a progress bar."""


@contextlib.contextmanager
def checked_records(
    paths: Sequence[Path],
    *,
    image_root: Path | None = None,
    num_crops: int = 16,
    max_length: int | None = None,
    tokenizer: Path | None = None,
    check_images: bool = True,
    deep: bool = False,
    strict: bool = False,
    workers: int = 1,
    keep_raw: bool = False,
    progress: bool = False,
) -> Iterator[Iterator[tuple[Path, Iterator[CheckedRecord]]]]:
    """Runs the checks and yields, per file, its :class:`CheckedRecord` stream (shared by validate and stats).

    ``raw`` of a parsed record is kept only with ``keep_raw``; ``tokenizer`` is loaded even without
    ``max_length``, so a bad folder is reported early.
    """
    if num_crops < 1:
        raise ValueError(f"num_crops must be at least 1, got {num_crops}")
    counter = text_counter(tokenizer)
    with contextlib.ExitStack() as stack:
        checker = stack.enter_context(ImageChecker(deep=deep, workers=workers)) if check_images else None
        total = sum(os.path.getsize(p) for p in paths if os.path.isfile(p)) if progress else 0
        enabled = total >= PROGRESS_MIN_BYTES
        advance = stack.enter_context(progress_bar(total, "validating", unit="bytes", enabled=enabled))
        files = _FileChecker(
            image_root=image_root,
            num_crops=num_crops,
            max_length=max_length,
            counter=counter,
            checker=checker,
            strict=strict,
            keep_raw=keep_raw,
        )
        yield ((Path(p), files.check_file(Path(p), advance)) for p in paths)


class CheckOptions(TypedDict, total=False):
    """The options :func:`validate_files` hands on to :func:`checked_records` (the defaults are there)."""

    image_root: Path | None
    num_crops: int
    max_length: int | None
    tokenizer: Path | None
    check_images: bool
    deep: bool
    strict: bool
    workers: int
    progress: bool


def validate_files(
    paths: Sequence[Path],
    *,
    write_valid: Path | None = None,
    on_valid: Callable[[int, CheckedRecord], None] | None = None,
    **options: Unpack[CheckOptions],
) -> ValidationReport:
    """Validates record files and returns the report; with ``write_valid``, writes the records without errors.

    ``on_valid`` is called, in file then line order, with the index in ``paths`` of the file and each
    record without errors: its parsed :class:`Record` and, when images are checked, the image sizes.
    Callers use them instead of reading the file again. ``image_root`` defaults to
    :func:`phi3v_data.paths.default_image_root` of each file. ``max_length`` enables the
    ``too_long`` check: text tokens (``tokenizer``: a folder with ``tokenizer.json``, else
    :func:`phi3v_data.token_count.estimate_text_tokens`) plus image tokens at ``num_crops``. With
    ``check_images`` off, image sizes are unknown and records with images are not length-checked.
    ``strict`` turns warnings into errors. The output file is written atomically: it appears only
    when validation completes. ``workers`` above 1 checks images in worker processes (fork server or
    spawn), so a script calling this must guard its top level with ``if __name__ == "__main__":``.
    """
    problems: list[Problem] = []
    records = valid = 0
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(atomic_write(write_valid, "wb")) if write_valid is not None else None
        files = stack.enter_context(checked_records(paths, keep_raw=out is not None, **options))
        for index, (path, entries) in enumerate(files):
            file_records = 0
            for entry in entries:
                file_records += 1
                if entry.has_errors:
                    problems.extend(entry.problems)
                    continue
                valid += 1
                problems.extend(entry.problems)
                if out is not None:
                    out.write(entry.raw + b"\n")
                if on_valid is not None:
                    on_valid(index, entry)
            if file_records == 0:
                message = "the file has no records (it is empty or has only blank lines)"
                problems.append(
                    Problem(
                        file=os.fspath(path),
                        line=FILE_LINE,
                        id=None,
                        severity="error",
                        code=EMPTY_FILE,
                        message=message,
                    )
                )
            records += file_records
    errors = sum(problem.severity == "error" for problem in problems)
    return ValidationReport(
        records=records, valid=valid, errors=errors, warnings=len(problems) - errors, problems=problems
    )
