"""Concurrent writers never make a follower skip an event (lock-on-append), on SQL backends."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from safety_stream.events import PatientEnrolled, decode_object
from safety_stream.projections.state import TrialState
from safety_stream.store.engine import FairLock, writers_of
from safety_stream.store.projection_sql import SqlProjectionRepository
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


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_checkpoint_from_another_thread_writes_in_its_turn_between_appends(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submission's parts are appended one after the other while another thread (a reader
    catching the projection up) checkpoints: the checkpoint asked for during part 5 is written
    before part 6, not after the appends stop (the database's own busy wait favours whoever
    asks again first)."""
    store = SqlEventStore.create(request.getfixturevalue(f"{backend}_url"))
    repository = SqlProjectionRepository(store.engine)
    order: list[str] = []
    writing = repository._upsert

    def recorded(*args: Any, **kwargs: Any) -> None:
        order.append("checkpoint")
        writing(*args, **kwargs)

    monkeypatch.setattr(repository, "_upsert", recorded)
    state = TrialState()
    saver = threading.Thread(target=repository.save, args=(state, set(), set()))
    queued = writers_of(store.engine)
    for part in range(1, 11):
        with store.write() as session:
            order.append(f"part {part}")
            session.append(enrolment(0, part))
            if part == 5:
                asked, deadline = queued.issued, time.monotonic() + 5
                saver.start()
                # until the checkpoint waits for its turn (or, if it takes none, a while)
                while queued.issued == asked and time.monotonic() < deadline:
                    time.sleep(0.001)
    saver.join(30)
    assert not saver.is_alive()
    assert order.index("checkpoint") == order.index("part 5") + 1
    store.close()


def test_a_writer_interrupted_while_waiting_for_its_turn_does_not_stop_the_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C (or any exception) while a writer waits for its turn: its turn passes to the
    next writer instead of holding up every later one (and the shutdown checkpoint)."""
    lock = FairLock()
    lock.__enter__()  # a writer holds the lock
    condition = lock._condition
    waiting = condition.wait

    def interrupted(timeout: float | None = None) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(condition, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lock.__enter__()  # the second writer is interrupted while it waits
    monkeypatch.setattr(condition, "wait", waiting)
    lock.__exit__(None, None, None)
    served = threading.Event()

    def third() -> None:
        with lock:
            served.set()

    writer = threading.Thread(target=third)
    writer.start()
    assert served.wait(10)  # not held up by the interrupted writer's turn
    writer.join(10)
