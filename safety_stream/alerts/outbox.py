"""The alert outbox on SQL: plan deliveries from derived events, claim, record, acknowledge.

Derived events commit with the projection that derived them. ``plan`` turns the ones not yet
seen into alerts and one delivery row per routed channel, and moves its cursor, in one
transaction: a crash before the commit plans them again, and the unique keys make planning
twice a no-op. A delivery is *claimed* (attempts + 1, retry time pushed out by the lease)
before it is sent and marked delivered after, so a sender that dies mid-send is retried once
its lease runs out: delivery is at least once, with a stable id per delivery for receivers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Select, and_, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from safety_stream.alerts.config import ALERT_KINDS, AlertConfig
from safety_stream.monitoring.derived import DERIVED_JSON, DerivedEvent
from safety_stream.projections.repositories import DerivedSource
from safety_stream.store.engine import write_transaction
from safety_stream.store.hashing import GENESIS, alert_log_link
from safety_stream.store.tables import (
    AlertDeliveryRow,
    AlertLogRow,
    AlertRow,
    ProjectionPositionRow,
)

CURSOR = "alert-outbox"
LOG_LOCK_KEY = 0x5AFE_A1E7  # PostgreSQL advisory lock id: one alert log writer at a time
LOCK_LOG = text("SELECT pg_advisory_xact_lock(:key)")
LAST_LOG_ENTRY = select(AlertLogRow.id, AlertLogRow.chain_hash).order_by(AlertLogRow.id.desc())


@dataclass(frozen=True)
class Claimed:
    id: int
    derived_id: uuid.UUID
    channel: str
    channel_type: str
    reason: str
    attempts: int
    alert: DerivedEvent

    @property
    def delivery_id(self) -> str:
        return f"{self.derived_id}/{self.channel}/{self.reason}"


@dataclass(frozen=True)
class DeliveryState:
    channel: str
    reason: str
    state: str
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class AlertView:
    number: int
    alert: DerivedEvent
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    escalated_at: datetime | None
    deliveries: list[DeliveryState]


class UnknownAlert(KeyError):
    pass


class Outbox:
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

    def _routes(self, alert: DerivedEvent, reason: str) -> list[dict[str, Any]]:
        escalation = self.config.escalation
        groups = [
            g
            for g in self.config.groups
            if (
                g.wants(alert.kind, alert.severity)
                if reason == "alert"
                else escalation is not None and g.name in escalation.groups
            )
        ]
        return [
            {
                "derived_id": alert.derived_id,
                "channel": f"{g.name}/{c.name}",
                "channel_type": c.type,
                "reason": reason,
                "state": "pending",
                "attempts": 0,
            }
            for g in groups
            for c in g.channels
        ]

    def _add_deliveries(
        self, connection: Connection, rows: list[dict[str, Any]], now: datetime
    ) -> None:
        if rows:
            connection.execute(
                self._insert(AlertDeliveryRow).on_conflict_do_nothing(
                    index_elements=["derived_id", "channel", "reason"]
                ),
                [{**row, "next_attempt_at": now} for row in rows],
            )

    def plan(self, source: DerivedSource, now: datetime) -> int:
        """Plan alerts and deliveries for the derived events after the cursor; returns how many."""
        with self.engine.connect() as connection:  # idle passes take no write lock
            stored = source.derived_events(after=self.cursor(connection))
        if not stored:
            return 0
        with write_transaction(self.engine) as connection:
            alerts = [s.event for s in stored if s.event.kind in ALERT_KINDS]
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
                self._add_deliveries(
                    connection, [r for a in alerts for r in self._routes(a, "alert")], now
                )
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
        """Escalate critical alerts unacknowledged for longer than the configured time."""
        escalation = self.config.escalation
        if escalation is None:
            return 0
        handled = select(AlertLogRow.derived_id).where(
            AlertLogRow.action.in_(("acknowledged", "escalated"))
        )
        query = select(AlertRow.doc).where(
            AlertRow.severity == "critical",
            AlertRow.raised_at <= now - escalation.after,
            AlertRow.derived_id.not_in(handled),
        )
        if not _any(self.engine, query):  # idle passes take no write lock
            return 0
        with write_transaction(self.engine) as connection:
            due = connection.execute(query).scalars()
            alerts = [DERIVED_JSON.validate_json(doc) for doc in due]
            for alert in alerts:
                self._add_deliveries(connection, self._routes(alert, "escalation"), now)
                note = f"unacknowledged for {escalation.after_minutes:g} minutes"
                self._log(connection, alert.derived_id, "escalated", now, "safety-stream", note)
            return len(alerts)

    # -- delivering -------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        with self.engine.connect() as connection:
            return connection.execute(
                select(func.min(AlertDeliveryRow.next_attempt_at)).where(
                    AlertDeliveryRow.state == "pending"
                )
            ).scalar()

    def claim(self, now: datetime, limit: int = 50) -> list[Claimed]:
        """Take the deliveries that are due; each is leased to this caller for a while."""
        lease = now + timedelta(seconds=self.config.retry.lease_seconds)
        claimed: list[Claimed] = []
        due = AlertDeliveryRow.state == "pending", AlertDeliveryRow.next_attempt_at <= now
        if not _any(self.engine, select(AlertDeliveryRow.id).where(*due)):
            return claimed  # idle passes take no write lock
        with write_transaction(self.engine) as connection:
            rows = connection.execute(
                select(
                    AlertDeliveryRow.id,
                    AlertDeliveryRow.derived_id,
                    AlertDeliveryRow.channel,
                    AlertDeliveryRow.channel_type,
                    AlertDeliveryRow.reason,
                    AlertDeliveryRow.attempts,
                    AlertDeliveryRow.next_attempt_at,
                    AlertRow.doc,
                )
                .join(AlertRow, AlertRow.derived_id == AlertDeliveryRow.derived_id)
                .where(*due)
                .order_by(AlertDeliveryRow.id)
                .limit(limit)
            ).all()
            for row in rows:
                taken = connection.execute(
                    update(AlertDeliveryRow)
                    .where(
                        and_(
                            AlertDeliveryRow.id == row.id,
                            AlertDeliveryRow.state == "pending",
                            AlertDeliveryRow.next_attempt_at == row.next_attempt_at,
                        )
                    )
                    .values(attempts=row.attempts + 1, next_attempt_at=lease)
                ).rowcount
                if taken == 1:  # nobody else claimed it in between
                    claimed.append(
                        Claimed(
                            row.id,
                            row.derived_id,
                            row.channel,
                            row.channel_type,
                            row.reason,
                            row.attempts + 1,
                            DERIVED_JSON.validate_json(row.doc),
                        )
                    )
        return claimed

    def delivered(self, claimed: Claimed, now: datetime) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(AlertDeliveryRow)
                .where(AlertDeliveryRow.id == claimed.id)
                .values(state="delivered", delivered_at=now, last_error=None)
            )

    def failed(self, claimed: Claimed, now: datetime, error: str) -> datetime:
        retry = self.config.retry
        wait = min(retry.first_seconds * 2 ** (claimed.attempts - 1), retry.max_seconds)
        again = now + timedelta(seconds=wait)
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(AlertDeliveryRow)
                .where(AlertDeliveryRow.id == claimed.id, AlertDeliveryRow.state == "pending")
                .values(next_attempt_at=again, last_error=error[:2000])
            )
        return again

    # -- people -----------------------------------------------------------------------------

    def acknowledge(
        self, derived_id: uuid.UUID, actor: str, note: str | None, now: datetime
    ) -> AlertView:
        """Record an acknowledgement (idempotent: the first one stands)."""
        with write_transaction(self.engine) as connection:
            self._lock_log(connection)  # before the check: the first acknowledgement stands
            known = connection.execute(
                select(AlertRow.id).where(AlertRow.derived_id == derived_id)
            ).scalar()
            if known is None:
                raise UnknownAlert(str(derived_id))
            already = connection.execute(
                select(AlertLogRow.id).where(
                    AlertLogRow.derived_id == derived_id, AlertLogRow.action == "acknowledged"
                )
            ).scalar()
            if already is None:
                self._log(connection, derived_id, "acknowledged", now, actor, note)
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
        previous_id, previous = (last[0], last[1]) if last else (0, GENESIS)
        entry = previous_id + 1
        connection.execute(
            insert(AlertLogRow).values(
                id=entry, derived_id=derived_id, action=action, at=at, actor=actor, note=note,
                chain_hash=alert_log_link(previous, entry, derived_id, action, at, actor, note),
            )
        )  # fmt: skip

    def alerts(
        self,
        derived_id: uuid.UUID | None = None,
        unacknowledged: bool = False,
        after: int = 0,
        limit: int = 1000,
    ) -> list[AlertView]:
        query = select(AlertRow.id, AlertRow.derived_id, AlertRow.raised_at, AlertRow.doc).where(
            AlertRow.id > after
        )
        if derived_id is not None:
            query = query.where(AlertRow.derived_id == derived_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(AlertRow.id)).all()
            ids = [r.derived_id for r in rows]
            log = _by_alert(
                connection.execute(
                    select(AlertLogRow).where(AlertLogRow.derived_id.in_(ids))
                ).all()
            ) if ids else {}  # fmt: skip
            deliveries = _by_alert(
                connection.execute(
                    select(AlertDeliveryRow)
                    .where(AlertDeliveryRow.derived_id.in_(ids))
                    .order_by(AlertDeliveryRow.id)
                ).all()
            ) if ids else {}  # fmt: skip
        views = []
        for row in rows:
            actions = {entry.action: entry for entry in log.get(row.derived_id, [])}
            ack = actions.get("acknowledged")
            if unacknowledged and ack is not None:
                continue
            escalated = actions.get("escalated")
            views.append(
                AlertView(
                    number=row.id,
                    alert=DERIVED_JSON.validate_json(row.doc),
                    raised_at=row.raised_at,
                    acknowledged_at=ack.at if ack else None,
                    acknowledged_by=ack.actor if ack else None,
                    escalated_at=escalated.at if escalated else None,
                    deliveries=[
                        DeliveryState(
                            d.channel,
                            d.reason,
                            d.state,
                            d.attempts,
                            d.next_attempt_at,
                            d.delivered_at,
                            d.last_error,
                        )
                        for d in deliveries.get(row.derived_id, [])
                    ],
                )
            )
            if len(views) >= limit:
                break
        return views

    def last_action(self) -> int:
        """How far the alert log (acknowledgements, escalations) has grown: 0 when empty."""
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.max(AlertLogRow.id))).scalar() or 0)

    def counts(self) -> dict[tuple[str, str], int]:
        """(severity, acknowledged|unacknowledged) -> alerts, for the metrics."""
        acked = select(AlertLogRow.derived_id).where(AlertLogRow.action == "acknowledged")
        out: dict[tuple[str, str], int] = {}
        with self.engine.connect() as connection:
            for severity, is_acked, count in connection.execute(
                select(
                    AlertRow.severity,
                    AlertRow.derived_id.in_(acked),
                    func.count(),
                ).group_by(AlertRow.severity, AlertRow.derived_id.in_(acked))
            ):
                out[(severity, "acknowledged" if is_acked else "unacknowledged")] = count
        return out


def _any(engine: Engine, query: Select[Any]) -> bool:
    with engine.connect() as connection:
        return connection.execute(query.limit(1)).first() is not None


def _by_alert(rows: Iterable[Any]) -> dict[uuid.UUID, list[Any]]:
    grouped: dict[uuid.UUID, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row.derived_id, []).append(row)
    return grouped
