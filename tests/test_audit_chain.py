"""The audit chain covers what reads use (issue 17, item 7): every column a read filters on,
the receipt time, dead letters and alert acknowledgements; signed checkpoints anchor the head
against truncation and rewriting. Memory, SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from safety_stream.alerts.config import AlertConfig
from safety_stream.cli import main
from safety_stream.events import EventBase, decode_json, encode_json
from safety_stream.events.derived import DerivedEvent
from safety_stream.events.hashing import GENESIS, chain_hash, chain_hash_v1, payload_hash
from safety_stream.store.base import RAW_KEPT, EventStore
from safety_stream.store.checkpoint import (
    CheckpointError,
    check_checkpoint,
    load_checkpoint,
    write_checkpoint,
)
from safety_stream.store.memory import InMemoryEventStore
from safety_stream.store.outbox_sql import SqlOutbox as Outbox
from safety_stream.store.sql import SqlEventStore
from safety_stream.store.tables import AlertLogRow, AlertRow, EventRow, RejectionRow
from safety_stream.store.verify import verify_alert_log

SAMPLE: list[EventBase] = [
    decode_json(line) for line in (EXAMPLES / "sparkle-l-sample.ndjson").read_bytes().splitlines()
]
KEY = "a checkpoint key of some length"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class Ticking:
    """A clock that moves one second per reading (distinct receipt times)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[EventStore]:
    if request.param == "memory":
        yield InMemoryEventStore(Ticking())
        return
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    sql = SqlEventStore(SqlEventStore.create(url).engine, Ticking())
    yield sql
    sql.close()


def append_all(store: EventStore, events: list[EventBase]) -> None:
    with store.write() as session:
        for event in events:
            session.append(event)


def edit_event(store: EventStore, position: int, **columns: Any) -> None:
    """Change stored columns of one event in place, as someone with database access could."""
    if isinstance(store, InMemoryEventStore):
        store.tamper(position, **columns)
        return
    assert isinstance(store, SqlEventStore)
    with store.engine.begin() as connection:
        connection.execute(update(EventRow).where(EventRow.position == position).values(**columns))


def delete_after(store: EventStore, keep: int) -> None:
    if isinstance(store, InMemoryEventStore):
        store.truncate(keep)
        return
    assert isinstance(store, SqlEventStore)
    with store.engine.begin() as connection:
        connection.execute(delete(EventRow).where(EventRow.position > keep))


def edit_rejection(store: EventStore, rejection_id: int, **fields: Any) -> None:
    if isinstance(store, InMemoryEventStore):
        store.tamper_rejection(rejection_id, **fields)
        return
    assert isinstance(store, SqlEventStore)
    if "problems" in fields:
        fields["problems"] = json.dumps(fields["problems"])
    with store.engine.begin() as connection:
        connection.execute(
            update(RejectionRow).where(RejectionRow.id == rejection_id).values(**fields)
        )


# --- every column a read uses ---------------------------------------------------------------


def test_editing_the_patient_id_of_an_event_row_fails_verify_naming_its_position(
    store: EventStore,
) -> None:
    """Reads filter by patient_id and site_id: moving a site-B AE to a site-A patient
    (its payload untouched, so its payload hash still matches) must break verify."""
    append_all(store, SAMPLE[:20])
    assert store.verify().ok
    target = next(s for s in store.read() if s.event_type == "ae.reported")
    other = next(s.patient_id for s in store.read() if s.patient_id != target.patient_id)
    edit_event(store, target.position, patient_id=other, stream_version=99)  # unique key
    result = store.verify()
    assert not result.ok
    assert result.broken_at == target.position
    assert "patient_id" in (result.reason or "")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("site_id", "XX-OTHER-01"),
        ("trial_id", "OTHER-TRIAL"),
        ("event_type", "ae.retracted"),
        ("schema_version", 7),
        ("occurred_at", datetime(2020, 1, 1, tzinfo=UTC)),
        ("recorded_at", datetime(2020, 1, 1, tzinfo=UTC)),
    ],
)
def test_editing_any_column_a_read_uses_fails_verify(
    store: EventStore, column: str, value: Any
) -> None:
    append_all(store, SAMPLE[:10])
    edit_event(store, 6, **{column: value})
    result = store.verify()
    assert (result.ok, result.broken_at) == (False, 6)
    assert column in (result.reason or "")


def test_editing_stored_at_fails_verify(store: EventStore) -> None:
    """The receipt time is the monitoring clock and selects a report's snapshot: it is in
    the chain (format 2), so moving it breaks the link at that position."""
    append_all(store, SAMPLE[:20])
    stored = list(store.read())[11]
    edit_event(store, 12, stored_at=stored.stored_at - timedelta(days=30))
    result = store.verify()
    assert (result.ok, result.broken_at) == (False, 12)
    assert "stored_at" in (result.reason or "")


def test_verify_names_the_head(store: EventStore) -> None:
    append_all(store, SAMPLE[:5])
    result = store.verify()
    assert result.ok and result.head_hash == list(store.read())[-1].chain_hash


# --- signed checkpoints ---------------------------------------------------------------------


def test_truncating_the_tail_after_a_checkpoint_is_detected(
    store: EventStore, tmp_path: Path
) -> None:
    append_all(store, SAMPLE[:20])
    path = tmp_path / "checkpoint.json"
    written = write_checkpoint(store, KEY, path)
    assert (written.position, check_checkpoint(store, load_checkpoint(path, KEY))) == (20, None)
    delete_after(store, 17)
    assert store.verify().ok  # what is left still chains: only the checkpoint can tell
    problem = check_checkpoint(store, load_checkpoint(path, KEY))
    assert problem is not None and "truncated" in problem and "position 20" in problem
    with pytest.raises(CheckpointError, match="not replacing"):  # the evidence stays
        write_checkpoint(store, KEY, path)


def rewrite_tail(store: EventStore, first: int) -> None:
    """Rewrite the events from ``first`` on with another reporter, recomputing the payload
    hashes and the chain: verify alone cannot tell."""
    events = list(store.read())
    previous = events[first - 2].chain_hash
    for stored in events[first - 1 :]:
        event = decode_json(stored.payload).model_copy(update={"reporter": "mallory"})
        payload = encode_json(event)
        digest = payload_hash(payload)
        previous = chain_hash(previous, stored.position, stored.event_id, digest, stored.stored_at)
        edit_event(store, stored.position, payload=payload, payload_hash=digest,
                   chain_hash=previous)  # fmt: skip


def test_rewriting_the_tail_with_recomputed_hashes_is_detected(
    store: EventStore, tmp_path: Path
) -> None:
    append_all(store, SAMPLE[:20])
    path = tmp_path / "checkpoint.json"
    write_checkpoint(store, KEY, path)
    rewrite_tail(store, 18)
    assert store.verify().ok
    problem = check_checkpoint(store, load_checkpoint(path, KEY))
    assert problem is not None and "rewritten" in problem


def test_a_checkpoint_with_a_wrong_hmac_is_refused(store: EventStore, tmp_path: Path) -> None:
    append_all(store, SAMPLE[:10])
    path = tmp_path / "checkpoint.json"
    write_checkpoint(store, KEY, path)
    with pytest.raises(CheckpointError, match="HMAC"):
        load_checkpoint(path, "another key, also long enough")
    document = json.loads(path.read_text())
    document["position"] = 5  # moved back (to hide a truncation) without the key
    path.write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="HMAC"):
        load_checkpoint(path, KEY)


def test_checkpoints_verify_only_what_the_log_gained(store: EventStore, tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    assert write_checkpoint(store, KEY, path).position == 0  # an empty log
    append_all(store, SAMPLE[:10])
    assert write_checkpoint(store, KEY, path).position == 10
    append_all(store, SAMPLE[10:15])
    edit_event(store, 13, patient_id="SPK-9999")
    with pytest.raises(CheckpointError, match="position 13"):
        write_checkpoint(store, KEY, path)
    assert load_checkpoint(path, KEY).position == 10


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_verify_command_with_a_checkpoint(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    store = SqlEventStore.create(url)
    append_all(store, SAMPLE[:30])
    path = tmp_path / "checkpoint.json"
    checkpoint = write_checkpoint(store, KEY, path)
    monkeypatch.delenv("SAFETY_STREAM_CHECKPOINT_KEY", raising=False)
    assert main(["verify", "--db", url, "--checkpoint", str(path)]) == 2  # no key: usage
    capsys.readouterr()
    monkeypatch.setenv("SAFETY_STREAM_CHECKPOINT_KEY", KEY)
    assert main(["verify", "--db", url, "--checkpoint", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"head: position 30, chain hash {checkpoint.chain_hash}" in out
    assert "OK: checkpoint" in out and "dead letters, hash chain intact" in out

    rewrite_tail(store, 29)
    assert main(["verify", "--db", url]) == 0
    assert main(["verify", "--db", url, "--checkpoint", str(path)]) == 1
    assert "CHECKPOINT FAILED" in capsys.readouterr().out
    delete_after(store, 25)
    assert main(["verify", "--db", url, "--checkpoint", str(path)]) == 1
    assert "truncated" in capsys.readouterr().out
    monkeypatch.setenv("SAFETY_STREAM_CHECKPOINT_KEY", "the wrong key, long enough")
    assert main(["verify", "--db", url, "--checkpoint", str(path)]) == 1
    assert "CHECKPOINT REFUSED" in capsys.readouterr().out
    store.close()


def test_report_writes_a_checkpoint_when_a_key_is_set(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = SqlEventStore.create(sqlite_url)
    append_all(store, SAMPLE)
    store.close()
    path = tmp_path / "anchors" / "checkpoint.json"
    monkeypatch.setenv("SAFETY_STREAM_CHECKPOINT_KEY", KEY)
    monkeypatch.setenv("SAFETY_STREAM_CHECKPOINT_FILE", str(path))
    out = tmp_path / "report.html"
    assert main(["report", "--db", sqlite_url, "--cutoff", "2030-01-01", "--out", str(out)]) == 0
    assert f"checkpoint: position {len(SAMPLE)} signed in {path}" in capsys.readouterr().out
    assert load_checkpoint(path, KEY).position == len(SAMPLE)
    assert main(["verify", "--db", sqlite_url, "--checkpoint", str(path)]) == 0


# --- dead letters ---------------------------------------------------------------------------

PROBLEMS = [{"path": "grade", "message": "grade 4 is not defined", "code": "ctcae.grade"}]


def reject_three(store: EventStore) -> None:
    with store.write() as session:
        session.reject("http:S1", "S1", "line 1", b'{"grade": 4}', PROBLEMS)
        session.reject("http:S1", "S1", "line 2", b"\xff garbage", PROBLEMS)
    with store.write() as session:
        session.reject("file:x", None, "line 9", b"{}", [])


@pytest.mark.parametrize(
    "change", [{"problems": [{"path": "", "message": "nothing wrong"}]}, {"raw": b'{"grade": 3}'}]
)
def test_editing_a_dead_letter_fails_verify(store: EventStore, change: dict[str, Any]) -> None:
    reject_three(store)
    assert store.verify_rejections().ok and store.verify_rejections().checked == 3
    edit_rejection(store, 1, **change)
    result = store.verify_rejections()
    assert (result.ok, result.broken_at) == (False, 1)


def test_deleting_a_dead_letter_fails_verify(store: EventStore) -> None:
    reject_three(store)
    if isinstance(store, InMemoryEventStore):
        store._state.rejections[1:2] = []  # the middle one
        store._state.rejections[1] = replace(store._state.rejections[1], id=2)
    else:
        assert isinstance(store, SqlEventStore)
        with store.engine.begin() as connection:
            connection.execute(delete(RejectionRow).where(RejectionRow.id == 2))
    assert not store.verify_rejections().ok


def test_a_huge_dead_letter_keeps_64_kib_with_its_size_and_digest(store: EventStore) -> None:
    raw = bytes(range(256)) * (16 * 4096)  # 16 MiB of garbage
    assert len(raw) == 16 << 20
    with store.write() as session:
        session.reject("http:S1", "S1", "body", raw, [{"code": "input.not_json"}])
    kept = store.rejections()[0]
    assert kept.raw == raw[:RAW_KEPT] and len(kept.raw) == 64 * 1024
    assert (kept.size, kept.sha256, kept.truncated) == (
        16 << 20, hashlib.sha256(raw).hexdigest(), True,
    )  # fmt: skip
    assert store.verify_rejections().ok
    with store.write() as session:  # the same body again is recognised (by all its bytes)
        session.reject("http:S1", "S1", "body", raw, [{"code": "input.not_json"}])
    assert [r.received for r in store.rejections()] == [2]


def test_the_rejection_listing_says_when_raw_was_truncated(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SqlEventStore.create(sqlite_url)
    with store.write() as session:
        session.reject("http:S1", "S1", "body", b"x" * 100_000, [{"message": "not JSON"}])
        session.reject("http:S1", "S1", "line 1", b"{}", [{"message": "empty"}])
    store.close()
    assert main(["rejected", "--db", sqlite_url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["raw_size"], r["raw_truncated"]) for r in listed] == [(2, False), (100_000, True)]
    assert listed[1]["raw_sha256"] == hashlib.sha256(b"x" * 100_000).hexdigest()
    assert main(["rejected", "--db", sqlite_url]) == 0
    assert "the first 65,536 of 100,000 bytes kept" in capsys.readouterr().out


# --- alert acknowledgements -----------------------------------------------------------------


def add_alert(engine: Engine, rule: str) -> uuid.UUID:
    alert = DerivedEvent(
        derived_id=uuid.uuid4(), kind="boundary.crossed", severity="critical", rule_id=rule,
        plan_version="1", occurred_at=T0, caused_by=1, summary="crossed", details={},
    )  # fmt: skip
    with engine.begin() as connection:
        connection.execute(
            insert(AlertRow).values(
                derived_id=alert.derived_id, kind=alert.kind, severity=alert.severity,
                rule_id=rule, raised_at=T0, doc=alert.model_dump_json(),
            )
        )  # fmt: skip
    return alert.derived_id


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_editing_an_acknowledgement_fails_verify(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    store = SqlEventStore.create(url)
    config = AlertConfig.model_validate(
        {"groups": [{"name": "g", "channels": [{"type": "file", "path": str(tmp_path / "a")}]}]}
    )
    outbox = Outbox(store.engine, config)
    first, second = add_alert(store.engine, "r1"), add_alert(store.engine, "r2")
    outbox.acknowledge(first, "dsmb-chair", "seen", T0)
    outbox.acknowledge(first, "someone-else", None, T0 + timedelta(hours=1))  # first stands
    outbox.acknowledge(second, "officer", None, T0 + timedelta(hours=2))
    assert verify_alert_log(store.engine).checked == 2
    assert main(["verify", "--db", url]) == 0
    assert "OK: 2 alert log entries, hash chain intact" in capsys.readouterr().out
    with store.engine.begin() as connection:
        connection.execute(update(AlertLogRow).where(AlertLogRow.id == 1).values(actor="mallory"))
    result = verify_alert_log(store.engine)
    assert (result.ok, result.broken_at) == (False, 1)
    assert main(["verify", "--db", url]) == 1
    assert "BROKEN at alert log entry 1" in capsys.readouterr().out
    store.close()


# --- migration 0008 -------------------------------------------------------------------------


def v1_store(url: str, tamper_at: int | None = None) -> Engine:
    """A store at revision 0007 written with the format-1 chain, a dead letter and an
    acknowledgement (columns as they were then)."""
    from safety_stream.store.engine import make_engine
    from safety_stream.store.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine, "0007")
    append_all(SqlEventStore(engine, Ticking()), SAMPLE[:25])  # the events table is unchanged
    with engine.begin() as connection:
        rows = connection.execute(
            select(EventRow.position, EventRow.event_id, EventRow.payload_hash).order_by(
                EventRow.position
            )
        ).all()
        previous = GENESIS
        for position, event_id, digest in rows:
            previous = chain_hash_v1(previous, position, event_id, digest)
            connection.execute(
                update(EventRow).where(EventRow.position == position).values(chain_hash=previous)
            )
        if tamper_at is not None:
            connection.execute(
                update(EventRow).where(EventRow.position == tamper_at).values(payload="{}")
            )
        connection.execute(
            insert(RejectionRow).values(
                received_at=T0, source="http:S1", site_id="S1", location="line 1",
                raw=b"\xff", problems="[]", digest=None, received=1,
            )
        )  # fmt: skip
        derived_id = uuid.uuid4()
        connection.execute(
            insert(AlertLogRow).values(
                derived_id=derived_id, action="acknowledged", at=T0, actor="chair", note=None
            )
        )
    return engine


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_0008_relinks_a_v1_store(backend: str, request: pytest.FixtureRequest) -> None:
    from safety_stream.store.migrate import upgrade

    engine = v1_store(request.getfixturevalue(f"{backend}_url"))
    with engine.connect() as connection:
        before = connection.execute(select(EventRow.chain_hash).order_by(EventRow.position))
        v1_hashes = list(before.scalars())
    upgrade(engine)
    store = SqlEventStore(engine)
    try:
        result = store.verify()
        assert result.ok and result.checked == 25
        assert [s.chain_hash for s in store.read()] != v1_hashes
        assert store.verify_rejections().ok and store.verify_rejections().checked == 1
        assert store.rejections()[0].size == 1
        assert verify_alert_log(engine).checked == 1
        append_all(store, SAMPLE[25:30])  # new appends chain on from the re-linked head
        assert store.verify().ok and store.verify().checked == 30
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_0008_refuses_a_broken_v1_chain(
    backend: str, request: pytest.FixtureRequest
) -> None:
    from alembic.runtime.migration import MigrationContext

    from safety_stream.store.migrate import upgrade

    engine = v1_store(request.getfixturevalue(f"{backend}_url"), tamper_at=9)
    with pytest.raises(RuntimeError, match=r"refused.*position 9"):
        upgrade(engine)
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == "0007"
    engine.dispose()
