"""The alert outbox kept in this process (the memory runtime), one implementation of
:class:`~safety_stream.alerts.outbox.Outbox`.

The same records as the SQL outbox, kept in dictionaries under one lock: alerts numbered in
the order they were raised, deliveries in the order they were planned (claims take the oldest
first), the alert log hash-chained the same way. Derived events are kept as their JSON, as
the SQL outbox keeps them, so what is read back is a fresh copy.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from safety_stream.alerts.config import AlertConfig
from safety_stream.alerts.outbox import (
    ACKNOWLEDGED,
    ACTOR,
    ESCALATED,
    PENDING,
    AlertLogEntry,
    AlertView,
    Claimed,
    Delivery,
    PlannedDelivery,
    UnknownAlert,
    alert_view,
    alerts_among,
    count_key,
    escalation_due,
    escalation_note,
    handled,
    lease_until,
    next_log_entry,
    plan_deliveries,
    retry_at,
    routes,
    severity_key,
    utc,
)
from safety_stream.events.derived import DERIVED_JSON, DerivedEvent

if TYPE_CHECKING:
    from safety_stream.projections.documents import DerivedSource


@dataclass(frozen=True)
class _Alert:
    number: int
    derived_id: uuid.UUID
    severity: str
    raised_at: datetime
    doc: str  # the derived event as JSON

    @property
    def event(self) -> DerivedEvent:
        return DERIVED_JSON.validate_json(self.doc)


class InMemoryOutbox:
    def __init__(self, config: AlertConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._cursor = 0
        self._alerts: dict[uuid.UUID, _Alert] = {}  # in the order raised
        self._deliveries: dict[int, Delivery] = {}  # by id, in the order planned
        self._keys: set[tuple[uuid.UUID, str, str]] = set()
        self._log: list[AlertLogEntry] = []

    # -- planning ---------------------------------------------------------------------------

    def cursor(self) -> int:
        with self._lock:
            return self._cursor

    def _add_deliveries(self, planned: list[PlannedDelivery], now: datetime) -> None:
        for item in planned:
            if item.key not in self._keys:
                id = len(self._deliveries) + 1
                self._deliveries[id] = Delivery.new(id, item, utc(now))
                self._keys.add(item.key)

    def plan(self, source: DerivedSource, now: datetime) -> int:
        stored = source.derived_events(after=self.cursor())  # read outside this lock
        if not stored:
            return 0
        alerts = alerts_among(s.event for s in stored)
        with self._lock:
            for alert in alerts:
                if alert.derived_id not in self._alerts:
                    self._alerts[alert.derived_id] = _Alert(
                        len(self._alerts) + 1,
                        alert.derived_id,
                        alert.severity,
                        utc(now),
                        alert.model_dump_json(),
                    )
            self._add_deliveries(plan_deliveries(self.config, alerts), now)
            self._cursor = stored[-1].number
        return len(alerts)

    def escalate(self, now: datetime) -> int:
        if self.config.escalation is None:
            return 0
        with self._lock:
            actions: dict[uuid.UUID, list[str]] = {}
            for entry in self._log:
                actions.setdefault(entry.derived_id, []).append(entry.action)
            due = [
                alert.event
                for alert in self._alerts.values()
                if escalation_due(
                    self.config,
                    alert.severity,
                    alert.raised_at,
                    handled(actions.get(alert.derived_id, ())),
                    now,
                )
            ]
            note = escalation_note(self.config)
            for event in due:
                self._add_deliveries(routes(self.config, event, "escalation"), now)
                self._append(event.derived_id, ESCALATED, now, ACTOR, note)
            return len(due)

    # -- delivering -------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        with self._lock:
            pending = [d.next_attempt_at for d in self._deliveries.values() if d.state == PENDING]
        return min(pending, default=None)

    def claim(self, now: datetime, limit: int = 50) -> list[Claimed]:
        lease = utc(lease_until(self.config, now))
        claimed: list[Claimed] = []
        with self._lock:
            for delivery in self._deliveries.values():
                if len(claimed) >= limit:
                    break
                if delivery.due(now):
                    taken = delivery.claim(lease)
                    self._deliveries[delivery.id] = taken
                    claimed.append(taken.claimed(self._alerts[delivery.derived_id].event))
        return claimed

    def delivered(self, claimed: Claimed, now: datetime) -> None:
        with self._lock:
            delivery = self._deliveries.get(claimed.id)
            if delivery is not None:
                self._deliveries[claimed.id] = delivery.deliver(utc(now))

    def failed(self, claimed: Claimed, now: datetime, error: str) -> datetime:
        again = retry_at(self.config, claimed.attempts, now)
        with self._lock:
            delivery = self._deliveries.get(claimed.id)
            if delivery is not None:
                self._deliveries[claimed.id] = delivery.fail(utc(again), error)
        return again

    # -- people -----------------------------------------------------------------------------

    def acknowledge(
        self, derived_id: uuid.UUID, actor: str, note: str | None, now: datetime
    ) -> AlertView:
        with self._lock:
            if derived_id not in self._alerts:
                raise UnknownAlert(str(derived_id))
            already = any(
                e.derived_id == derived_id and e.action == ACKNOWLEDGED for e in self._log
            )
            if not already:
                self._append(derived_id, ACKNOWLEDGED, now, actor, note)
        return self.alerts(derived_id=derived_id)[0]

    def _append(
        self, derived_id: uuid.UUID, action: str, at: datetime, actor: str, note: str | None
    ) -> None:
        """Append to the alert log, hash-chained to the entry before (caller holds the lock)."""
        last = self._log[-1] if self._log else None
        self._log.append(next_log_entry(last, derived_id, action, utc(at), actor, note))

    def alerts(
        self,
        derived_id: uuid.UUID | None = None,
        unacknowledged: bool = False,
        after: int = 0,
        limit: int = 1000,
        by_severity: bool = False,
    ) -> list[AlertView]:
        with self._lock:
            chosen = [
                a
                for a in self._alerts.values()
                if (by_severity or a.number > after)
                and (derived_id is None or a.derived_id == derived_id)
            ]
            if by_severity:
                chosen = self._severity_page(chosen, after)
            ids = {a.derived_id for a in chosen}
            log: dict[uuid.UUID, list[AlertLogEntry]] = {}
            for entry in self._log:
                if entry.derived_id in ids:
                    log.setdefault(entry.derived_id, []).append(entry)
            deliveries: dict[uuid.UUID, list[Delivery]] = {}
            for delivery in self._deliveries.values():
                if delivery.derived_id in ids:
                    deliveries.setdefault(delivery.derived_id, []).append(delivery)
        views = []
        for alert in chosen:
            entries = log.get(alert.derived_id, [])
            if unacknowledged and any(e.action == ACKNOWLEDGED for e in entries):
                continue
            views.append(
                alert_view(
                    alert.number,
                    alert.event,
                    alert.raised_at,
                    entries,
                    [d.view() for d in deliveries.get(alert.derived_id, [])],
                )
            )
            if len(views) >= limit:
                break
        return views

    def _severity_page(self, chosen: list[_Alert], after: int) -> list[_Alert]:
        """``chosen`` in severity order, after the alert numbered ``after`` (0: from the
        start; a number never given: nothing). The caller holds the lock."""
        ordered = sorted(chosen, key=lambda a: severity_key(a.severity, a.number))
        if after == 0:
            return ordered
        start = next((a for a in self._alerts.values() if a.number == after), None)
        if start is None:
            return []
        cursor = severity_key(start.severity, start.number)
        return [a for a in ordered if severity_key(a.severity, a.number) > cursor]

    def log(self) -> list[AlertLogEntry]:
        with self._lock:
            return list(self._log)

    def last_action(self) -> int:
        with self._lock:
            return len(self._log)

    def counts(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        with self._lock:
            acked = {e.derived_id for e in self._log if e.action == ACKNOWLEDGED}
            for alert in self._alerts.values():
                key = count_key(alert.severity, alert.derived_id in acked)
                out[key] = out.get(key, 0) + 1
        return out
