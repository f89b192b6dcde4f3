"""Chat files of other toolkits (LLaVA, ShareGPT): messages with ``<image>`` placeholders plus a list of images.

The shared part of the ``llava`` and ``sharegpt`` readers: the file is a JSON array or JSON lines, one task per
item; messages alternate user and assistant and become turns; each ``<image>`` becomes the next global
``<|image_N|>`` tag, and the placeholders must match the images one to one (a mismatch skips the item and is
reported, it is never repaired). Images are stored under ``OUT/images/<split>/`` named by content hash.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from phi3v_data.converters.base import ItemSkipped, Plan, SingleFileConverter, Task, missing_source
from phi3v_data.converters.images import cell_image_bytes, content_name, image_extension, write_once
from phi3v_data.converters.tables import iter_json_lines
from phi3v_data.errors import SourceLayoutError
from phi3v_data.prompt import IMAGE_TAG_RE, tag

PLACEHOLDER = "<image>"
USER, ASSISTANT = "user", "assistant"


def placeholder_turns(messages: list[tuple[str, str]], image_count: int) -> list[tuple[str, str, int]]:
    """``(user, assistant, images of the turn)`` from alternating user/assistant messages.

    ``<image>`` placeholders in user messages become ``<|image_N|>`` tags numbered across the conversation.
    Raises ItemSkipped when the roles do not alternate, when placeholders and images differ in number, or
    when a text already holds ``<|image_N|>`` tags.
    """
    if not messages:
        raise ItemSkipped("the conversation has no messages")
    roles = [role for role, _ in messages]
    expected = [USER, ASSISTANT] * (len(messages) // 2) + [USER] * (len(messages) % 2)
    if roles != expected:
        position = next(i for i, (got, want) in enumerate(zip(roles, expected, strict=False)) if got != want)
        raise ItemSkipped(
            f"message {position + 1} is from {roles[position]!r} where {expected[position]!r} was expected "
            "(messages must alternate user, assistant, starting with user)"
        )
    if len(messages) % 2:
        raise ItemSkipped("the last message is from the user and has no answer")
    found = sum(text.count(PLACEHOLDER) for role, text in messages if role == USER)
    in_answers = sum(text.count(PLACEHOLDER) for role, text in messages if role == ASSISTANT)
    if in_answers:
        raise ItemSkipped(
            f"{in_answers} {PLACEHOLDER} placeholder(s) in assistant messages; only user messages hold images"
        )
    if found != image_count:
        raise ItemSkipped(f"{found} {PLACEHOLDER} placeholder(s) but {image_count} image(s)")
    if any(IMAGE_TAG_RE.search(text) for _, text in messages):
        raise ItemSkipped("a message already holds <|image_N|> tags; write <image> placeholders instead")
    turns = []
    number = 1
    for i in range(0, len(messages), 2):
        user, assistant = messages[i][1], messages[i + 1][1]
        count = user.count(PLACEHOLDER)
        parts = user.split(PLACEHOLDER)
        user = parts[0] + "".join(tag(number + k) + part for k, part in enumerate(parts[1:]))
        number += count
        if not user.strip() or not assistant.strip():
            raise ItemSkipped(f"turn {i // 2 + 1} has an empty {'user' if not user.strip() else 'assistant'} text")
        turns.append((user, assistant, count))
    return turns


def placeholder_text(user: str, image_count: int) -> str:
    """The inverse of :func:`placeholder_turns` for one user text: tags become ``<image>``; a text without tags
    gets one placeholder per image and a newline before it, where the prompt would put the tags."""
    if IMAGE_TAG_RE.search(user):
        return IMAGE_TAG_RE.sub(PLACEHOLDER, user)
    return PLACEHOLDER * image_count + "\n" + user if image_count else user


def store_image(cell: Any, base_dir: Path, split: str, images_dir: Path, what: str) -> str:
    """Writes one image (a path under ``base_dir``, bytes, or a ``{bytes, path}`` struct) as
    ``<split>/<content hash>.<ext>`` under ``images_dir``; returns that relative path."""
    data = cell_image_bytes(cell, base_dir, what)
    rel = f"{split}/{content_name(data)}.{image_extension(data, what)}"
    write_once(images_dir / rel, data)
    return rel


def read_items(path: Path) -> list[tuple[str, dict[str, Any] | None, str]]:
    """``(where, item or None, error)`` for each item of a JSON array file or a JSON lines file.

    A ``.json`` file that is not one JSON value is read as JSON lines (some releases name JSONL ``.json``).
    """
    if not path.is_file():
        raise (
            missing_source(path) if not path.exists() else SourceLayoutError(f"{path}: expected a .json or .jsonl file")
        )
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if not text.lstrip().startswith("{"):
                raise SourceLayoutError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from exc
        else:
            if not isinstance(value, list):
                raise SourceLayoutError(f"{path}: expected a JSON array of records, found a {type(value).__name__}")
            return [
                (f"item {i}", item, "" if isinstance(item, dict) else "not a JSON object")
                for i, item in enumerate(value)
            ]
    return [(f"line {n}", item if not error else None, error) for n, item, error in iter_json_lines(path)]


@dataclass
class ChatFileConverter(SingleFileConverter):
    """A LLaVA or ShareGPT file. ``image_folder`` is where relative image paths point (default: SRC's folder)."""

    src: Path
    image_folder: Path | None = None
    source: str = ""
    split: str = "train"

    default_source: ClassVar[str]

    def __post_init__(self) -> None:
        self.src = Path(self.src)
        self.source = self.source or self.default_source
        if self.image_folder is None:
            self.image_folder = self.src.parent
        self.image_folder = Path(self.image_folder)
        self.check_output_names()

    def options(self) -> dict[str, Any]:
        return {
            "src": str(self.src),
            "image_folder": str(self.image_folder),
            "source": self.source,
            "split": self.split,
        }

    def plan(self) -> Plan:
        items = read_items(self.src)
        ids = Counter(str(item["id"]) for _, item, _ in items if item and item.get("id") not in (None, ""))
        seen: Counter[str] = Counter()
        tasks = []
        for where, item, error in items:
            record_id = None
            if item and item.get("id") not in (None, ""):
                record_id = str(item["id"])
                seen[record_id] += 1
                if ids[record_id] > 1:
                    # Ids repeat in real releases (LLaVA's mix665k); the n-th copy becomes "<id>#n".
                    record_id = f"{record_id}#{seen[record_id]}"
            tasks.append(
                Task(key=f"{self.src.name} {where}", split=self.split, payload=(where, item, error, record_id))
            )
        return Plan(tasks=tasks)

    def process(self, task: Task, images_dir: Path) -> list[dict[str, Any]]:
        where, item, error, record_id = task.payload
        if item is None:
            raise ItemSkipped(f"{where}: {error}")
        try:
            messages, images, extra = self.parse(item)
            turns = placeholder_turns(messages, len(images))
        except ItemSkipped as exc:
            raise ItemSkipped(f"{where}: {exc}") from exc
        stored = [
            store_image(ref, self.image_folder, self.split, images_dir, f"{where} image {i} ({ref})")
            for i, ref in enumerate(images)
        ]
        conversations = []
        for user, assistant, count in turns:
            conversations.append({"images": stored[:count], "user": user, "assistant": assistant})
            stored = stored[count:]
        metadata = (
            item.get("metadata") if isinstance(item.get("metadata"), dict) else {"file": self.src.name, "item": where}
        )
        record: dict[str, Any] = {
            "source": item["source"] if isinstance(item.get("source"), str) and item["source"] else self.source,
            "conversations": conversations,
        }
        if {**metadata, **extra}:
            record["metadata"] = {**metadata, **extra}
        if record_id is not None:
            record["id"] = record_id
        return [record]

    @abstractmethod
    def parse(self, item: dict[str, Any]) -> tuple[list[tuple[str, str]], list[Any], dict[str, Any]]:
        """``(messages as (user|assistant, text), image references, extra metadata)`` of one item; ItemSkipped."""
