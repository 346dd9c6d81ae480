"""The alert outbox port's contract, held by every implementation: in memory, SQLite, PostgreSQL.

Each test runs once per backend against :class:`safety_stream.alerts.outbox.Outbox` only:
planning (once, however often the same derived events are seen), claiming (oldest first, at
most ``limit``, leased), retries with backoff, escalation, acknowledgement and the
hash-chained alert log, the listing's filters and the counts.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from safety_stream.alerts.config import AlertConfig
from safety_stream.alerts.outbox import (
    AlertView,
    Outbox,
    UnknownAlert,
    first_break,
    retry_at,
)
from safety_stream.events.derived import DerivedEvent, DerivedKind, derive
from safety_stream.projections.documents import StoredDerived
from safety_stream.store.opening import open_store
from safety_stream.store.outbox_memory import InMemoryOutbox
from safety_stream.store.outbox_sql import SqlOutbox
from safety_stream.store.sql import SqlEventStore

T0 = datetime(2026, 11, 27, 9, 0, 0, 250000, tzinfo=UTC)
BACKENDS = ["memory", "sqlite", "postgres"]
CONFIG: dict[str, Any] = {
    "board_url": "https://board.example/board",
    "groups": [
        {
            "name": "dsmb",
            "severities": ["critical"],
            "channels": [{"type": "webhook", "url": "http://127.0.0.1:9/dsmb"}],
        },
        {"name": "officers", "channels": [{"type": "file", "path": "alerts.ndjson"}]},
        {
            "name": "chair",
            "kinds": ["boundary.crossed"],
            "severities": ["critical"],
            "channels": [{"type": "webhook", "name": "pager", "url": "http://127.0.0.1:9/"}],
        },
    ],
    "retry": {"first_seconds": 1, "max_seconds": 8, "lease_seconds": 60},
}
ESCALATING = {**CONFIG, "escalation": {"after_minutes": 30, "groups": ["chair"]}}


def event(kind: DerivedKind, key: str, caused_by: int = 1) -> DerivedEvent:
    return derive(kind, "R1", "v1", key, T0, caused_by, f"{kind} {key}", {"key": key})


class Source:
    """Derived events as a projection repository stores them; ``forgetful`` ignores ``after``,
    as if the planner's cursor had never moved."""

    def __init__(self, *events: DerivedEvent, forgetful: bool = False) -> None:
        self.events = list(events)
        self.forgetful = forgetful

    def derived_events(
        self, rule_id: str | None = None, after: int = 0, limit: int | None = None
    ) -> list[StoredDerived]:
        found = [
            StoredDerived(number, item)
            for number, item in enumerate(self.events, start=1)
            if (self.forgetful or number > after) and rule_id in (None, item.rule_id)
        ]
        return found if limit is None else found[:limit]


OutboxFactory = Callable[[dict[str, Any]], Outbox]


@pytest.fixture(params=BACKENDS)
def make_outbox(request: pytest.FixtureRequest) -> Iterator[OutboxFactory]:
    stores: list[SqlEventStore] = []

    def make(config: dict[str, Any]) -> Outbox:
        validated = AlertConfig.model_validate(config)
        if request.param == "memory":
            return InMemoryOutbox(validated)
        if not stores:
            stores.append(open_store(request.getfixturevalue(f"{request.param}_url"), create=True))
        return SqlOutbox(stores[0].engine, validated)

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def outbox(make_outbox: OutboxFactory) -> Outbox:
    return make_outbox(CONFIG)


CROSSED = event("boundary.crossed", "a")  # critical: dsmb, officers, chair
APPROACHED = event("boundary.approached", "b")  # warning: officers
CLOSED = event("report.closed", "c")  # not an alert
QUARANTINED = event("event.quarantined", "d")  # critical: dsmb, officers


def channels(view: AlertView) -> list[tuple[str, str]]:
    return [(d.channel, d.reason) for d in view.deliveries]


# --- planning -----------------------------------------------------------------------------------


def test_alerts_are_planned_with_one_delivery_per_routed_channel(outbox: Outbox) -> None:
    assert outbox.alerts() == [] and outbox.counts() == {} and outbox.next_due() is None
    assert outbox.plan(Source(APPROACHED, CLOSED, CROSSED), T0) == 2  # report.closed: no alert
    views = outbox.alerts()
    assert [v.alert for v in views] == [APPROACHED, CROSSED]
    assert views[0].number < views[1].number
    assert channels(views[0]) == [("officers/file", "alert")]
    assert channels(views[1]) == [
        ("dsmb/webhook", "alert"),
        ("officers/file", "alert"),
        ("chair/pager", "alert"),
    ]
    crossed = views[1]
    assert crossed.raised_at == T0
    assert (crossed.acknowledged_at, crossed.acknowledged_by, crossed.escalated_at) == (None,) * 3
    assert {(d.state, d.attempts, d.next_attempt_at, d.delivered_at, d.last_error)
            for d in crossed.deliveries} == {("pending", 0, T0, None, None)}  # fmt: skip
    assert outbox.next_due() == T0


def test_planning_the_same_derived_events_twice_creates_them_once(outbox: Outbox) -> None:
    source = Source(CROSSED, APPROACHED, forgetful=True)
    assert outbox.plan(source, T0) == 2
    before = outbox.alerts()
    assert outbox.plan(source, T0 + timedelta(hours=1)) == 2  # seen again ...
    assert outbox.alerts() == before  # ... but stored once, raised when first planned
    assert sum(len(v.deliveries) for v in before) == 4


def test_the_cursor_moves_past_what_was_planned(outbox: Outbox) -> None:
    source = Source(CROSSED, CLOSED)
    assert outbox.plan(source, T0) == 1
    assert outbox.plan(source, T0) == 0  # nothing after the cursor
    source.events.append(CLOSED.model_copy(update={"derived_id": uuid.uuid4()}))
    assert outbox.plan(source, T0) == 0  # moved past a derived event that is no alert
    source.events.append(QUARANTINED)
    assert outbox.plan(source, T0) == 1
    assert [v.alert.kind for v in outbox.alerts()] == ["boundary.crossed", "event.quarantined"]


# --- delivering ---------------------------------------------------------------------------------


def test_claims_take_the_oldest_due_deliveries_up_to_the_limit_and_lease_them(
    outbox: Outbox,
) -> None:
    outbox.plan(Source(CROSSED, APPROACHED, QUARANTINED), T0)
    assert outbox.claim(T0 - timedelta(seconds=1)) == []  # not due yet
    first = outbox.claim(T0, limit=4)
    assert [(c.derived_id, c.channel) for c in first] == [
        (CROSSED.derived_id, "dsmb/webhook"),
        (CROSSED.derived_id, "officers/file"),
        (CROSSED.derived_id, "chair/pager"),
        (APPROACHED.derived_id, "officers/file"),
    ]
    assert [c.id for c in first] == sorted(c.id for c in first)
    claimed = first[0]
    assert (claimed.channel_type, claimed.reason, claimed.attempts) == ("webhook", "alert", 1)
    assert claimed.alert == CROSSED
    assert claimed.delivery_id == f"{CROSSED.derived_id}/dsmb/webhook/alert"
    rest = outbox.claim(T0)
    assert [(c.derived_id, c.channel) for c in rest] == [
        (QUARANTINED.derived_id, "dsmb/webhook"),
        (QUARANTINED.derived_id, "officers/file"),
    ]
    assert outbox.claim(T0) == []  # all leased: nobody else takes them
    assert outbox.next_due() == T0 + timedelta(seconds=60)
    assert outbox.claim(T0 + timedelta(seconds=59)) == []
    again = outbox.claim(T0 + timedelta(seconds=60), limit=100)  # the lease ran out
    assert len(again) == 6 and {c.attempts for c in again} == {2}


def test_a_delivered_delivery_is_never_claimed_again(outbox: Outbox) -> None:
    outbox.plan(Source(APPROACHED), T0)
    (claimed,) = outbox.claim(T0)
    outbox.delivered(claimed, T0 + timedelta(seconds=1))
    assert outbox.next_due() is None
    assert outbox.claim(T0 + timedelta(days=1)) == []
    (view,) = outbox.alerts()
    (delivery,) = view.deliveries
    assert (delivery.state, delivery.attempts, delivery.delivered_at, delivery.last_error) == (
        "delivered",
        1,
        T0 + timedelta(seconds=1),
        None,
    )


def test_a_failed_delivery_is_retried_with_exponential_backoff(outbox: Outbox) -> None:
    outbox.plan(Source(APPROACHED), T0)
    now, waits = T0, []
    for _ in range(5):
        (claimed,) = outbox.claim(now)
        again = outbox.failed(claimed, now, f"receiver down ({claimed.attempts})")
        assert again == retry_at(outbox.config, claimed.attempts, now)
        assert outbox.next_due() == again
        assert outbox.claim(again - timedelta(microseconds=1)) == []  # not due yet
        waits.append((again - now).total_seconds())
        now = again
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]  # from retry.first_seconds, at most max_seconds
    (delivery,) = outbox.alerts()[0].deliveries
    assert (delivery.state, delivery.attempts, delivery.last_error) == (
        "pending",
        5,
        "receiver down (5)",
    )
    (claimed,) = outbox.claim(now)
    outbox.failed(claimed, now, "x" * 5000)
    assert outbox.alerts()[0].deliveries[0].last_error == "x" * 2000  # kept short
    (claimed,) = outbox.claim(now + timedelta(seconds=8))
    outbox.delivered(claimed, now + timedelta(seconds=8))
    (delivery,) = outbox.alerts()[0].deliveries
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("delivered", 7, None)


def test_a_failure_reported_after_delivery_changes_nothing(outbox: Outbox) -> None:
    outbox.plan(Source(APPROACHED), T0)
    (claimed,) = outbox.claim(T0)
    outbox.delivered(claimed, T0)
    outbox.failed(claimed, T0, "late report of a failure")
    (delivery,) = outbox.alerts()[0].deliveries
    assert (delivery.state, delivery.last_error) == ("delivered", None)
    assert outbox.next_due() is None


# --- escalation ---------------------------------------------------------------------------------


def test_unacknowledged_critical_alerts_are_escalated_once(make_outbox: OutboxFactory) -> None:
    outbox = make_outbox(ESCALATING)
    outbox.plan(Source(CROSSED, APPROACHED, QUARANTINED), T0)
    outbox.acknowledge(QUARANTINED.derived_id, "officer", None, T0 + timedelta(minutes=1))
    assert outbox.escalate(T0 + timedelta(minutes=29)) == 0
    later = T0 + timedelta(minutes=30)
    assert outbox.escalate(later) == 1  # the crossing; warnings and acknowledged ones never
    assert outbox.escalate(later + timedelta(hours=2)) == 0  # escalated once
    crossed, approached, quarantined = outbox.alerts()
    assert crossed.escalated_at == later and crossed.acknowledged_at is None
    assert approached.escalated_at is None and quarantined.escalated_at is None
    assert channels(crossed)[-1] == ("chair/pager", "escalation")
    (claimed,) = [c for c in outbox.claim(later, limit=100) if c.reason == "escalation"]
    assert claimed.delivery_id == f"{CROSSED.derived_id}/chair/pager/escalation"
    (entry,) = [e for e in outbox.log() if e.action == "escalated"]
    assert (entry.derived_id, entry.actor, entry.note) == (
        CROSSED.derived_id,
        "safety-stream",
        "unacknowledged for 30 minutes",
    )


def test_without_escalation_configured_nothing_escalates(outbox: Outbox) -> None:
    outbox.plan(Source(CROSSED), T0)
    assert outbox.escalate(T0 + timedelta(days=30)) == 0
    assert outbox.log() == [] and outbox.last_action() == 0


# --- people -------------------------------------------------------------------------------------


def test_the_first_acknowledgement_stands_and_is_logged_in_a_chain(
    make_outbox: OutboxFactory,
) -> None:
    outbox = make_outbox(ESCALATING)
    outbox.plan(Source(CROSSED, QUARANTINED), T0)
    view = outbox.acknowledge(CROSSED.derived_id, "dsmb-chair", "seen", T0 + timedelta(hours=1))
    assert (view.alert, view.acknowledged_by, view.acknowledged_at) == (
        CROSSED,
        "dsmb-chair",
        T0 + timedelta(hours=1),
    )
    again = outbox.acknowledge(CROSSED.derived_id, "someone-else", None, T0 + timedelta(hours=2))
    assert again == view  # the first stands
    outbox.escalate(T0 + timedelta(hours=3))  # the quarantine
    outbox.acknowledge(QUARANTINED.derived_id, "officer", None, T0 + timedelta(hours=4))
    log = outbox.log()
    assert [(e.id, e.derived_id, e.action, e.actor, e.note) for e in log] == [
        (1, CROSSED.derived_id, "acknowledged", "dsmb-chair", "seen"),
        (2, QUARANTINED.derived_id, "escalated", "safety-stream", "unacknowledged for 30 minutes"),
        (3, QUARANTINED.derived_id, "acknowledged", "officer", None),
    ]
    assert [e.at for e in log] == [T0 + timedelta(hours=h) for h in (1, 3, 4)]
    assert outbox.last_action() == 3
    assert first_break(log) is None
    assert len({e.chain_hash for e in log}) == 3
    assert first_break([log[0], dataclasses.replace(log[1], actor="mallory"), log[2]]) == 2
    assert first_break([log[0], log[2]]) == 3  # one removed


def test_acknowledging_an_unknown_alert_is_refused(outbox: Outbox) -> None:
    outbox.plan(Source(CROSSED), T0)
    with pytest.raises(UnknownAlert):
        outbox.acknowledge(uuid.uuid4(), "officer", None, T0)
    assert outbox.log() == []


def test_concurrent_acknowledgements_log_one(outbox: Outbox) -> None:
    outbox.plan(Source(CROSSED), T0)
    views: list[AlertView] = []

    def ack(who: str) -> None:
        views.append(outbox.acknowledge(CROSSED.derived_id, who, None, T0))

    threads = [threading.Thread(target=ack, args=(f"officer-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(views) == 4 and len({v.acknowledged_by for v in views}) == 1
    assert [e.action for e in outbox.log()] == ["acknowledged"]


# --- reading ------------------------------------------------------------------------------------


def test_the_listing_filters_by_alert_acknowledgement_and_number(outbox: Outbox) -> None:
    outbox.plan(Source(CROSSED, APPROACHED, QUARANTINED), T0)
    crossed, approached, quarantined = outbox.alerts()
    assert outbox.alerts(derived_id=APPROACHED.derived_id) == [approached]
    assert outbox.alerts(derived_id=uuid.uuid4()) == []
    assert outbox.alerts(after=crossed.number) == [approached, quarantined]
    assert outbox.alerts(after=quarantined.number) == []
    assert outbox.alerts(limit=2) == [crossed, approached]
    outbox.acknowledge(CROSSED.derived_id, "officer", None, T0)
    open_ = outbox.alerts(unacknowledged=True)
    assert [v.alert for v in open_] == [APPROACHED, QUARANTINED]
    assert [v.alert for v in outbox.alerts(unacknowledged=True, limit=1)] == [APPROACHED]
    assert outbox.alerts(unacknowledged=True, after=approached.number) == [quarantined]
    assert outbox.alerts(derived_id=CROSSED.derived_id, unacknowledged=True) == []
    assert len(outbox.alerts()) == 3


def test_counts_by_severity_and_acknowledgement(outbox: Outbox) -> None:
    outbox.plan(Source(CROSSED, APPROACHED, QUARANTINED, CLOSED), T0)
    assert outbox.counts() == {("critical", "unacknowledged"): 2, ("warning", "unacknowledged"): 1}
    outbox.acknowledge(QUARANTINED.derived_id, "officer", None, T0)
    outbox.acknowledge(APPROACHED.derived_id, "officer", None, T0)
    assert outbox.counts() == {
        ("critical", "unacknowledged"): 1,
        ("critical", "acknowledged"): 1,
        ("warning", "acknowledged"): 1,
    }


def test_the_same_outbox_store_is_shared_by_its_readers(make_outbox: OutboxFactory) -> None:
    """Two outboxes over one store (SQL) or one outbox (memory) see the same alerts: the
    listing is read from the store, never cached by the planner."""
    planner = make_outbox(CONFIG)
    planner.plan(Source(CROSSED), T0)
    reader = planner if isinstance(planner, InMemoryOutbox) else make_outbox(CONFIG)
    assert [v.alert for v in reader.alerts()] == [CROSSED]
    reader.acknowledge(CROSSED.derived_id, "officer", None, T0)
    assert planner.alerts()[0].acknowledged_by == "officer"


# --- severity order (the board's and the API's default listing) --------------------------------


def test_alerts_by_severity_come_most_severe_first_then_newest_and_page_after_any(
    outbox: Outbox,
) -> None:
    cleared, later = event("boundary.cleared", "e"), event("sentinel.raised", "f")
    outbox.plan(Source(APPROACHED, CROSSED, cleared, QUARANTINED, later), T0)
    numbers = {v.alert.derived_id: v.number for v in outbox.alerts()}
    ordered = [v.alert for v in outbox.alerts(by_severity=True)]
    # critical newest first (f, d, a), then warning (b), then info (e): worked out by hand
    assert ordered == [later, QUARANTINED, CROSSED, APPROACHED, cleared]
    walked, after = [], 0
    while page := outbox.alerts(by_severity=True, after=after, limit=2):
        walked += [v.alert for v in page]
        after = page[-1].number
    assert walked == ordered
    assert (
        outbox.alerts(by_severity=True, after=numbers[CROSSED.derived_id])
        == outbox.alerts(by_severity=True)[3:]
    )
    assert outbox.alerts(by_severity=True, after=99) == []  # a number never given
    outbox.acknowledge(QUARANTINED.derived_id, "officer", None, T0)
    open_ones = [v.alert for v in outbox.alerts(by_severity=True, unacknowledged=True)]
    assert open_ones == [later, CROSSED, APPROACHED, cleared]
