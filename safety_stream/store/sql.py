"""The SQL event store (SQLite by default, PostgreSQL by URL) behind the ``EventStore`` port.

Appends are serialised by one lock per store: ``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped
advisory lock on PostgreSQL. Positions are assigned under that lock and committed in order, so a
reader following the log by position can never skip an event that commits late (the failure
mode of sequence-assigned positions). Rows written in one ``write()`` go to the database in a
few bulk statements at commit; lookups inside the transaction see them through an overlay.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    bindparam,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from safety_stream.events import EventBase, PatientEnrolled, encode_json
from safety_stream.events.hashing import GENESIS, chain_hash, payload_hash, rejection_link
from safety_stream.store.base import (
    LOCATION_MAX,
    SOURCE_MAX,
    AppendResult,
    ConcurrencyError,
    EventIdConflictError,
    Rejection,
    StoredEvent,
    StoreError,
    VerifyResult,
    check_offset_source,
    kept_raw,
    problems_json,
    rejection_digest,
)
from safety_stream.store.bulk import BulkLookup, BulkWrite
from safety_stream.store.engine import make_engine, write_transaction, writers_of
from safety_stream.store.memory import Clock, utc_now
from safety_stream.store.tables import (
    AeIndexRow,
    EventRow,
    PatientIndexRow,
    RejectionRow,
    SourceOffsetRow,
    StreamRow,
)
from safety_stream.store.verify import verify_chain, verify_rejection_rows
from safety_stream.validation.references import AeFacts, ae_facts_after
from safety_stream.validation.timeline import PatientFacts, patient_facts_after

APPEND_LOCK_KEY = 0x5AFE_57E0  # PostgreSQL advisory lock id of the append lock
LOCK_APPENDS = text("SELECT pg_advisory_xact_lock(:key)")
# Statements are built once: building a SQLAlchemy expression costs more than running it. The
# write path's statements go to the driver directly (store/bulk.py).
EVENTS = EventRow.metadata.tables[EventRow.__tablename__]
STREAMS = StreamRow.metadata.tables[StreamRow.__tablename__]
PATIENTS = PatientIndexRow.metadata.tables[PatientIndexRow.__tablename__]
AES = AeIndexRow.metadata.tables[AeIndexRow.__tablename__]
INSERT_EVENTS = BulkWrite.insert(EVENTS)
EVENT_COLUMNS = [
    "position", "event_id", "event_type", "schema_version", "trial_id", "site_id", "patient_id",
    "stream_version", "occurred_at", "recorded_at", "stored_at", "payload", "payload_hash",
    "chain_hash",
]  # fmt: skip
if INSERT_EVENTS.parameters != EVENT_COLUMNS:  # append builds its rows in this order
    raise RuntimeError(f"events has the columns {INSERT_EVENTS.parameters}")
STREAM_VERSION = EVENT_COLUMNS.index("stream_version")
INSERT_STREAMS = BulkWrite.insert(STREAMS)
INSERT_PATIENTS = BulkWrite.insert(PATIENTS)
INSERT_AES = BulkWrite.insert(AES)
SET_VERSION = BulkWrite.update(STREAMS, ["version"], ["trial_id", "patient_id"])
SET_PATIENT = BulkWrite.update(PATIENTS, PatientFacts._fields, ["patient_id"])
SET_AE = BulkWrite.update(AES, AeFacts._fields, ["ae_id"])
FIND_AE = select(AeIndexRow).where(AeIndexRow.ae_id == bindparam("ae_id"))
PATIENT_FACTS = (
    PatientIndexRow.site_id,
    PatientIndexRow.consent_date,
    PatientIndexRow.death_date,
    PatientIndexRow.fatal_ae_id,
)
FIND_PATIENT = select(*PATIENT_FACTS).where(PatientIndexRow.patient_id == bindparam("patient_id"))
FIND_STORED = select(EventRow.position, EventRow.payload_hash).where(
    EventRow.event_id == bindparam("event_id")
)
FIND_VERSION = select(StreamRow.version).where(
    StreamRow.trial_id == bindparam("trial_id"), StreamRow.patient_id == bindparam("patient_id")
)
REJECTION_BY_DIGEST = (
    select(RejectionRow.id).where(RejectionRow.digest == bindparam("digest")).limit(1)
)
RECEIVED_AGAIN = (
    update(RejectionRow)
    .where(RejectionRow.id == bindparam("b_id"))
    .values(received=RejectionRow.received + 1)
)
LAST_REJECTION = (
    select(RejectionRow.id, RejectionRow.chain_hash).order_by(RejectionRow.id.desc()).limit(1)
)
LOOKUP_STORED = BulkLookup(EVENTS, "event_id", ["event_id", "position", "payload_hash"])
LOOKUP_AES = BulkLookup(AES, "ae_id", ["ae_id", *AeFacts._fields])
LOOKUP_PATIENTS = BulkLookup(PATIENTS, "patient_id", ["patient_id", *PatientFacts._fields])
LOOKUP_VERSIONS = BulkLookup(STREAMS, "patient_id", ["trial_id", "patient_id", "version"])
READ_PAGE = 5_000
PAYLOAD_PAGE = 20_000


def _facts(row: Any) -> AeFacts:
    return AeFacts(
        row.patient_id,
        row.site_id,
        row.ctcae_term,
        row.onset_date,
        row.grade,
        row.fatal,
        row.retracted,
    )


def _patient(row: Any) -> PatientFacts:
    return PatientFacts(row.site_id, row.consent_date, row.death_date, row.fatal_ae_id)


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(
        position=row.position,
        event_id=row.event_id,
        event_type=row.event_type,
        schema_version=row.schema_version,
        trial_id=row.trial_id,
        site_id=row.site_id,
        patient_id=row.patient_id,
        stream_version=row.stream_version,
        occurred_at=row.occurred_at,
        recorded_at=row.recorded_at,
        stored_at=row.stored_at,
        payload=row.payload,
        payload_hash=row.payload_hash,
        chain_hash=row.chain_hash,
    )


class _SqlSession:
    """One locked write transaction; pending rows are flushed in bulk by ``flush``."""

    def __init__(self, connection: Connection, clock: Clock) -> None:
        self._db = connection
        self._clock = clock
        last = connection.execute(
            select(EventRow.position, EventRow.chain_hash)
            .order_by(EventRow.position.desc())
            .limit(1)
        ).first()
        self._position, self._chain = (last[0], last[1]) if last else (0, GENESIS)
        self._events: list[tuple[Any, ...]] = []  # rows in the order of EVENT_COLUMNS
        self._by_id: dict[UUID, tuple[int, str] | None] = {}
        # patient -> facts, as read from the index or changed here (None: not enrolled)
        self._patient_facts: dict[str, PatientFacts | None] = {}
        self._patients_in_db: set[str] = set()
        self._patients_changed: dict[str, str] = {}  # patient -> trial
        self._versions: dict[tuple[str, str], tuple[int, bool]] = {}  # -> (version, in db)
        self._aes: dict[UUID, AeFacts | None] = {}  # read from the index, or changed here
        self._aes_in_db: set[UUID] = set()
        self._aes_changed: set[UUID] = set()
        self._rejections: list[dict[str, Any]] = []
        self._rejection_ids: dict[str, int] = {}  # digest -> id (pending: its list index)
        self._rejection_head: tuple[int, str] | None = None  # (id, chain hash) of the last
        self._received_again: list[int] = []  # stored dead letters received once more
        self._streamless: set[str] = set()  # patients known to have no stream yet
        self._offsets: dict[str, tuple[int, bool]] = {}  # source -> (offset, row exists)

    def prefetch(
        self, event_ids: Iterable[UUID], ae_ids: Iterable[UUID], patient_ids: Iterable[str]
    ) -> None:
        """Answer a batch's lookups with a few IN queries instead of one query per event."""
        db = self._db
        wanted_events = [i for i in set(event_ids) if i not in self._by_id]
        for event_id, position, digest in LOOKUP_STORED.rows(db, wanted_events):
            self._by_id[event_id] = (position, digest)
        for event_id in wanted_events:
            self._by_id.setdefault(event_id, None)
        wanted_aes = [i for i in set(ae_ids) if i not in self._aes]
        for ae_id, *facts in LOOKUP_AES.rows(db, wanted_aes):
            self._aes[ae_id] = AeFacts(*facts)
            self._aes_in_db.add(ae_id)
        for ae_id in wanted_aes:
            self._aes.setdefault(ae_id, None)
        wanted = [p for p in set(patient_ids) if p not in self._patient_facts]
        for patient_id, *known in LOOKUP_PATIENTS.rows(db, wanted):
            self._patient_facts[patient_id] = PatientFacts(*known)
            self._patients_in_db.add(patient_id)
        for patient_id in wanted:
            self._patient_facts.setdefault(patient_id, None)
        with_streams = set()
        for trial_id, patient_id, version in LOOKUP_VERSIONS.rows(db, wanted):
            self._versions.setdefault((trial_id, patient_id), (version, True))
            with_streams.add(patient_id)
        self._streamless.update(set(wanted) - with_streams)

    # ReferenceSource / StoredLookup
    def ae_facts(self, ae_id: UUID) -> AeFacts | None:
        if ae_id in self._aes:
            return self._aes[ae_id]
        row = self._db.execute(FIND_AE, {"ae_id": ae_id}).first()
        if row is None:
            self._aes[ae_id] = None
            return None
        facts = self._aes[ae_id] = _facts(row)
        self._aes_in_db.add(ae_id)
        return facts

    def patient_facts(self, patient_id: str) -> PatientFacts | None:
        if patient_id not in self._patient_facts:
            row = self._db.execute(FIND_PATIENT, {"patient_id": patient_id}).first()
            self._patient_facts[patient_id] = None if row is None else _patient(row)
            if row is not None:
                self._patients_in_db.add(patient_id)
        return self._patient_facts[patient_id]

    def now(self) -> datetime:
        return self._clock()

    def stored_hash(self, event_id: UUID) -> tuple[int, str] | None:
        if event_id in self._by_id:  # appended here, or looked up before (hit or miss)
            return self._by_id[event_id]
        row = self._db.execute(FIND_STORED, {"event_id": event_id}).first()
        found = None if row is None else (row[0], row[1])
        self._by_id[event_id] = found
        return found

    def source_offset(self, source: str) -> int | None:
        if source not in self._offsets:
            found = self._db.execute(
                select(SourceOffsetRow.offset).where(SourceOffsetRow.source == source)
            ).scalar()
            if found is None:
                return None
            self._offsets[source] = (found, True)
        return self._offsets[source][0]

    def set_source_offset(self, source: str, offset: int) -> None:
        check_offset_source(source)
        if self.source_offset(source) is None:
            self._offsets[source] = (offset, False)
        else:
            self._offsets[source] = (offset, self._offsets[source][1])

    def _version(self, stream: tuple[str, str]) -> tuple[int, bool]:
        known = self._versions.get(stream)
        if known is None and stream[1] in self._streamless:
            known = (0, False)
        elif known is None:
            version = self._db.execute(
                FIND_VERSION, {"trial_id": stream[0], "patient_id": stream[1]}
            ).scalar()
            known = (version, True) if version is not None else (0, False)
        return known

    def _stream_version(self, position: int) -> int:
        """The stream version of the event stored (or pending here) at ``position``."""
        first_pending = self._events[0][0] if self._events else self._position + 1
        if position >= first_pending:
            return int(self._events[position - first_pending][STREAM_VERSION])
        return int(
            self._db.execute(
                select(EventRow.stream_version).where(EventRow.position == position)
            ).scalar_one()
        )

    def append(self, event: EventBase, expected_version: int | None = None) -> AppendResult:
        payload = encode_json(event)
        digest = payload_hash(payload)
        existing = self.stored_hash(event.event_id)
        if existing is not None:
            if existing[1] != digest:
                raise EventIdConflictError(event.event_id, existing[0])
            return AppendResult("duplicate", existing[0], self._stream_version(existing[0]), None)
        stream = (event.trial_id, event.patient_id)
        version, in_db = self._version(stream)
        if expected_version is not None and expected_version != version:
            raise ConcurrencyError(f"{stream[0]}/{stream[1]}", expected_version, version)
        self._position += 1
        now = self._clock().astimezone(UTC)  # as the column reads it back
        self._chain = chain_hash(self._chain, self._position, event.event_id, digest, now)
        self._events.append(
            (
                self._position, event.event_id, event.event_type, event.schema_version,
                event.trial_id, event.site_id, event.patient_id, version + 1, event.occurred_at,
                event.recorded_at, now, payload, digest, self._chain,
            )
        )  # fmt: skip
        self._by_id[event.event_id] = (self._position, digest)
        self._versions[stream] = (version + 1, in_db)
        current = None if type(event) is PatientEnrolled else self.patient_facts(event.patient_id)
        patient = patient_facts_after(event, current)
        if patient is not None:
            self._patient_facts[event.patient_id] = patient
            self._patients_changed[event.patient_id] = event.trial_id
        change = ae_facts_after(event, self.ae_facts)
        if change is not None:
            self._aes[change[0]] = change[1]
            self._aes_changed.add(change[0])
        return AppendResult("stored", self._position, version + 1, now)

    def reject(
        self,
        source: str,
        site_id: str | None,
        location: str,
        raw: bytes,
        problems: Sequence[dict[str, Any]],
    ) -> int:
        digest = rejection_digest(site_id, location, raw, problems)
        if digest is not None and digest in self._rejection_ids:  # twice in one transaction
            index = self._rejection_ids[digest]
            self._rejections[index - 1]["received"] += 1
            return int(self._rejections[index - 1]["id"])
        stored = (
            None
            if digest is None
            else self._db.execute(REJECTION_BY_DIGEST, {"digest": digest}).scalar()
        )
        if stored is not None:  # a retry of a submission already kept
            self._received_again.append(stored)
            return int(stored)
        if self._rejection_head is None:  # under the append lock: ids are assigned here
            last = self._db.execute(LAST_REJECTION).first()
            self._rejection_head = (last[0], last[1]) if last else (0, GENESIS)
        previous_id, previous = self._rejection_head
        kept, size, whole = kept_raw(raw)
        rejection_id, received_at = previous_id + 1, self._clock().astimezone(UTC)
        source, location = source[:SOURCE_MAX], location[:LOCATION_MAX]  # the columns' lengths
        problems_text = problems_json(problems)
        link = rejection_link(
            previous, rejection_id, received_at, source, site_id, location, kept, size, whole,
            digest, problems_text,
        )  # fmt: skip
        row = {
            "id": rejection_id,
            "received_at": received_at,
            "source": source,
            "site_id": site_id,
            "location": location,
            "raw": kept,
            "raw_size": size,
            "raw_sha256": whole,
            "problems": problems_text,
            "digest": digest,
            "received": 1,
            "chain_hash": link,
        }
        self._rejection_head = (rejection_id, link)
        self._rejections.append(row)
        if digest is not None:
            self._rejection_ids[digest] = len(self._rejections)
        return rejection_id

    def flush(self) -> None:
        """Write everything pending (called once, just before commit)."""
        INSERT_EVENTS.execute_values(self._db, self._events)
        self._flush_streams()
        self._flush_patients()
        self._flush_aes()
        self._flush_rejections()
        self._flush_offsets()

    def _flush_streams(self) -> None:
        versions = self._versions.items()
        new = [(*stream, v) for stream, (v, in_db) in versions if not in_db]
        INSERT_STREAMS.execute_values(self._db, new)
        SET_VERSION.execute_values(
            self._db, [(v, *stream) for stream, (v, in_db) in versions if in_db]
        )

    def _flush_patients(self) -> None:
        new_patients, changed_patients = [], []
        for patient_id, trial_id in self._patients_changed.items():
            patient = self._patient_facts[patient_id]
            assert patient is not None
            if patient_id in self._patients_in_db:
                changed_patients.append((*patient, patient_id))
            else:
                new_patients.append({"patient_id": patient_id, "trial_id": trial_id,
                                     **patient._asdict()})  # fmt: skip
        INSERT_PATIENTS.execute(self._db, new_patients)
        SET_PATIENT.execute_values(self._db, changed_patients)

    def _flush_aes(self) -> None:
        updated, inserted = [], []
        for ae_id in self._aes_changed:
            facts = self._aes[ae_id]
            assert facts is not None
            if ae_id in self._aes_in_db:
                updated.append((*facts, ae_id))
            else:
                inserted.append({"ae_id": ae_id, **facts._asdict()})
        SET_AE.execute_values(self._db, updated)
        INSERT_AES.execute(self._db, inserted)

    def _flush_rejections(self) -> None:
        if self._rejections:
            self._db.execute(insert(RejectionRow), self._rejections)
        if self._received_again:
            self._db.execute(RECEIVED_AGAIN, [{"b_id": i} for i in self._received_again])

    def _flush_offsets(self) -> None:
        for source, (offset, exists) in self._offsets.items():
            if exists:
                self._db.execute(
                    update(SourceOffsetRow)
                    .where(SourceOffsetRow.source == source)
                    .values(offset=offset)
                )
            else:
                self._db.execute(insert(SourceOffsetRow).values(source=source, offset=offset))


class SqlEventStore:
    """The event store on SQLAlchemy. ``open`` never writes: it refuses a store whose schema is
    not this version's. ``create`` is the explicit step that creates or upgrades it first,
    under the migration lock."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self._clock = clock
        self._postgres = engine.dialect.name == "postgresql"
        self._writers = writers_of(engine)  # shared with the projection's checkpoints

    @classmethod
    def open(cls, url: str, clock: Clock = utc_now) -> SqlEventStore:
        """The existing store at ``url``, its schema at head; nothing is created or migrated
        (UsageError: no store there; StoreUnavailable: its schema is behind, with the
        ``safety-stream db upgrade`` command that upgrades it)."""
        from pathlib import Path

        from sqlalchemy.engine import make_url

        from safety_stream.errors import UsageError
        from safety_stream.store.migrate import require_current, upgrade_hint

        parsed = make_url(url)
        shown = parsed.render_as_string(hide_password=True)
        database = parsed.database or ""
        sqlite_file = parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:")
        if sqlite_file and not database.startswith("file:") and not Path(database).is_file():
            raise UsageError(
                f"--db: no store at {database} (check the path; {upgrade_hint(shown)} creates one)"
            )
        engine = make_engine(url)
        try:
            require_current(engine, shown)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, clock)

    @classmethod
    def create(cls, url: str, clock: Clock = utc_now) -> SqlEventStore:
        """The explicit upgrade step, then ``open``: create the database if needed and bring
        its schema to this version's under the migration lock (idempotent; safe when several
        processes start together). For a process's start (``open_store(url, create=True)``),
        ``safety-stream db upgrade`` and tests that need a new store; everything else opens."""
        from safety_stream.store.migrate import upgrade

        engine = make_engine(url)
        try:
            upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, clock)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[_SqlSession]:
        """One write transaction; this process's writers take turns in the order they came
        (other processes queue on the database's own lock)."""
        with self._writers, write_transaction(self.engine) as connection:
            if self._postgres:
                connection.execute(LOCK_APPENDS, {"key": APPEND_LOCK_KEY})
            session = _SqlSession(connection, self._clock)
            yield session
            try:
                session.flush()
            except IntegrityError as error:  # only if the lock was bypassed
                raise StoreError(f"concurrent append detected: {error.orig}") from error

    def _before_stored_after(self, stored_until: datetime | None) -> ColumnElement[bool]:
        """The log's prefix stored by ``stored_until``: positions before the first event
        stored later. A prefix, not a filter on each row's time: writers' clocks may step or
        disagree, and a gap in the middle would read as a broken hash chain."""
        end = self._first_stored_after(stored_until)
        return true() if end is None else EventRow.position < end

    def _first_stored_after(self, stored_until: datetime | None) -> int | None:
        """The position of the first event stored after ``stored_until`` (None: no such
        event, or no bound)."""
        if stored_until is None:
            return None
        with self.engine.connect() as connection:
            end = connection.execute(
                select(func.min(EventRow.position)).where(EventRow.stored_at > stored_until)
            ).scalar()
        return None if end is None else int(end)

    def read(
        self, after: int = 0, limit: int | None = None, stored_until: datetime | None = None
    ) -> Iterator[StoredEvent]:
        remaining = limit
        prefix = self._before_stored_after(stored_until)
        while remaining is None or remaining > 0:
            page = READ_PAGE if remaining is None else min(READ_PAGE, remaining)
            query = select(EventRow).where(EventRow.position > after, prefix)
            with self.engine.connect() as connection:
                rows = connection.execute(query.order_by(EventRow.position).limit(page))
                batch = [_stored(r) for r in rows]
            yield from batch
            if len(batch) < page:
                return
            after = batch[-1].position
            if remaining is not None:
                remaining -= len(batch)

    def payloads(
        self, after: int = 0, limit: int | None = None, stored_until: datetime | None = None
    ) -> Iterator[tuple[int, str, datetime]]:
        # Pages are read with the driver's cursor: over a replay, SQLAlchemy's processing of
        # each row (a Row object, a lookup per column) cost more than SQLite's own work. The
        # stored time still goes through its column type's conversion (UTC), looked up once.
        end = self._first_stored_after(stored_until)
        sql, to_time = self._payload_query(end is not None)
        bound = () if end is None else (end,)
        remaining = limit
        while remaining is None or remaining > 0:
            page = PAYLOAD_PAGE if remaining is None else min(PAYLOAD_PAGE, remaining)
            with self.engine.connect() as connection:
                cursor = connection.connection.cursor()
                try:
                    cursor.execute(sql, (after, *bound, page))
                    rows = cursor.fetchall()
                finally:
                    cursor.close()
            if rows:  # a column at a time: the conversion is mapped, not called from Python
                positions, texts, times = zip(*rows, strict=True)
                stored = times if to_time is None else map(to_time, times)
                yield from zip(positions, texts, stored, strict=True)
            if len(rows) < page:
                return
            after = rows[-1][0]
            if remaining is not None:
                remaining -= len(rows)

    def _payload_query(self, bounded: bool) -> tuple[str, Callable[[Any], Any] | None]:
        """The driver's SQL for a page of (position, payload, stored at) after a position
        (and before one, when ``bounded``), and the stored time's conversion, if any."""
        dialect = self.engine.dialect
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        quote = dialect.identifier_preparer.quote
        table = EventRow.__table__
        position, payload, stored_at = (
            quote(column.name) for column in (table.c.position, table.c.payload, table.c.stored_at)
        )
        below = f" AND {position} < {marker}" if bounded else ""
        sql = (
            f"SELECT {position}, {payload}, {stored_at}"
            f" FROM {dialect.identifier_preparer.format_table(table)}"
            f" WHERE {position} > {marker}{below} ORDER BY {position} LIMIT {marker}"
        )
        for column in (table.c.position, table.c.payload):  # plain values on every backend
            if column.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
                raise NotImplementedError(f"{column.name} needs a conversion on {dialect.name}")
        to_time = table.c.stored_at.type.dialect_impl(dialect).result_processor(dialect, None)
        return sql, to_time

    def now(self) -> datetime:
        return self._clock()

    def head(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(
                select(func.coalesce(func.max(EventRow.position), 0))
            ).scalar_one()

    def position_at(self, moment: datetime) -> int:
        with self.engine.connect() as connection:
            later = connection.execute(
                select(func.min(EventRow.position)).where(EventRow.stored_at > moment)
            ).scalar()
            if later is not None:
                return int(later) - 1
            return int(
                connection.execute(
                    select(func.coalesce(func.max(EventRow.position), 0))
                ).scalar_one()
            )

    def stream(self, trial_id: str, patient_id: str) -> list[StoredEvent]:
        query = (
            select(EventRow)
            .where(EventRow.trial_id == trial_id, EventRow.patient_id == patient_id)
            .order_by(EventRow.position)
        )
        with self.engine.connect() as connection:
            return [_stored(r) for r in connection.execute(query)]

    def rejections(
        self, site_id: str | None = None, limit: int = 100, after: int | None = None
    ) -> list[Rejection]:
        limit = max(limit, 0)  # LIMIT -1: no limit on SQLite, an error on PostgreSQL
        if after is None:  # the newest first
            query = select(RejectionRow).order_by(RejectionRow.id.desc()).limit(limit)
        else:  # in the order kept, after id ``after``
            query = select(RejectionRow).where(RejectionRow.id > after).order_by(RejectionRow.id)
            query = query.limit(limit)
        if site_id is not None:
            query = query.where(RejectionRow.site_id == site_id)
        with self.engine.connect() as connection:
            return [
                Rejection(
                    id=r.id,
                    received_at=r.received_at,
                    source=r.source,
                    site_id=r.site_id,
                    location=r.location,
                    raw=r.raw,
                    problems=json.loads(r.problems),
                    received=r.received,
                    raw_size=r.raw_size,
                    raw_sha256=r.raw_sha256,
                )
                for r in connection.execute(query)
            ]

    def verify(self) -> VerifyResult:
        return verify_chain(self.read())

    def _rejection_rows(self) -> Iterator[tuple[Rejection, str | None, str, str | None]]:
        after = 0
        while True:
            query = select(RejectionRow).where(RejectionRow.id > after)
            with self.engine.connect() as connection:
                rows = connection.execute(query.order_by(RejectionRow.id).limit(READ_PAGE)).all()
            for r in rows:
                rejection = Rejection(
                    id=r.id,
                    received_at=r.received_at,
                    source=r.source,
                    site_id=r.site_id,
                    location=r.location,
                    raw=r.raw,
                    problems=[],
                    received=r.received,
                    raw_size=r.raw_size,
                    raw_sha256=r.raw_sha256,
                )
                yield rejection, r.digest, r.problems, r.chain_hash
            if len(rows) < READ_PAGE:
                return
            after = rows[-1].id

    def verify_rejections(self) -> VerifyResult:
        return verify_rejection_rows(self._rejection_rows())
