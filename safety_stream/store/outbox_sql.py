"""The alert outbox on SQL (SQLite or PostgreSQL), one implementation of
:class:`~safety_stream.alerts.outbox.Outbox`.

``plan`` writes the alerts, their deliveries and the planner's cursor in one transaction: a
crash before the commit plans them again, and the unique keys make planning twice a no-op.
Idle passes (nothing to plan, escalate or claim) only read, so they never wait for the write
lock an ingest transaction holds. Alert log writers are serialised (PostgreSQL: an advisory
lock; SQLite: the write transaction) so the log's hash chain has one tail.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    and_,
    case,
    false,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from safety_stream.alerts.config import AlertConfig
from safety_stream.alerts.outbox import (
    ACKNOWLEDGED,
    ACTOR,
    CURSOR,
    DELIVERED,
    ESCALATED,
    PENDING,
    SEVERITY_RANK,
    AlertLogEntry,
    AlertView,
    Claimed,
    Delivery,
    PlannedDelivery,
    UnknownAlert,
    alert_view,
    alerts_among,
    count_key,
    error_text,
    escalation_cutoff,
    escalation_note,
    lease_until,
    next_log_entry,
    plan_deliveries,
    retry_at,
    routes,
)
from safety_stream.events.derived import DERIVED_JSON
from safety_stream.store.engine import write_transaction
from safety_stream.store.tables import (
    AlertDeliveryRow,
    AlertLogRow,
    AlertRow,
    ProjectionPositionRow,
)

if TYPE_CHECKING:
    from safety_stream.projections.documents import DerivedSource

Grouped = TypeVar("Grouped", Delivery, AlertLogEntry)
LOG_LOCK_KEY = 0x5AFE_A1E7  # PostgreSQL advisory lock id: one alert log writer at a time
LOCK_LOG = text("SELECT pg_advisory_xact_lock(:key)")
LAST_LOG_ENTRY = select(AlertLogRow.id, AlertLogRow.chain_hash).order_by(AlertLogRow.id.desc())
LOG_COLUMNS = (
    AlertLogRow.id,
    AlertLogRow.derived_id,
    AlertLogRow.action,
    AlertLogRow.at,
    AlertLogRow.actor,
    AlertLogRow.note,
    AlertLogRow.chain_hash,
)


_RANK = case(
    *((AlertRow.severity == severity, rank) for severity, rank in SEVERITY_RANK.items()),
    else_=len(SEVERITY_RANK),
)


AlertRows = Select[int, uuid.UUID, datetime, str]


def _severity_page(connection: Connection, query: AlertRows, after: int) -> AlertRows:
    """``query`` in severity order (the most severe first, the newest first within one),
    after the alert numbered ``after`` (0: from the start; a number never given: nothing)."""
    if after:
        severity = connection.execute(
            select(AlertRow.severity).where(AlertRow.id == after)
        ).scalar()
        if severity is None:
            return query.where(false())
        rank = SEVERITY_RANK.get(severity, len(SEVERITY_RANK))
        later = and_(_RANK == rank, AlertRow.id < after)  # noqa: SIM300 (a SQL expression)
        query = query.where(or_(_RANK > rank, later))  # noqa: SIM300
    return query.order_by(_RANK, AlertRow.id.desc())


class SqlOutbox:
    def __init__(self, engine: Engine, config: AlertConfig) -> None:
        self.engine = engine
        self.config = config
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    # -- planning ---------------------------------------------------------------------------

    def cursor(self, connection: Connection) -> int:
        value = connection.execute(
            select(ProjectionPositionRow.position).where(ProjectionPositionRow.name == CURSOR)
        ).scalar()
        return value or 0

    def _add_deliveries(
        self, connection: Connection, planned: list[PlannedDelivery], now: datetime
    ) -> None:
        if planned:
            connection.execute(
                self._insert(AlertDeliveryRow).on_conflict_do_nothing(
                    index_elements=["derived_id", "channel", "reason"]
                ),
                [
                    {
                        "derived_id": p.derived_id,
                        "channel": p.channel,
                        "channel_type": p.channel_type,
                        "reason": p.reason,
                        "state": PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                    }
                    for p in planned
                ],
            )

    def plan(self, source: DerivedSource, now: datetime) -> int:
        with self.engine.connect() as connection:  # idle passes take no write lock
            stored = source.derived_events(after=self.cursor(connection))
        if not stored:
            return 0
        with write_transaction(self.engine) as connection:
            alerts = alerts_among(s.event for s in stored)
            if alerts:
                connection.execute(
                    self._insert(AlertRow).on_conflict_do_nothing(index_elements=["derived_id"]),
                    [
                        {
                            "derived_id": a.derived_id,
                            "kind": a.kind,
                            "severity": a.severity,
                            "rule_id": a.rule_id,
                            "raised_at": now,
                            "doc": a.model_dump_json(),
                        }
                        for a in alerts
                    ],
                )
                self._add_deliveries(connection, plan_deliveries(self.config, alerts), now)
            statement = self._insert(ProjectionPositionRow).values(
                name=CURSOR, position=stored[-1].number
            )
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["name"], set_={"position": statement.excluded.position}
                )
            )
            return len(alerts)

    def escalate(self, now: datetime) -> int:
        cutoff = escalation_cutoff(self.config, now)
        if cutoff is None:
            return 0
        handled = select(AlertLogRow.derived_id).where(
            AlertLogRow.action.in_((ACKNOWLEDGED, ESCALATED))
        )
        query = (
            select(AlertRow.doc)
            .where(
                AlertRow.severity == "critical",
                AlertRow.raised_at <= cutoff,
                AlertRow.derived_id.not_in(handled),
            )
            .order_by(AlertRow.id)
        )
        if not _any(self.engine, query):  # idle passes take no write lock
            return 0
        with write_transaction(self.engine) as connection:
            due = connection.execute(query).scalars()
            alerts = [DERIVED_JSON.validate_json(doc) for doc in due]
            note = escalation_note(self.config)
            for alert in alerts:
                self._add_deliveries(connection, routes(self.config, alert, "escalation"), now)
                self._log(connection, alert.derived_id, ESCALATED, now, ACTOR, note)
            return len(alerts)

    # -- delivering -------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        with self.engine.connect() as connection:
            return connection.execute(
                select(func.min(AlertDeliveryRow.next_attempt_at)).where(
                    AlertDeliveryRow.state == PENDING
                )
            ).scalar()

    def claim(self, now: datetime, limit: int = 50) -> list[Claimed]:
        lease = lease_until(self.config, now)
        claimed: list[Claimed] = []
        due = AlertDeliveryRow.state == PENDING, AlertDeliveryRow.next_attempt_at <= now
        if not _any(self.engine, select(AlertDeliveryRow.id).where(*due)):
            return claimed  # idle passes take no write lock
        with write_transaction(self.engine) as connection:
            rows = connection.execute(
                select(AlertDeliveryRow, AlertRow.doc)
                .join(AlertRow, AlertRow.derived_id == AlertDeliveryRow.derived_id)
                .where(*due)
                .order_by(AlertDeliveryRow.id)
                .limit(limit)
            ).all()
            for row in rows:
                delivery = _delivery(row)
                taken = connection.execute(
                    update(AlertDeliveryRow)
                    .where(
                        and_(
                            AlertDeliveryRow.id == delivery.id,
                            AlertDeliveryRow.state == PENDING,
                            AlertDeliveryRow.next_attempt_at == delivery.next_attempt_at,
                        )
                    )
                    .values(attempts=delivery.attempts + 1, next_attempt_at=lease)
                ).rowcount
                if taken == 1:  # nobody else claimed it in between
                    claimed.append(
                        delivery.claim(lease).claimed(DERIVED_JSON.validate_json(row.doc))
                    )
        return claimed

    def delivered(self, claimed: Claimed, now: datetime) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(AlertDeliveryRow)
                .where(AlertDeliveryRow.id == claimed.id)
                .values(state=DELIVERED, delivered_at=now, last_error=None)
            )

    def failed(self, claimed: Claimed, now: datetime, error: str) -> datetime:
        again = retry_at(self.config, claimed.attempts, now)
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(AlertDeliveryRow)
                .where(AlertDeliveryRow.id == claimed.id, AlertDeliveryRow.state == PENDING)
                .values(next_attempt_at=again, last_error=error_text(error))
            )
        return again

    # -- people -----------------------------------------------------------------------------

    def acknowledge(
        self, derived_id: uuid.UUID, actor: str, note: str | None, now: datetime
    ) -> AlertView:
        with write_transaction(self.engine) as connection:
            self._lock_log(connection)  # before the check: the first acknowledgement stands
            known = connection.execute(
                select(AlertRow.id).where(AlertRow.derived_id == derived_id)
            ).scalar()
            if known is None:
                raise UnknownAlert(str(derived_id))
            already = connection.execute(
                select(AlertLogRow.id).where(
                    AlertLogRow.derived_id == derived_id, AlertLogRow.action == ACKNOWLEDGED
                )
            ).scalar()
            if already is None:
                self._log(connection, derived_id, ACKNOWLEDGED, now, actor, note)
        return self.alerts(derived_id=derived_id)[0]

    def _lock_log(self, connection: Connection) -> None:
        """Serialise alert log writers (SQLite: the write transaction already does)."""
        if self.engine.dialect.name == "postgresql":
            connection.execute(LOCK_LOG, {"key": LOG_LOCK_KEY})

    def _log(
        self,
        connection: Connection,
        derived_id: uuid.UUID,
        action: str,
        at: datetime,
        actor: str,
        note: str | None,
    ) -> None:
        """Append to the alert log, hash-chained to the entry before (``verify`` walks it)."""
        self._lock_log(connection)
        last = connection.execute(LAST_LOG_ENTRY.limit(1)).first()
        entry = next_log_entry(
            (last[0], last[1]) if last else None, derived_id, action, at, actor, note
        )
        connection.execute(
            insert(AlertLogRow).values(
                id=entry.id, derived_id=entry.derived_id, action=entry.action, at=entry.at,
                actor=entry.actor, note=entry.note, chain_hash=entry.chain_hash,
            )
        )  # fmt: skip

    def alerts(
        self,
        derived_id: uuid.UUID | None = None,
        unacknowledged: bool = False,
        after: int = 0,
        limit: int = 1000,
        by_severity: bool = False,
    ) -> list[AlertView]:
        query = select(AlertRow.id, AlertRow.derived_id, AlertRow.raised_at, AlertRow.doc)
        if derived_id is not None:
            query = query.where(AlertRow.derived_id == derived_id)
        if unacknowledged:
            acked = select(AlertLogRow.derived_id).where(AlertLogRow.action == ACKNOWLEDGED)
            query = query.where(AlertRow.derived_id.not_in(acked))
        with self.engine.connect() as connection:
            if by_severity:
                query = _severity_page(connection, query, after)
            else:
                query = query.where(AlertRow.id > after).order_by(AlertRow.id)
            rows = connection.execute(query.limit(max(limit, 0))).all()  # one page read
            ids = [r.derived_id for r in rows]
            log = _by_alert(
                _entry(row)
                for row in connection.execute(
                    select(*LOG_COLUMNS)
                    .where(AlertLogRow.derived_id.in_(ids))
                    .order_by(AlertLogRow.id)
                )
            ) if ids else {}  # fmt: skip
            deliveries = _by_alert(
                _delivery(row)
                for row in connection.execute(
                    select(AlertDeliveryRow)
                    .where(AlertDeliveryRow.derived_id.in_(ids))
                    .order_by(AlertDeliveryRow.id)
                )
            ) if ids else {}  # fmt: skip
        views = []
        for row in rows:
            entries = log.get(row.derived_id, [])
            if unacknowledged and any(e.action == ACKNOWLEDGED for e in entries):
                continue
            views.append(
                alert_view(
                    row.id,
                    DERIVED_JSON.validate_json(row.doc),
                    row.raised_at,
                    entries,
                    [d.view() for d in deliveries.get(row.derived_id, [])],
                )
            )
            if len(views) >= limit:
                break
        return views

    def log(self) -> list[AlertLogEntry]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(*LOG_COLUMNS).order_by(AlertLogRow.id)).all()
        return [_entry(row) for row in rows]

    def last_action(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.max(AlertLogRow.id))).scalar() or 0)

    def counts(self) -> dict[tuple[str, str], int]:
        acked = select(AlertLogRow.derived_id).where(AlertLogRow.action == ACKNOWLEDGED)
        out: dict[tuple[str, str], int] = {}
        with self.engine.connect() as connection:
            for severity, is_acked, count in connection.execute(
                select(
                    AlertRow.severity,
                    AlertRow.derived_id.in_(acked),
                    func.count(),
                ).group_by(AlertRow.severity, AlertRow.derived_id.in_(acked))
            ):
                out[count_key(severity, bool(is_acked))] = count
        return out


def _any(engine: Engine, query: Select[Any]) -> bool:
    with engine.connect() as connection:
        return connection.execute(query.limit(1)).first() is not None


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row.id, row.derived_id, row.channel, row.channel_type, row.reason, row.state,
        row.attempts, row.next_attempt_at, row.delivered_at, row.last_error,
    )  # fmt: skip


def _entry(row: Any) -> AlertLogEntry:
    return AlertLogEntry(row.id, row.derived_id, row.action, row.at, row.actor, row.note,
                         row.chain_hash)  # fmt: skip


def _by_alert(items: Iterable[Grouped]) -> dict[uuid.UUID, list[Grouped]]:
    grouped: dict[uuid.UUID, list[Grouped]] = {}
    for item in items:
        grouped.setdefault(item.derived_id, []).append(item)
    return grouped
