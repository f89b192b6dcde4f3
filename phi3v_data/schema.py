"""The record format: Pydantic models, the single source of the data contract.

``schemas/record.schema.json`` is generated from these models (``phi3v-data schema``) and a test
fails when the committed file drifts from them.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Unknown keys are kept (``extra="allow"``) so the validator can report them as warnings, or as
# errors with --strict; the published schema therefore forbids them.
_RECORD_CONFIG = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": False})


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


class Turn(BaseModel):
    """One user message with its images and the assistant's answer."""

    model_config = _RECORD_CONFIG

    images: list[str] = Field(
        default_factory=list,
        description=(
            "Relative POSIX paths of the turn's images, resolved against the image root "
            "(default: <folder of the jsonl>/images). Empty or absent for a text-only turn."
        ),
    )
    user: str = Field(
        description=(
            "The user's text. Either no <|image_N|> tags (one tag per image is placed before the "
            "text), or exactly one tag per image of this turn, numbered globally across the conversation."
        )
    )
    assistant: str = Field(description="The answer the model is trained to give.")

    _check_user = field_validator("user")(_non_blank)
    _check_assistant = field_validator("assistant")(_non_blank)


class Record(BaseModel):
    """One training example: a conversation of one or more turns."""

    model_config = _RECORD_CONFIG

    id: str = Field(description="Unique within its file.")
    source: str = Field(description="The dataset the record comes from, e.g. `ucf101`.")
    conversations: list[Turn] = Field(min_length=1, description="The turns, in order.")
    metadata: dict[str, Any] | None = Field(
        default=None, description="Free-form provenance: source item, answers for ANLS, frame indices…"
    )

    _check_id = field_validator("id")(_non_blank)
    _check_source = field_validator("source")(_non_blank)

    @property
    def images(self) -> list[str]:
        """Every image of the conversation, in global tag order."""
        return [path for turn in self.conversations for path in turn.images]


def record_json_schema() -> dict[str, Any]:
    return Record.model_json_schema()


def record_json_schema_text() -> str:
    """The committed form of the schema: sorted keys, two-space indent, trailing newline."""
    return json.dumps(record_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def record_to_json_line(record: Record) -> str:
    """One JSONL line (no newline) with a fixed key order, so converters write byte-identical files."""
    data = record.model_dump(exclude_none=True)
    return json.dumps(data, ensure_ascii=False, separators=(", ", ": "))
