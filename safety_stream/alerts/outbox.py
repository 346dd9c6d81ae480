"""The alert outbox: its port (:class:`Outbox`), its records and its pure decisions.

Derived events commit with the projection that derived them. ``plan`` turns the ones not yet
seen into alerts and one delivery per routed channel, and moves its cursor, at once: planning
the same derived events twice is a no-op (an alert is keyed by its derived event, a delivery
by alert, channel and reason). A delivery is *claimed* (attempts + 1, retry time pushed out by
the lease) before it is sent and marked delivered after, so a sender that dies mid-send is
retried once its lease runs out: delivery is at least once, with a stable id per delivery for
receivers. Acknowledgements and escalations go to the alert log, whose entries are
hash-chained (:func:`safety_stream.events.hashing.alert_log_link`).

What to plan, when to escalate, how long to lease and back off, and how a delivery changes
state are decided here by pure functions; the implementations of the port
(``safety_stream.store.outbox_memory`` and ``safety_stream.store.outbox_sql``) only keep the
records.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol

from safety_stream.alerts.config import ALERT_KINDS, AlertConfig
from safety_stream.events.derived import DerivedEvent
from safety_stream.events.hashing import GENESIS, alert_log_link

if TYPE_CHECKING:
    from safety_stream.projections.documents import DerivedSource

CURSOR = "alert-outbox"
"""The name of the planner's cursor (the last derived event number it planned)."""

Reason = Literal["alert", "escalation"]
PENDING, DELIVERED = "pending", "delivered"
ACKNOWLEDGED, ESCALATED = "acknowledged", "escalated"
ERROR_LIMIT = 2000  # characters of a delivery error kept
ACTOR = "safety-stream"  # who escalates


# -- records ----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class PlannedDelivery:
    """A delivery to create: one alert to one channel, for one reason."""

    derived_id: uuid.UUID
    channel: str  # "<group>/<channel name>"
    channel_type: str
    reason: str

    @property
    def key(self) -> tuple[uuid.UUID, str, str]:
        """What makes a delivery unique: planning it again adds nothing."""
        return (self.derived_id, self.channel, self.reason)


@dataclass(frozen=True)
class Delivery:
    """One stored delivery and its state."""

    id: int
    derived_id: uuid.UUID
    channel: str
    channel_type: str
    reason: str
    state: str
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None = None
    last_error: str | None = None

    @classmethod
    def new(cls, id: int, planned: PlannedDelivery, now: datetime) -> Delivery:
        """A planned delivery, stored: pending, due at once."""
        return cls(
            id, planned.derived_id, planned.channel, planned.channel_type, planned.reason,
            PENDING, 0, now,
        )  # fmt: skip

    @property
    def key(self) -> tuple[uuid.UUID, str, str]:
        return (self.derived_id, self.channel, self.reason)

    def due(self, now: datetime) -> bool:
        return self.state == PENDING and self.next_attempt_at <= now

    def claim(self, lease_until: datetime) -> Delivery:
        """Taken by a sender: one more attempt; nobody else takes it before the lease ends."""
        return replace(self, attempts=self.attempts + 1, next_attempt_at=lease_until)

    def deliver(self, now: datetime) -> Delivery:
        return replace(self, state=DELIVERED, delivered_at=now, last_error=None)

    def fail(self, again: datetime, error: str) -> Delivery:
        """A failed attempt: retried at ``again`` (a delivered one stays delivered)."""
        if self.state != PENDING:
            return self
        return replace(self, next_attempt_at=again, last_error=error_text(error))

    def claimed(self, alert: DerivedEvent) -> Claimed:
        return Claimed(
            self.id, self.derived_id, self.channel, self.channel_type, self.reason,
            self.attempts, alert,
        )  # fmt: skip

    def view(self) -> DeliveryState:
        return DeliveryState(
            self.channel, self.reason, self.state, self.attempts, self.next_attempt_at,
            self.delivered_at, self.last_error,
        )  # fmt: skip


@dataclass(frozen=True)
class AlertLogEntry:
    """One entry of the alert log (an acknowledgement or an escalation), chained to the last."""

    id: int
    derived_id: uuid.UUID
    action: str
    at: datetime
    actor: str
    note: str | None
    chain_hash: str


# -- decisions --------------------------------------------------------------------------------


def utc(moment: datetime) -> datetime:
    """A time as the stores give it back: aware, in UTC."""
    return moment.astimezone(UTC)


def alerts_among(events: Iterable[DerivedEvent]) -> list[DerivedEvent]:
    """The derived events that are alerts, in their order."""
    return [event for event in events if event.kind in ALERT_KINDS]


def routes(config: AlertConfig, alert: DerivedEvent, reason: Reason) -> list[PlannedDelivery]:
    """The deliveries of one alert: to every channel of every group that wants it (for an
    escalation, every channel of the escalation's groups)."""
    escalation = config.escalation
    groups = [
        g
        for g in config.groups
        if (
            g.wants(alert.kind, alert.severity)
            if reason == "alert"
            else escalation is not None and g.name in escalation.groups
        )
    ]
    return [
        PlannedDelivery(alert.derived_id, f"{g.name}/{c.name}", c.type, reason)
        for g in groups
        for c in g.channels
    ]


def plan_deliveries(config: AlertConfig, alerts: Iterable[DerivedEvent]) -> list[PlannedDelivery]:
    """The deliveries to create for newly planned alerts, in the order they are stored."""
    return [planned for alert in alerts for planned in routes(config, alert, "alert")]


def escalation_cutoff(config: AlertConfig, now: datetime) -> datetime | None:
    """Critical alerts raised at or before this time and still unhandled are escalated now
    (None: escalation is not configured)."""
    return None if config.escalation is None else now - config.escalation.after


def escalation_due(
    config: AlertConfig, severity: str, raised_at: datetime, handled: bool, now: datetime
) -> bool:
    """Whether an alert is escalated now: critical, unacknowledged and not escalated before
    (``handled``), and raised longer ago than the configured time."""
    cutoff = escalation_cutoff(config, now)
    return cutoff is not None and severity == "critical" and not handled and raised_at <= cutoff


def escalation_note(config: AlertConfig) -> str:
    assert config.escalation is not None
    return f"unacknowledged for {config.escalation.after_minutes:g} minutes"


def handled(actions: Iterable[str]) -> bool:
    """An alert acknowledged or escalated before is not escalated (again)."""
    return any(action in (ACKNOWLEDGED, ESCALATED) for action in actions)


def lease_until(config: AlertConfig, now: datetime) -> datetime:
    """Until when a claimed delivery is its sender's: after that it is due again."""
    return now + timedelta(seconds=config.retry.lease_seconds)


def retry_at(config: AlertConfig, attempts: int, now: datetime) -> datetime:
    """When a delivery that failed its ``attempts``-th attempt is tried again: exponential
    backoff from ``retry.first_seconds``, at most ``retry.max_seconds``."""
    retry = config.retry
    wait = min(retry.first_seconds * 2 ** (attempts - 1), retry.max_seconds)
    return now + timedelta(seconds=wait)


def error_text(error: str) -> str:
    return error[:ERROR_LIMIT]


def next_log_entry(
    last: AlertLogEntry | tuple[int, str] | None,
    derived_id: uuid.UUID,
    action: str,
    at: datetime,
    actor: str,
    note: str | None,
) -> AlertLogEntry:
    """The entry appended after ``last`` (the last entry, or its id and chain hash)."""
    if isinstance(last, AlertLogEntry):
        last = (last.id, last.chain_hash)
    previous_id, previous = last if last is not None else (0, GENESIS)
    entry = previous_id + 1
    link = alert_log_link(previous, entry, derived_id, action, at, actor, note)
    return AlertLogEntry(entry, derived_id, action, at, actor, note, link)


def first_break(entries: Iterable[AlertLogEntry]) -> int | None:
    """The id of the first entry whose hash does not follow from the one before (None: the
    chain holds)."""
    previous = GENESIS
    for entry in entries:
        link = alert_log_link(
            previous, entry.id, entry.derived_id, entry.action, entry.at, entry.actor, entry.note
        )
        if link != entry.chain_hash:
            return entry.id
        previous = link
    return None


def alert_view(
    number: int,
    alert: DerivedEvent,
    raised_at: datetime,
    log: Iterable[AlertLogEntry],
    deliveries: Sequence[DeliveryState],
) -> AlertView:
    """What is shown of an alert: its acknowledgement and escalation from its log entries."""
    actions = {entry.action: entry for entry in log}
    ack = actions.get(ACKNOWLEDGED)
    escalated = actions.get(ESCALATED)
    return AlertView(
        number=number,
        alert=alert,
        raised_at=raised_at,
        acknowledged_at=ack.at if ack else None,
        acknowledged_by=ack.actor if ack else None,
        escalated_at=escalated.at if escalated else None,
        deliveries=list(deliveries),
    )


SEVERITY_RANK: dict[str, int] = {"critical": 0, "warning": 1, "info": 2}
"""The severities of :data:`safety_stream.events.derived.SEVERITY`, most severe first."""


def severity_key(severity: str, number: int) -> tuple[int, int]:
    """Where an alert sorts in severity order: the most severe first, then the newest (the
    highest number) first within a severity. Numbers are unique, so the order is total and a
    page can continue after any alert."""
    return (SEVERITY_RANK.get(severity, len(SEVERITY_RANK)), -number)


def count_key(severity: str, acknowledged: bool) -> tuple[str, str]:
    return (severity, "acknowledged" if acknowledged else "unacknowledged")


# -- the port ---------------------------------------------------------------------------------


class Outbox(Protocol):
    """Where alerts, their deliveries and the alert log are kept."""

    config: AlertConfig

    def plan(self, source: DerivedSource, now: datetime) -> int:
        """Plan alerts and deliveries for the derived events after the cursor; returns how many
        alerts were among them (planned before or not)."""
        ...

    def escalate(self, now: datetime) -> int:
        """Escalate critical alerts unacknowledged for longer than the configured time."""
        ...

    def next_due(self) -> datetime | None:
        """When the earliest pending delivery is due (None: none is pending)."""
        ...

    def claim(self, now: datetime, limit: int = 50) -> list[Claimed]:
        """Take the deliveries that are due, oldest first; each is leased to this caller."""
        ...

    def delivered(self, claimed: Claimed, now: datetime) -> None: ...

    def failed(self, claimed: Claimed, now: datetime, error: str) -> datetime:
        """Record a failed attempt; returns when it is retried."""
        ...

    def acknowledge(
        self, derived_id: uuid.UUID, actor: str, note: str | None, now: datetime
    ) -> AlertView:
        """Record an acknowledgement (idempotent: the first one stands); UnknownAlert."""
        ...

    def alerts(
        self,
        derived_id: uuid.UUID | None = None,
        unacknowledged: bool = False,
        after: int = 0,
        limit: int = 1000,
        by_severity: bool = False,
    ) -> list[AlertView]:
        """Alerts numbered after ``after``, in the order they were raised; ``by_severity``:
        in :func:`severity_key` order, continuing after the alert numbered ``after``."""
        ...

    def log(self) -> list[AlertLogEntry]:
        """The alert log, oldest first."""
        ...

    def last_action(self) -> int:
        """How far the alert log (acknowledgements, escalations) has grown: 0 when empty."""
        ...

    def counts(self) -> dict[tuple[str, str], int]:
        """(severity, acknowledged|unacknowledged) -> alerts, for the metrics."""
        ...
