"""Concurrent writers never make a follower skip an event (lock-on-append), on SQL backends."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest

from safety_stream.events import PatientEnrolled, decode_object
from safety_stream.store.sql import SqlEventStore

WRITERS = 6
EVENTS_PER_WRITER = 60


def enrolment(writer: int, number: int) -> PatientEnrolled:
    now = datetime.now(UTC).isoformat()
    event = decode_object(
        {
            "event_type": "patient.enrolled",
            "schema_version": 1,
            "event_id": str(uuid.uuid4()),
            "trial_id": "SPARKLE-L",
            "site_id": f"SITE-{writer}",
            "patient_id": f"P-{writer}-{number}",
            "reporter": "load",
            "occurred_at": now,
            "recorded_at": now,
            "consent_date": "2026-01-01",
            "planned_modalities": ["chemotherapy"],
        }
    )
    assert isinstance(event, PatientEnrolled)
    return event


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_follower_sees_every_position_in_order_while_writers_race(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    store = SqlEventStore.create(url)
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def write(writer: int) -> None:
        try:
            for number in range(EVENTS_PER_WRITER):
                with store.write() as session:
                    session.append(enrolment(writer, number))
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    def follow() -> None:
        last = 0
        while True:
            finished = done.is_set()
            for stored in store.read(after=last):
                seen.append(stored.position)
                last = stored.position
            if finished:
                return

    follower = threading.Thread(target=follow)
    follower.start()
    writers = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    follower.join()
    store.close()
    assert errors == []
    total = WRITERS * EVENTS_PER_WRITER
    # a skipped position would show up as a gap: the follower reads each position once, in order
    assert seen == list(range(1, total + 1))
