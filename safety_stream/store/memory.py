"""The in-memory event store: the reference implementation of the port, used by unit tests.

Same rules as the SQL store: one writer at a time (a lock), all-or-nothing transactions,
idempotent appends, per-patient stream versions, chained hashes, a dead-letter list.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from safety_stream.events import EventBase, encode_json
from safety_stream.events.hashing import GENESIS, chain_hash, payload_hash, rejection_link
from safety_stream.store.base import (
    LOCATION_MAX,
    SOURCE_MAX,
    AppendResult,
    ConcurrencyError,
    EventIdConflictError,
    Rejection,
    StoredEvent,
    VerifyResult,
    check_offset_source,
    kept_raw,
    problems_json,
    rejection_digest,
)
from safety_stream.store.verify import memory_rejection_rows, verify_chain, verify_rejection_rows
from safety_stream.validation.references import AeFacts, ae_facts_after
from safety_stream.validation.timeline import PatientFacts, patient_facts_after

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _State:
    events: list[StoredEvent] = field(default_factory=list)
    by_id: dict[UUID, StoredEvent] = field(default_factory=dict)
    versions: dict[tuple[str, str], int] = field(default_factory=dict)
    patients: dict[str, PatientFacts] = field(default_factory=dict)
    aes: dict[UUID, AeFacts] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    rejection_ids: dict[str, int] = field(default_factory=dict)  # digest -> id
    received: dict[int, int] = field(default_factory=dict)  # id -> times received, if > 1
    received_again: list[int] = field(default_factory=list)  # ids resent, counted at commit
    rejection_digests: dict[int, str | None] = field(default_factory=dict)  # id -> digest
    rejection_hashes: dict[int, str] = field(default_factory=dict)  # id -> chain hash
    offsets: dict[str, int] = field(default_factory=dict)
    undo: list[Callable[[], None]] = field(default_factory=list)

    def set(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        """Write one entry, remembering how to take it back if the transaction fails."""
        if key in table:
            old = table[key]
            self.undo.append(lambda: table.__setitem__(key, old))
        else:
            self.undo.append(lambda: table.pop(key))
        table[key] = value

    def rollback(self, events: int, rejections: int) -> None:
        for step in reversed(self.undo):
            step()
        del self.events[events:]
        del self.rejections[rejections:]
        self.received_again.clear()

    def commit(self) -> None:
        for known in self.received_again:
            self.received[known] = self.received.get(known, 1) + 1
        self.received_again.clear()


class _MemorySession:
    def __init__(self, state: _State, clock: Clock) -> None:
        self._state = state
        self._clock = clock

    def ae_facts(self, ae_id: UUID) -> AeFacts | None:
        return self._state.aes.get(ae_id)

    def patient_facts(self, patient_id: str) -> PatientFacts | None:
        return self._state.patients.get(patient_id)

    def prefetch(
        self, event_ids: Iterable[UUID], ae_ids: Iterable[UUID], patient_ids: Iterable[str]
    ) -> None:
        pass  # everything is already in memory

    def now(self) -> datetime:
        return self._clock()

    def stored_hash(self, event_id: UUID) -> tuple[int, str] | None:
        stored = self._state.by_id.get(event_id)
        return None if stored is None else (stored.position, stored.payload_hash)

    def source_offset(self, source: str) -> int | None:
        return self._state.offsets.get(source)

    def set_source_offset(self, source: str, offset: int) -> None:
        check_offset_source(source)
        self._state.set(self._state.offsets, source, offset)

    def append(self, event: EventBase, expected_version: int | None = None) -> AppendResult:
        state = self._state
        payload = encode_json(event)
        digest = payload_hash(payload)
        existing = state.by_id.get(event.event_id)
        if existing is not None:
            if existing.payload_hash != digest:
                raise EventIdConflictError(event.event_id, existing.position)
            return AppendResult("duplicate", existing.position, existing.stream_version, None)
        stream = (event.trial_id, event.patient_id)
        version = state.versions.get(stream, 0)
        if expected_version is not None and expected_version != version:
            raise ConcurrencyError(f"{stream[0]}/{stream[1]}", expected_version, version)
        position = len(state.events) + 1
        now = self._clock().astimezone(UTC)  # read back in UTC, as from the SQL columns
        previous = state.events[-1].chain_hash if state.events else GENESIS
        stored = StoredEvent(
            position=position,
            event_id=event.event_id,
            event_type=event.event_type,
            schema_version=event.schema_version,
            trial_id=event.trial_id,
            site_id=event.site_id,
            patient_id=event.patient_id,
            stream_version=version + 1,
            occurred_at=event.occurred_at.astimezone(UTC),
            recorded_at=event.recorded_at.astimezone(UTC),
            stored_at=now,
            payload=payload,
            payload_hash=digest,
            chain_hash=chain_hash(previous, position, event.event_id, digest, now),
        )
        state.events.append(stored)
        state.set(state.by_id, event.event_id, stored)
        state.set(state.versions, stream, version + 1)
        patient = patient_facts_after(event, state.patients.get(event.patient_id))
        if patient is not None:
            state.set(state.patients, event.patient_id, patient)
        change = ae_facts_after(event, state.aes.get)
        if change is not None:
            state.set(state.aes, change[0], change[1])
        return AppendResult("stored", position, version + 1, now)

    def reject(
        self,
        source: str,
        site_id: str | None,
        location: str,
        raw: bytes,
        problems: Sequence[dict[str, Any]],
    ) -> int:
        digest = rejection_digest(site_id, location, raw, problems)
        known = None if digest is None else self._state.rejection_ids.get(digest)
        if known is not None:
            self._state.received_again.append(known)
            return known
        state = self._state
        kept, size, whole = kept_raw(raw)
        source, location = source[:SOURCE_MAX], location[:LOCATION_MAX]  # as the columns keep
        rejection = Rejection(
            id=len(state.rejections) + 1,
            received_at=self._clock().astimezone(UTC),
            source=source,
            site_id=site_id,
            location=location,
            raw=kept,
            problems=json.loads(problems_json(problems)),  # what the SQL store reads back
            raw_size=size,
            raw_sha256=whole,
        )
        previous = state.rejection_hashes[rejection.id - 1] if state.rejections else GENESIS
        link = rejection_link(
            previous, rejection.id, rejection.received_at, source, site_id, location, kept, size,
            whole, digest, problems_json(rejection.problems),
        )  # fmt: skip
        state.rejections.append(rejection)
        state.set(state.rejection_digests, rejection.id, digest)
        state.set(state.rejection_hashes, rejection.id, link)
        if digest is not None:
            state.set(state.rejection_ids, digest, rejection.id)
        return rejection.id


class InMemoryEventStore:
    """All state in memory; a failed write transaction is undone entry by entry."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self._state = _State()
        self._lock = threading.Lock()
        self._clock = clock
        self._committed = 0  # readers see events up to here only (read committed)
        self._committed_rejections = 0  # and dead letters up to here

    @contextmanager
    def write(self) -> Iterator[_MemorySession]:
        with self._lock:
            state = self._state
            marks = (len(state.events), len(state.rejections))
            state.undo.clear()
            try:
                yield _MemorySession(state, self._clock)
            except BaseException:
                state.rollback(*marks)
                raise
            else:
                state.commit()
                self._committed = len(state.events)
                self._committed_rejections = len(state.rejections)
            finally:
                state.undo.clear()

    def read(
        self, after: int = 0, limit: int | None = None, stored_until: datetime | None = None
    ) -> Iterator[StoredEvent]:
        events = self._state.events[max(after, 0) : self._committed]
        if limit is not None:
            events = events[: max(limit, 0)]
        for stored in events:
            if stored_until is not None and stored.stored_at > stored_until:
                return
            yield stored

    def payloads(
        self, after: int = 0, limit: int | None = None, stored_until: datetime | None = None
    ) -> Iterator[tuple[int, str, datetime]]:
        for stored in self.read(after, limit, stored_until):
            yield stored.position, stored.payload, stored.stored_at

    def head(self) -> int:
        return self._committed

    def position_at(self, moment: datetime) -> int:
        position = 0
        for stored in self.read(stored_until=moment):
            position = stored.position
        return position

    def now(self) -> datetime:
        return self._clock()

    def stream(self, trial_id: str, patient_id: str) -> list[StoredEvent]:
        return [
            e
            for e in self._state.events[: self._committed]
            if (e.trial_id, e.patient_id) == (trial_id, patient_id)
        ]

    def rejections(
        self, site_id: str | None = None, limit: int = 100, after: int | None = None
    ) -> list[Rejection]:
        received, limit = self._state.received, max(limit, 0)
        committed = self._state.rejections[: self._committed_rejections]
        selected = [r for r in committed if site_id is None or r.site_id == site_id]
        if after is not None:
            selected = [r for r in selected if r.id > after][:limit]
        else:
            selected = list(reversed(selected))[:limit]
        return [  # copies: what a reader does to its list must not change the store's
            replace(r, received=received.get(r.id, 1), problems=json.loads(json.dumps(r.problems)))
            for r in selected
        ]

    def verify(self) -> VerifyResult:
        return verify_chain(self.read())

    def verify_rejections(self) -> VerifyResult:
        state = self._state
        rows = memory_rejection_rows(
            state.rejections[: self._committed_rejections],
            state.rejection_digests,
            state.rejection_hashes,
        )
        return verify_rejection_rows(rows)

    def tamper(self, position: int, payload: str | None = None, **columns: Any) -> None:
        """Test hook: overwrite a stored event's payload or columns in place, as an attacker
        with DB access could."""
        index = position - 1
        if payload is not None:
            columns["payload"] = payload
        self._state.events[index] = replace(self._state.events[index], **columns)

    def tamper_rejection(self, rejection_id: int, **fields: Any) -> None:
        """Test hook: overwrite a dead letter's fields in place."""
        index = rejection_id - 1
        self._state.rejections[index] = replace(self._state.rejections[index], **fields)

    def truncate(self, keep: int) -> None:
        """Test hook: delete the events after position ``keep``, as an attacker could."""
        del self._state.events[keep:]
        self._committed = min(self._committed, keep)
