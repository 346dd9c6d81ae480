"""One contract for every event store backend: memory, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import EXAMPLES, example

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.events import EventBase, decode_json, decode_object
from safety_stream.ingest import IngestReport, Offset, ingest
from safety_stream.projections.projector import replay
from safety_stream.store import sql as sql_module
from safety_stream.store.base import (
    ConcurrencyError,
    EventIdConflictError,
    EventStore,
)
from safety_stream.store.engine import make_engine
from safety_stream.store.memory import Clock, InMemoryEventStore, utc_now
from safety_stream.store.migrate import upgrade
from safety_stream.store.projection_sql import SqlProjectionRepository
from safety_stream.store.sql import SqlEventStore
from safety_stream.validation.records import InputFormat, RawRecord

SAMPLE_LINES = (EXAMPLES / "sparkle-l-sample.ndjson").read_bytes().splitlines()
SAMPLE: list[EventBase] = [decode_json(line) for line in SAMPLE_LINES]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[EventStore]:
    if request.param == "memory":
        yield InMemoryEventStore()
        return
    url_fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    sql = new_sql_store(request.getfixturevalue(url_fixture))
    yield sql
    sql.close()


def new_sql_store(url: str, clock: Clock = utc_now) -> SqlEventStore:
    """A SQL store on a new database, its schema migrated to the newest version."""
    engine = make_engine(url)
    upgrade(engine)
    return SqlEventStore(engine, clock)


def append_all(store: EventStore, events: list[EventBase]) -> None:
    with store.write() as session:
        for event in events:
            session.append(event)


def test_append_assigns_consecutive_positions_and_stream_versions(store: EventStore) -> None:
    with store.write() as session:
        results = [session.append(e) for e in SAMPLE[:5]]
    assert [r.position for r in results] == [1, 2, 3, 4, 5]
    assert all(r.status == "stored" for r in results)
    assert store.head() == 5
    read = list(store.read())
    assert [s.event_id for s in read] == [e.event_id for e in SAMPLE[:5]]
    per_patient: dict[str, list[int]] = {}
    for stored in read:
        per_patient.setdefault(stored.patient_id, []).append(stored.stream_version)
    assert all(v == list(range(1, len(v) + 1)) for v in per_patient.values())


def test_stored_payload_round_trips_to_the_same_event(store: EventStore) -> None:
    append_all(store, SAMPLE)
    assert [decode_json(s.payload) for s in store.read()] == SAMPLE


def test_resending_the_same_event_is_a_duplicate_no_op(store: EventStore) -> None:
    append_all(store, SAMPLE[:3])
    with store.write() as session:
        again = session.append(SAMPLE[1])
    assert (again.status, again.position) == ("duplicate", 2)
    assert store.head() == 3


def test_same_id_with_another_payload_is_a_conflict_and_rolls_back(store: EventStore) -> None:
    append_all(store, SAMPLE[:3])
    tampered = SAMPLE[1].model_copy(update={"reporter": "someone-else"})
    with pytest.raises(EventIdConflictError) as caught, store.write() as session:
        session.append(SAMPLE[3])
        session.append(tampered)
    assert caught.value.position == 2
    assert store.head() == 3, "the whole transaction is rolled back"
    with store.write() as session:
        assert session.stored_hash(SAMPLE[3].event_id) is None


def test_optimistic_concurrency_on_patient_streams(store: EventStore) -> None:
    enrolled = SAMPLE[0]
    append_all(store, [enrolled])
    follow_up = next(e for e in SAMPLE[1:] if e.patient_id == enrolled.patient_id)
    with pytest.raises(ConcurrencyError) as caught, store.write() as session:
        session.append(follow_up, expected_version=0)
    assert (caught.value.expected, caught.value.actual) == (0, 1)
    with store.write() as session:
        assert session.append(follow_up, expected_version=1).stream_version == 2


def test_reference_lookups_see_committed_and_pending_events(store: EventStore) -> None:
    report = decode_object(example("ae.reported"))
    with store.write() as session:
        session.append(decode_object(example("patient.enrolled")))
        enrolled = session.patient_facts("SPK-0101")
        assert enrolled is not None and enrolled.site_id == "CN-SH-01"
        assert enrolled.consent_date is not None and enrolled.death_date is None
        session.append(report)
        facts = session.ae_facts(report.event_id)
        assert facts is not None and facts.grade == 3
    update = decode_object(example("ae.updated"))
    retraction = decode_object(example("ae.retracted"))
    with store.write() as session:
        session.append(update)
        session.append(retraction)
    with store.write() as session:
        facts = session.ae_facts(report.event_id)
        assert facts is not None
        assert (facts.grade, facts.retracted) == (4, True)
        known = session.patient_facts("SPK-0101")
        assert known is not None and known.site_id == "CN-SH-01"
        assert session.patient_facts("nobody") is None
        assert session.ae_facts(uuid.uuid4()) is None


def test_rejections_are_kept_with_their_reasons(store: EventStore) -> None:
    problems: list[dict[str, Any]] = [{"path": "grade", "message": "too high", "code": "x"}]
    with store.write() as session:
        session.reject("http", "CN-SH-01", "item 0", b"\xff garbage", problems)
        session.reject("file:x.ndjson", None, "line 9", b"{}", [])
    kept = store.rejections()
    assert [r.location for r in kept] == ["line 9", "item 0"]
    assert kept[1].raw == b"\xff garbage" and kept[1].problems == problems
    assert [r.location for r in store.rejections(site_id="CN-SH-01")] == ["item 0"]


def test_read_after_position_with_limit(store: EventStore) -> None:
    append_all(store, SAMPLE)
    assert [s.position for s in store.read(after=45)] == [46, 47, 48, 49, 50]
    assert [s.position for s in store.read(after=10, limit=3)] == [11, 12, 13]
    assert len(store.stream("SPARKLE-L", "SPK-0101")) == sum(
        e.patient_id == "SPK-0101" for e in SAMPLE
    )


def test_verify_passes_on_an_intact_log_and_names_the_first_broken_link(
    store: EventStore,
) -> None:
    append_all(store, SAMPLE[:20])
    assert store.verify().ok and store.verify().checked == 20
    tampered = json.loads(SAMPLE[6].model_dump_json())
    tampered["reporter"] = "mallory"
    if isinstance(store, InMemoryEventStore):
        store.tamper(7, json.dumps(tampered))
    else:
        from sqlalchemy import update

        from safety_stream.store.tables import EventRow

        assert isinstance(store, SqlEventStore)
        with store.engine.begin() as connection:
            connection.execute(
                update(EventRow).where(EventRow.position == 7).values(payload=json.dumps(tampered))
            )
    result = store.verify()
    assert not result.ok
    assert result.broken_at == 7
    assert result.checked == 6
    assert "does not match its stored hash" in (result.reason or "")


def test_records_of_an_ordered_source_are_taken_once(store: EventStore) -> None:
    """A redelivered record (same source and offset) stores nothing and keeps no second
    dead letter, even when the first delivery's batch also held it; new offsets go on."""
    lines = [*SAMPLE_LINES[:4], b'{"event_type": "ae.reported"}']

    def deliver(first: int, last: int) -> IngestReport:
        records = [RawRecord(f"p0@{i}", lines[i]) for i in range(first, last + 1)]
        offsets = [Offset("kafka:submissions/0", i) for i in range(first, last + 1)]
        return ingest(store, records, InputFormat.NDJSON, ctcae_dictionary(), "k", None, offsets)

    first = deliver(0, 2)
    assert [o.status for o in first.outcomes] == ["stored"] * 3
    again = deliver(0, 4)  # the consumer restarted before committing offsets 0-2
    assert again.redelivered == 3
    assert [o.status for o in again.outcomes] == ["stored", "rejected"]
    assert deliver(3, 4).redelivered == 2
    assert store.head() == 4
    assert len(store.rejections()) == 1
    with store.write() as session:
        assert session.source_offset("kafka:submissions/0") == 4
        assert session.source_offset("kafka:submissions/1") is None


def test_rejections_after_an_id_come_oldest_first(store: EventStore) -> None:
    with store.write() as session:
        for n in range(5):
            raw = b'{"n": %d}' % n
            session.reject("src", "S1", f"line {n}", raw, [{"path": "", "message": "x"}])
    newest = store.rejections(limit=2)
    assert [r.location for r in newest] == ["line 4", "line 3"]
    after = store.rejections(after=newest[-1].id - 2, limit=10)
    assert [r.location for r in after] == ["line 2", "line 3", "line 4"]


def test_a_resent_dead_letter_is_kept_once_and_counted(store: EventStore) -> None:
    """A site retrying an invalid record (its response was lost) leaves one dead letter."""
    problem = [{"path": "grade", "message": "x"}]
    with store.write() as session:
        session.reject("http:S1", "S1", "line 1", b'{"bad": 1}', problem)
        session.reject("http:S1", "S1", "line 1", b'{"bad": 1}', problem)  # same batch twice
    with store.write() as session:
        session.reject("http:S1", "S1", "line 1", b'{"bad": 1}', problem)  # the retry
        session.reject("http:S2", "S2", "line 1", b'{"bad": 1}', problem)  # another site
        session.reject("http:S1", "S1", "line 2", b'{"bad": 2}', problem)  # other bytes
    with pytest.raises(RuntimeError), store.write() as session:
        session.reject("http:S1", "S1", "line 1", b'{"bad": 1}', problem)
        raise RuntimeError("the transaction fails: the count must not move")
    with store.write() as session:  # no bytes kept (too large): nothing shows a resend
        session.reject("http:S1", "S1", "line 1", b"", [{"code": "input.record_too_large"}])
        session.reject("http:S1", "S1", "line 1", b"", [{"code": "input.record_too_large"}])
        # the same bytes rejected for another reason (e.g. after the patient moved site)
        session.reject("http:S1", "S1", "line 1", b'{"bad": 1}', [{"code": "other"}])
    kept = store.rejections(limit=10)
    assert [(r.site_id, r.raw, r.received) for r in kept] == [
        ("S1", b'{"bad": 1}', 1),
        ("S1", b"", 1),
        ("S1", b"", 1),
        ("S1", b'{"bad": 2}', 1),
        ("S2", b'{"bad": 1}', 1),
        ("S1", b'{"bad": 1}', 3),
    ]


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
def test_reading_as_stored_by_a_time_gives_a_prefix_even_when_the_clock_steps_back(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """A writer's clock that steps back (NTP, another host) must not punch a hole in the log
    read "as stored by" a time: that would read as a broken hash chain."""
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    times = iter([t0, t0 + timedelta(hours=2), t0 + timedelta(hours=1), t0 + timedelta(hours=3)])
    clock = lambda: next(times)  # noqa: E731
    if backend == "memory":
        store: EventStore = InMemoryEventStore(clock)
    else:
        url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
        store = new_sql_store(url, clock)
    for event in SAMPLE[:4]:
        append_all(store, [event])
    cutoff = t0 + timedelta(hours=1, minutes=30)  # after the 3rd event's time, not the 2nd's
    assert [s.position for s in store.read(stored_until=cutoff)] == [1]
    assert [p for p, _, _ in store.payloads(stored_until=cutoff)] == [1]
    assert [s.position for s in store.read(stored_until=t0 + timedelta(hours=5))] == [1, 2, 3, 4]
    # the prefix's end, as the as-of reads key their cache
    assert store.position_at(cutoff) == 1
    assert store.position_at(t0 - timedelta(seconds=1)) == 0
    assert store.position_at(t0 + timedelta(hours=5)) == 4
    if isinstance(store, SqlEventStore):
        store.close()


@pytest.mark.parametrize("page", [1, 3, 7])
def test_payloads_read_in_pages_are_the_log_in_order(
    store: EventStore, page: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Payloads come in pages: whatever the page size, the limit and the starting position,
    they are the log's rows in order, once each."""
    monkeypatch.setattr(sql_module, "PAYLOAD_PAGE", page)
    append_all(store, SAMPLE[:10])
    every = [(s.position, s.payload, s.stored_at) for s in store.read()]
    assert list(store.payloads()) == every
    for after, limit in [(0, None), (2, 5), (3, 6), (9, 4), (10, None), (0, 0), (4, 1)]:
        wanted = every[after:] if limit is None else every[after : after + limit]
        assert list(store.payloads(after, limit)) == wanted, (after, limit)


def test_an_in_memory_sqlite_store_reads_pages_and_replays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An in-memory SQLite database lives in its thread's connection: every read and the
    replay's write use that one (another thread's connection is another, empty database)."""
    monkeypatch.setattr(sql_module, "PAYLOAD_PAGE", 2)
    store = SqlEventStore.create("sqlite://")
    append_all(store, SAMPLE[:9])
    assert [p for p, _, _ in store.payloads()] == list(range(1, 10))
    state, count, _ = replay(store, SqlProjectionRepository(store.engine))
    assert count == 9
    assert SqlProjectionRepository(store.engine).load() == state
    store.close()
