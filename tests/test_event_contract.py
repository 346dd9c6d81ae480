"""The wire contract: round trips, committed JSON Schemas and the examples agree with the models."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest
from conftest import EXAMPLES, REPO
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from strategies import PAYLOADS, events_of

from safety_stream.contract import drift, rendered_schemas
from safety_stream.events import EVENT_TYPES, EventBase, decode_json, decode_object, encode_json
from safety_stream.events.base import _utc_text as utc_wire_text

SCHEMA_DIR = REPO / "schemas" / "json"


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_round_trip_model_json_model(kind: str) -> None:
    @settings(max_examples=80, deadline=None)
    @given(events_of(kind))
    def round_trip(event: EventBase) -> None:
        wire = encode_json(event)
        again = decode_json(wire)
        assert again == event
        assert encode_json(again) == wire  # the wire form is canonical
        assert wire == event.model_dump_json()  # (encode_json calls the serializer directly)
        assert json.loads(wire)["event_type"] == kind
        # times always go out as UTC, whatever offset came in
        assert json.loads(wire)["occurred_at"].endswith("Z")

    round_trip()


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_generated_events_satisfy_the_committed_json_schema(kind: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{kind}.v1.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())

    @settings(max_examples=40, deadline=None)
    @given(events_of(kind))
    def conforms(event: EventBase) -> None:
        validator.validate(json.loads(encode_json(event)))

    conforms()


def test_committed_schemas_match_the_models() -> None:
    stale = drift(SCHEMA_DIR)
    assert stale == [], f"stale schemas {stale}: run `safety-stream schemas export`"


def test_drift_check_notices_an_edited_schema(tmp_path: Path) -> None:
    directory = tmp_path
    for name, text in rendered_schemas().items():
        (directory / name).write_text(text)
    assert drift(directory) == []
    target = directory / "ae.reported.v1.schema.json"
    target.write_text(target.read_text().replace('"grade"', '"toxicity_grade"', 1))
    (directory / "ae.obsolete.v1.schema.json").write_text("{}")
    assert drift(directory) == ["ae.obsolete.v1.schema.json", "ae.reported.v1.schema.json"]


def test_every_event_type_has_a_valid_example_that_passes_schema_and_model() -> None:
    covered = set()
    for path in sorted((EXAMPLES / "valid").glob("*.json")):
        document = json.loads(path.read_text())
        kind = document["event_type"]
        schema = json.loads((SCHEMA_DIR / f"{kind}.v1.schema.json").read_text())
        jsonschema.Draft202012Validator(schema).validate(document)
        assert type(decode_object(document)) is EVENT_TYPES[kind]
        covered.add(kind)
    assert covered == set(EVENT_TYPES)


def test_wire_names_and_versions_are_stable() -> None:
    assert sorted(rendered_schemas()) == [
        "ae.reported.v1.schema.json",
        "ae.resolved.v1.schema.json",
        "ae.retracted.v1.schema.json",
        "ae.safety_report_submitted.v1.schema.json",
        "ae.updated.v1.schema.json",
        "alert.triaged.v1.schema.json",
        "child_pugh.assessed.v1.schema.json",
        "clock.ticked.v1.schema.json",
        "dsmb.decision.v1.schema.json",
        "lab.resulted.v1.schema.json",
        "patient.died.v1.schema.json",
        "patient.enrolled.v1.schema.json",
        "patient.lost_to_follow_up.v1.schema.json",
        "patient.withdrawn.v1.schema.json",
        "treatment.administered.v1.schema.json",
    ]
    for name, model in EVENT_TYPES.items():
        assert "." in name and name.islower()
        assert model.__module__.startswith("safety_stream.events")


def test_events_are_frozen() -> None:
    event = decode_object(json.loads((EXAMPLES / "valid" / "ae.reported.json").read_text()))
    with pytest.raises(ValidationError, match="frozen"):
        event.trial_id = "OTHER"  # type: ignore[misc]


@given(
    st.datetimes(
        min_value=datetime(2, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.builds(
            timezone, st.timedeltas(min_value=timedelta(hours=-14), max_value=timedelta(hours=14))
        ),
    )
)
def test_a_time_is_written_as_its_utc_text_with_a_z(moment: datetime) -> None:
    """The wire text of a time (payloads are hashed: it must never change) is the aware UTC
    time's ISO text with "+00:00" written "Z", microseconds only when there are some."""
    expected = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert utc_wire_text(moment) == expected
    assert expected.endswith("Z") and "+" not in expected
