"""The event-store contract, continued: where the in-memory store and the SQL ones used to
disagree (what readers see of an open write, duplicates, cut text, time zones, bounds)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from test_store_contract import SAMPLE, append_all, new_sql_store

from safety_stream.events import encode_json
from safety_stream.store.base import (
    LOCATION_MAX,
    OFFSET_SOURCE_MAX,
    SOURCE_MAX,
    AppendResult,
    EventIdConflictError,
    EventStore,
)
from safety_stream.store.memory import Clock, InMemoryEventStore, utc_now
from safety_stream.store.sql import SqlEventStore


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[[Clock], EventStore]]:
    """A store of each backend with a given clock."""
    opened: list[SqlEventStore] = []

    def make(clock: Clock) -> EventStore:
        if request.param == "memory":
            return InMemoryEventStore(clock)
        url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
        sql = new_sql_store(url, clock)
        opened.append(sql)
        return sql

    yield make
    for sql in opened:
        sql.close()


@pytest.fixture
def store(make_store: Callable[[Clock], EventStore]) -> EventStore:
    return make_store(utc_now)


# --- what readers see of a write transaction ------------------------------------------------

FAR_FUTURE = datetime(9000, 1, 1, tzinfo=UTC)
PROBLEM = [{"path": "grade", "message": "too high", "code": "x"}]


def _seen(store: EventStore, trial_id: str, patient_id: str) -> dict[str, Any]:
    """Everything a reader (not the writer's session) can see of the store."""
    return {
        "read": [s.position for s in store.read()],
        "payloads": [p for p, _, _ in store.payloads()],
        "head": store.head(),
        "position_at": store.position_at(FAR_FUTURE),
        "stream": [s.position for s in store.stream(trial_id, patient_id)],
        "rejections": [(r.id, r.received) for r in store.rejections()],
        "rejections_after": [(r.id, r.received) for r in store.rejections(after=0)],
        "verify": store.verify().checked,
        "verify_rejections": store.verify_rejections().checked,
    }


def test_readers_see_a_write_only_once_it_commits(store: EventStore) -> None:
    """Read committed on every backend: the open session's appends, dead letters and resent
    dead letters' counts are invisible to the store's readers until the session commits."""
    patient = SAMPLE[0]
    append_all(store, SAMPLE[:2])
    with store.write() as session:
        session.reject("http:S1", "S1", "line 1", b'{"bad": 1}', PROBLEM)
    before = _seen(store, patient.trial_id, patient.patient_id)
    pending = SAMPLE[2:12]
    assert any(e.patient_id == patient.patient_id for e in pending), "the stream must grow"
    with store.write() as session:
        for event in pending:
            session.append(event)
        session.reject("http:S1", "S1", "line 2", b'{"bad": 2}', PROBLEM)
        session.reject("http:S1", "S1", "line 1", b'{"bad": 1}', PROBLEM)  # a resend
        assert _seen(store, patient.trial_id, patient.patient_id) == before
    after = _seen(store, patient.trial_id, patient.patient_id)
    assert after["head"] == after["position_at"] == 12
    assert after["read"] == after["payloads"] == list(range(1, 13))
    assert after["stream"] == [
        n for n, e in enumerate(SAMPLE[:12], 1) if e.patient_id == patient.patient_id
    ]
    assert after["rejections"] == [(2, 1), (1, 2)]
    assert after["rejections_after"] == [(1, 2), (2, 1)]
    assert (after["verify"], after["verify_rejections"]) == (12, 2)


def test_a_rolled_back_write_is_never_seen_and_leaves_nothing(store: EventStore) -> None:
    patient = SAMPLE[0]
    append_all(store, SAMPLE[:2])
    with store.write() as session:
        session.reject("http:S1", "S1", "line 1", b'{"bad": 1}', PROBLEM)
        session.set_source_offset("kafka:t/0", 5)
    before = _seen(store, patient.trial_id, patient.patient_id)
    with pytest.raises(RuntimeError), store.write() as session:
        for event in SAMPLE[2:12]:
            session.append(event)
        session.reject("http:S1", "S1", "line 2", b'{"bad": 2}', PROBLEM)
        session.reject("http:S1", "S1", "line 1", b'{"bad": 1}', PROBLEM)
        session.set_source_offset("kafka:t/0", 9)
        session.set_source_offset("kafka:t/1", 1)
        assert _seen(store, patient.trial_id, patient.patient_id) == before
        raise RuntimeError("the transaction fails")
    assert _seen(store, patient.trial_id, patient.patient_id) == before
    with store.write() as session:
        assert session.stored_hash(SAMPLE[2].event_id) is None
        assert session.source_offset("kafka:t/0") == 5
        assert session.source_offset("kafka:t/1") is None
        # positions, stream versions and dead-letter ids carry on from what was committed
        assert session.append(SAMPLE[2]).position == 3
        assert session.reject("http:S1", "S1", "line 2", b'{"bad": 2}', PROBLEM) == 2
    assert store.verify().ok and store.verify_rejections().ok


# --- what an append of a known event_id returns -----------------------------------------------


def test_a_duplicate_reports_the_stored_event_in_every_field(store: EventStore) -> None:
    """A resend is answered with the stored event's position and stream version (not 0),
    and no receipt time (nothing was received into the log); whether it was committed
    earlier or appended earlier in the same session; the expected version is not checked."""
    append_all(store, SAMPLE[:8])
    stored = {s.event_id: s for s in store.read()}
    first = next(s for s in stored.values() if s.stream_version > 1)
    event = next(e for e in SAMPLE if e.event_id == first.event_id)
    with store.write() as session:
        again = session.append(event)
        again_expecting = session.append(event, expected_version=0)
        new = session.append(SAMPLE[8])
        new_again = session.append(SAMPLE[8])
    assert again == AppendResult("duplicate", first.position, first.stream_version, None)
    assert again_expecting == again
    assert new.status == "stored" and new.position == 9 and new.stored_at is not None
    assert new_again == AppendResult("duplicate", 9, new.stream_version, None)
    assert store.head() == 9
    assert [s.stream_version for s in store.read(after=8)] == [new.stream_version]


@pytest.mark.parametrize("where", ["committed", "same session"])
def test_the_same_id_with_other_content_names_the_stored_event(
    store: EventStore, where: str
) -> None:
    append_all(store, SAMPLE[:3])
    original = SAMPLE[1] if where == "committed" else SAMPLE[3]
    other = original.model_copy(update={"recorded_at": original.recorded_at + timedelta(1)})
    with pytest.raises(EventIdConflictError) as caught, store.write() as session:
        if where == "same session":
            assert session.append(original).position == 4
        session.append(other)
    position = 2 if where == "committed" else 4
    assert (caught.value.event_id, caught.value.position) == (original.event_id, position)
    assert store.head() == 3, "the whole transaction is rolled back"
    assert [s.payload for s in store.read()] == [encode_json(e) for e in SAMPLE[:3]]
    with store.write() as session:
        assert session.stored_hash(SAMPLE[3].event_id) is None


# --- what is kept of long text, times and problems ---------------------------------------------


def test_long_source_and_location_are_kept_cut_to_the_same_length(store: EventStore) -> None:
    """A dead letter's source and location are cut to the column's length on every backend
    (characters, not bytes); the digest that recognises a resend covers all of them."""
    source = "http:" + "s" * 300
    location = "item 0 " + "é" * 300
    with store.write() as session:
        first = session.reject(source, "S1", location, b'{"bad": 1}', PROBLEM)
        assert session.reject(source, "S1", location, b'{"bad": 1}', PROBLEM) == first
        # differs only past the cut: another submission, kept with the same cut text
        second = session.reject(source, "S1", location + "x", b'{"bad": 1}', PROBLEM)
        fits = session.reject("s" * SOURCE_MAX, "S1", "l" * LOCATION_MAX, b"{}", PROBLEM)
    kept = {r.id: r for r in store.rejections()}
    assert (kept[first].source, kept[first].location) == (
        source[:SOURCE_MAX],
        location[:LOCATION_MAX],
    )
    assert len(kept[first].location) == LOCATION_MAX == 200 and SOURCE_MAX == 200
    assert (kept[second].source, kept[second].location) == (
        kept[first].source,
        kept[first].location,
    )
    assert kept[first].received == 2 and kept[second].received == 1
    assert (kept[fits].source, kept[fits].location) == ("s" * SOURCE_MAX, "l" * LOCATION_MAX)
    assert store.verify_rejections().ok


def test_a_source_offset_key_longer_than_its_column_is_refused(store: EventStore) -> None:
    """An ordered source's name is a key: cut, two sources could share an offset; so a name
    longer than the column is refused on every backend (PostgreSQL would fail at commit,
    SQLite and memory would keep it), and one that fits is kept whole."""
    longest = "kafka:" + "t" * (OFFSET_SOURCE_MAX - 8) + "/0"
    with store.write() as session:
        session.set_source_offset(longest, 7)
        with pytest.raises(ValueError, match="source"):
            session.set_source_offset(longest + "0", 1)
    with store.write() as session:
        assert session.source_offset(longest) == 7
        assert session.source_offset(longest + "0") is None


def test_times_read_back_in_utc_whatever_the_offsets_given(
    make_store: Callable[[Clock], EventStore],
) -> None:
    """An event's times given at +08:00 and a server clock at +05:30 read back as UTC on
    every backend (so e.g. ``.date()`` of a stored time does not depend on the backend)."""
    plus_0530 = timezone(timedelta(hours=5, minutes=30))
    received = datetime(2026, 3, 1, 2, 0, tzinfo=plus_0530)  # 2026-02-28T20:30Z
    store = make_store(lambda: received)
    plus_8 = timezone(timedelta(hours=8))
    event = SAMPLE[0].model_copy(
        update={
            "occurred_at": datetime(2026, 2, 20, 1, 0, tzinfo=plus_8),
            "recorded_at": datetime(2026, 2, 20, 2, 0, tzinfo=plus_8),
        }
    )
    with store.write() as session:
        result = session.append(event)
        session.reject("http:S1", "S1", "line 1", b"x", PROBLEM)
    assert result.stored_at is not None
    (stored,) = store.read()
    (rejection,) = store.rejections()
    times = [
        result.stored_at,
        stored.occurred_at,
        stored.recorded_at,
        stored.stored_at,
        rejection.received_at,
        next(store.payloads())[2],
    ]
    assert [t.utcoffset() for t in times] == [timedelta(0)] * len(times)
    assert [t.date().isoformat() for t in times] == [
        "2026-02-28", "2026-02-19", "2026-02-19", "2026-02-28", "2026-02-28", "2026-02-28"
    ]  # fmt: skip
    assert store.verify().ok and store.verify_rejections().ok


def test_problems_are_kept_as_their_json(store: EventStore) -> None:
    """A dead letter's problems read back as the JSON stored (a tuple as a list), unchanged
    by what the caller later does to the list it passed or to a list it read."""
    problems: list[dict[str, Any]] = [
        {"path": "grade", "message": "m", "code": "c", "allowed": ("1", "2"), "at": {"n": 1}}
    ]
    with store.write() as session:
        session.reject("http:S1", "S1", "line 1", b"x", problems)
    problems[0]["at"]["n"] = 2
    expected = [{"path": "grade", "message": "m", "code": "c", "allowed": ["1", "2"],
                 "at": {"n": 1}}]  # fmt: skip
    (read,) = store.rejections()
    assert read.problems == expected
    read.problems[0]["at"]["n"] = 3
    read.problems.append({})
    assert store.rejections()[0].problems == expected
    assert store.verify_rejections().ok


# --- bounds of reads --------------------------------------------------------------------------


def test_read_and_payloads_bounds(store: EventStore) -> None:
    """``after`` below 0 reads from the start; a ``limit`` of 0 or less reads nothing; past
    the head reads nothing; an empty store reads nothing and is at position 0 at any time."""
    assert list(store.read()) == [] and list(store.payloads()) == []
    assert store.head() == 0 and store.position_at(FAR_FUTURE) == 0
    append_all(store, SAMPLE[:5])

    def both(after: int = 0, limit: int | None = None) -> tuple[list[int], list[int]]:
        return (
            [s.position for s in store.read(after, limit)],
            [p for p, _, _ in store.payloads(after, limit)],
        )

    assert both(after=-1) == both(after=-100) == ([1, 2, 3, 4, 5],) * 2
    assert both(after=-1, limit=2) == ([1, 2],) * 2
    assert both(limit=0) == both(limit=-1) == both(after=2, limit=-3) == ([], [])
    assert both(after=5) == both(after=99) == ([], [])
    assert both(after=3, limit=99) == ([4, 5],) * 2


def test_position_at_edges(make_store: Callable[[Clock], EventStore]) -> None:
    """An event stored exactly at the moment counts; one stored a microsecond later does not."""
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    times = iter([t0, t0, t0 + timedelta(microseconds=1), t0 + timedelta(seconds=1)])
    store = make_store(lambda: next(times))
    for event in SAMPLE[:4]:
        append_all(store, [event])
    assert store.position_at(t0 - timedelta(microseconds=1)) == 0
    assert store.position_at(t0) == 2
    assert store.position_at(t0 + timedelta(microseconds=1)) == 3
    assert store.position_at(t0 + timedelta(seconds=1)) == 4
    assert [s.position for s in store.read(stored_until=t0)] == [1, 2]
    assert [p for p, _, _ in store.payloads(after=1, stored_until=t0)] == [2]


def test_rejections_bounds(store: EventStore) -> None:
    """A ``limit`` of 0 or less lists nothing (SQLite read LIMIT -1 as no limit, PostgreSQL
    refused it, memory dropped the last); ``after`` below 0 lists from the first."""
    with store.write() as session:
        for n in range(3):
            session.reject("src", "S1", f"line {n}", b"%d" % n, PROBLEM)
    for limit in (0, -1):
        assert store.rejections(limit=limit) == store.rejections(after=0, limit=limit) == []
    assert [r.id for r in store.rejections(after=-5)] == [1, 2, 3]
    assert [r.id for r in store.rejections(after=3)] == []
