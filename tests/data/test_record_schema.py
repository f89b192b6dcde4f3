"""The record models: the committed schema, `phi3v-data schema`, and serialise -> parse round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from phi3v_data.cli.main import app
from phi3v_data.schema import Record, Turn, record_json_schema_text, record_to_json_line

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "record.schema.json"


def test_committed_schema_matches_the_models() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == record_json_schema_text(), (
        "schemas/record.schema.json drifted from phi3v_data.schema; regenerate: phi3v-data schema > "
        "schemas/record.schema.json"
    )


def test_schema_command_prints_and_checks(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(app, ["schema"])
    assert printed.exit_code == 0
    assert printed.stdout == record_json_schema_text()
    assert runner.invoke(app, ["schema", "--check", str(SCHEMA_PATH)]).exit_code == 0
    drifted = tmp_path / "old.schema.json"
    drifted.write_text(record_json_schema_text().replace('"Unique within its file."', '"Unique."'))
    result = runner.invoke(app, ["schema", "--check", str(drifted)])
    assert result.exit_code == 1
    assert "differs from the record models" in result.stderr
    assert runner.invoke(app, ["schema", "--check", str(tmp_path / "missing.json")]).exit_code == 2


def test_schema_content() -> None:
    schema = json.loads(record_json_schema_text())
    assert schema["required"] == ["id", "source", "conversations"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["conversations"]["minItems"] == 1
    assert schema["$defs"]["Turn"]["required"] == ["user", "assistant"]


@pytest.mark.parametrize(
    ("data", "location"),
    [
        ({"id": " ", "source": "s", "conversations": [{"user": "u", "assistant": "a"}]}, ("id",)),
        ({"id": "i", "source": "", "conversations": [{"user": "u", "assistant": "a"}]}, ("source",)),
        ({"id": "i", "source": "s", "conversations": []}, ("conversations",)),
        ({"id": "i", "source": "s", "conversations": [{"user": "\n", "assistant": "a"}]}, ("conversations", 0, "user")),
        (
            {"id": "i", "source": "s", "conversations": [{"user": "u", "assistant": " "}]},
            ("conversations", 0, "assistant"),
        ),
        ({"id": 3, "source": "s", "conversations": [{"user": "u", "assistant": "a"}]}, ("id",)),
    ],
)
def test_rejected_records(data: dict, location: tuple) -> None:
    with pytest.raises(ValidationError) as info:
        Record.model_validate_json(json.dumps(data))
    assert [error["loc"] for error in info.value.errors()] == [location]


def test_text_only_turn_defaults_to_no_images() -> None:
    record = Record.model_validate_json(
        '{"id": "i", "source": "s", "conversations": [{"user": "u", "assistant": "a"}]}'
    )
    assert record.conversations[0].images == []
    assert record_to_json_line(record) == (
        '{"id": "i", "source": "s", "conversations": [{"images": [], "user": "u", "assistant": "a"}]}'
    )


text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
non_blank = text.filter(lambda value: value.strip() != "")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
turns = st.builds(Turn, images=st.lists(text, max_size=3), user=non_blank, assistant=non_blank)
records = st.builds(
    Record,
    id=non_blank,
    source=non_blank,
    conversations=st.lists(turns, min_size=1, max_size=3),
    metadata=st.none() | st.dictionaries(text, json_values, max_size=4),
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(records)
def test_record_survives_serialise_then_parse(record: Record) -> None:
    line = record_to_json_line(record)
    assert "\n" not in line
    assert Record.model_validate_json(line.encode("utf-8")) == record
    assert record_to_json_line(Record.model_validate_json(line)) == line
