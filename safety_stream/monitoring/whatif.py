"""What-if: fold the whole log under several plans and compare when their alerts would fire."""

from __future__ import annotations

from safety_stream.events import decode_json
from safety_stream.monitoring.derived import DerivedEvent
from safety_stream.monitoring.monitor import Monitor
from safety_stream.plan import MonitoringPlan
from safety_stream.projections.state import TrialState, apply
from safety_stream.store.base import EventStore

ALERTING = ("boundary.crossed", "boundary.approached", "sentinel.raised", "report.overdue")


def derived_under(store: EventStore, plans: list[MonitoringPlan]) -> list[list[DerivedEvent]]:
    """Everything each plan would have derived from the log, in one pass over it."""
    monitors = [Monitor(plan) for plan in plans]
    state = TrialState()
    derived: list[list[DerivedEvent]] = [[] for _ in plans]
    for position, payload, stored_at in store.payloads():
        event = decode_json(payload)
        apply(state, event, position)
        for monitor, found in zip(monitors, derived, strict=True):
            found += monitor.observe(state, event, position, stored_at)
    return derived


def alerts_by_rule(derived: list[DerivedEvent]) -> dict[str, list[DerivedEvent]]:
    by_rule: dict[str, list[DerivedEvent]] = {}
    for item in derived:
        if item.kind in ALERTING:
            by_rule.setdefault(item.rule_id, []).append(item)
    return by_rule
