"""The SQL schema of the store (SQLAlchemy 2.0 typed declarative), shared by SQLite and PostgreSQL.

Alembic migrations in ``store/migrations`` create exactly this; a test compares the two.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

Position = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY = rowid


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC times on every backend (SQLite keeps no zone, so it is re-attached)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # SQLite keeps these times as the text "YYYY-MM-DD HH:MM:SS.ffffff" (SQLAlchemy's format);
    # reading and writing that text directly with the datetime module's C code costs a fifth
    # of SQLAlchemy's general-purpose conversion, which dominated reading the log back.
    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def to_text(value: datetime | None) -> str | None:
            if value is None:
                return None
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return to_text

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def from_text(value: str | None) -> datetime | None:
            if value is None:
                return None
            try:  # the zone parsed with the text: a fifth of the cost of replace(tzinfo=UTC)
                moment = datetime.fromisoformat(value + "+00:00")
                if moment.tzinfo is not None:  # (a date alone would take it as its time)
                    return moment
            except ValueError:  # a text that has an offset of its own
                pass
            return datetime.fromisoformat(value).replace(tzinfo=UTC)

        return from_text


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class EventRow(Base):
    """The log: append-only, one row per accepted event, in global position order."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("trial_id", "patient_id", "stream_version"),
        Index(None, "stored_at"),
    )

    position: Mapped[int] = mapped_column(Position, primary_key=True, autoincrement=False)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid(), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    schema_version: Mapped[int] = mapped_column(Integer)
    trial_id: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(64))
    stream_version: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())
    stored_at: Mapped[datetime] = mapped_column(UtcDateTime())
    payload: Mapped[str] = mapped_column(Text)
    payload_hash: Mapped[str] = mapped_column(String(64))
    chain_hash: Mapped[str] = mapped_column(String(64))


class StreamRow(Base):
    """The current version of each patient stream (for optimistic concurrency)."""

    __tablename__ = "streams"

    trial_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class PatientIndexRow(Base):
    """Which site enrolled each patient, their consent and death dates and their fatal AE
    (write-side index for reference and timeline checks)."""

    __tablename__ = "patient_index"

    patient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    trial_id: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str] = mapped_column(String(64))
    consent_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    death_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    fatal_ae_id: Mapped[uuid.UUID | None] = mapped_column(Uuid(), nullable=True)


class AeIndexRow(Base):
    """What amendments are checked against (write-side index for reference checks)."""

    __tablename__ = "ae_index"

    ae_id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str] = mapped_column(String(64))
    ctcae_term: Mapped[str] = mapped_column(String(200))
    onset_date: Mapped[date] = mapped_column(Date)
    grade: Mapped[int] = mapped_column(Integer)
    fatal: Mapped[bool]
    retracted: Mapped[bool]


class RejectionRow(Base):
    """The dead-letter store: every record that was not accepted, with why."""

    __tablename__ = "rejections"
    __table_args__ = (Index(None, "site_id"), Index(None, "digest"))

    id: Mapped[int] = mapped_column(Position, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    source: Mapped[str] = mapped_column(String(200))
    site_id: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(200))
    raw: Mapped[bytes] = mapped_column(LargeBinary)  # at most the first 64 KiB received
    raw_size: Mapped[int] = mapped_column(Position)  # bytes received
    raw_sha256: Mapped[str] = mapped_column(String(64))  # of all the bytes received
    problems: Mapped[str] = mapped_column(Text)  # JSON list of problems
    digest: Mapped[str | None] = mapped_column(String(64))  # rejection_digest(site, raw)
    received: Mapped[int] = mapped_column(Integer, server_default="1")
    chain_hash: Mapped[str] = mapped_column(String(64))  # hashing.rejection_link


class SiteRow(Base):
    """A credential: a site's (or a reader's) hashed bearer token and role."""

    __tablename__ = "credentials"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[str | None] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class CredentialChangeRow(Base):
    """What was done to a credential (added, rotated, revoked): append-only, each row's
    ``chain_hash`` covering the previous row's, so an edited or deleted row is detectable."""

    __tablename__ = "credential_changes"

    id: Mapped[int] = mapped_column(Position, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # "added", "rotated" or "revoked"
    role: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    actor: Mapped[str] = mapped_column(String(64))
    chain_hash: Mapped[str] = mapped_column(String(64))


class ProjectionPositionRow(Base):
    """How far each projection has read the log; written in the same transaction as its state."""

    __tablename__ = "projection_positions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Position)


class SourceOffsetRow(Base):
    """The last record taken from each ordered source (a Kafka topic partition), written in
    the transaction that stored what the record held: a redelivered record is recognised."""

    __tablename__ = "source_offsets"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    offset: Mapped[int] = mapped_column(Position)


class ProjectionDocRow(Base):
    """Projection state: one JSON document per key (a patient, an AE)."""

    __tablename__ = "projection_docs"

    projection: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    doc: Mapped[str] = mapped_column(Text)


class DerivedEventRow(Base):
    """What the monitor concluded (boundaries, sentinels, report clocks); idempotent by id.

    Written in the same transaction as the projection state and position that produced it.
    """

    __tablename__ = "derived_events"
    __table_args__ = (Index(None, "rule_id"),)

    id: Mapped[int] = mapped_column(Position, primary_key=True, autoincrement=True)
    derived_id: Mapped[uuid.UUID] = mapped_column(Uuid(), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    rule_id: Mapped[str] = mapped_column(String(64))
    plan_version: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    caused_by: Mapped[int] = mapped_column(Position)
    doc: Mapped[str] = mapped_column(Text)  # the derived event as JSON


class AlertDeliveryRow(Base):
    """The outbox: one row per (alert, channel, reason) to deliver, retried until delivered.

    Rows are planned from ``derived_events`` (which commit with the projection that derived
    them); the planner's cursor commits in the same transaction as the rows it planned.
    """

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("derived_id", "channel", "reason"),
        Index(None, "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Position, primary_key=True, autoincrement=True)
    derived_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    channel: Mapped[str] = mapped_column(String(128))  # "<group>/<channel name>"
    channel_type: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(16))  # "alert" or "escalation"
    state: Mapped[str] = mapped_column(String(16))  # "pending" or "delivered"
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AlertRow(Base):
    """One alert: a derived event that recipients are told about, with when it was raised."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Position, primary_key=True, autoincrement=True)
    derived_id: Mapped[uuid.UUID] = mapped_column(Uuid(), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    rule_id: Mapped[str] = mapped_column(String(64))
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime())  # wall clock, when planned
    doc: Mapped[str] = mapped_column(Text)  # the derived event as JSON


class AlertLogRow(Base):
    """What people and the dispatcher did with an alert (acknowledged, escalated): append-only."""

    __tablename__ = "alert_log"
    __table_args__ = (Index(None, "derived_id"),)

    id: Mapped[int] = mapped_column(Position, primary_key=True, autoincrement=True)
    derived_id: Mapped[uuid.UUID] = mapped_column(Uuid())
    action: Mapped[str] = mapped_column(String(16))  # "acknowledged" or "escalated"
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    chain_hash: Mapped[str] = mapped_column(String(64))  # hashing.alert_log_link


class ReviewMarkRow(Base):
    """A reader's "reviewed up to here" mark on one AE or alert: the log position it was
    reviewed at (moved only forward). Readers' bookkeeping, not trial data: not chained."""

    __tablename__ = "review_marks"

    reader: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "ae" or "alert"
    item_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Position)
    marked_at: Mapped[datetime] = mapped_column(UtcDateTime())


def row_values(row: Any) -> dict[str, Any]:
    """Column values of an ORM-mapped row class instance (for bulk inserts)."""
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}
