"""A resend of a stored event carries the stored position as a number: ingest reports it as
the duplicate's position without reading it back out of the human-readable text."""

from __future__ import annotations

from datetime import timedelta

from trial_builder import T0, Trial

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.events import EventBase, encode_json
from safety_stream.ingest import Outcome, ingest
from safety_stream.store.memory import InMemoryEventStore
from safety_stream.validation.records import InputFormat, RawRecord
from safety_stream.validation.validator import Validator


def post(store: InMemoryEventStore, events: list[EventBase]) -> list[Outcome]:
    records = [RawRecord(f"e{i}", encode_json(e).encode()) for i, e in enumerate(events)]
    report = ingest(store, records, InputFormat.NDJSON, ctcae_dictionary(), "test", None)
    return report.outcomes


def test_a_resent_stored_event_is_a_duplicate_at_its_stored_position() -> None:
    trial = Trial()
    trial.enrol("P1", 1)
    trial.enrol("P2", 2)
    trial.treat("P1", "chemotherapy", 3)
    store = InMemoryEventStore(clock=lambda: T0 + timedelta(days=400))
    first = post(store, trial.events)
    assert [o.status for o in first] == ["stored"] * 3
    positions = [o.position for o in first]

    again = post(store, [trial.events[2], trial.events[0]])
    assert [(o.status, o.position) for o in again] == [
        ("duplicate", positions[2]),
        ("duplicate", positions[0]),
    ]

    with store.write() as session:
        validator = Validator(ctcae_dictionary(), outside=session, stored=session)
        [result] = validator.validate([RawRecord("e0", encode_json(trial.events[1]).encode())])
    assert result.valid and result.event is not None
    assert result.duplicate_position == positions[1]
    assert result.duplicate_of == f"position {positions[1]}"  # the readable form, unchanged


def test_a_resend_within_one_submission_is_a_duplicate_of_the_new_position() -> None:
    trial = Trial()
    trial.enrol("P1", 1)
    store = InMemoryEventStore(clock=lambda: T0 + timedelta(days=400))
    outcomes = post(store, [trial.events[0], trial.events[0]])
    assert [(o.status, o.position) for o in outcomes] == [
        ("stored", outcomes[0].position),
        ("duplicate", outcomes[0].position),
    ]
    assert outcomes[0].position is not None
