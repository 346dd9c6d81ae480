"""What-if: fold the whole log under several plans and compare when their alerts would fire."""

from __future__ import annotations

from contextlib import suppress

from safety_stream.events import EventBase, decode_json
from safety_stream.events.derived import DerivedEvent
from safety_stream.monitoring.monitor import Monitor
from safety_stream.plan import MonitoringPlan
from safety_stream.projections.log import PayloadLog
from safety_stream.projections.projector import Changes
from safety_stream.projections.state import TrialState

ALERTING = ("boundary.crossed", "boundary.approached", "sentinel.raised", "report.overdue")


def derived_under(store: PayloadLog, plans: list[MonitoringPlan]) -> list[list[DerivedEvent]]:
    """Everything each plan would have derived from the log, in one pass over it (each plan
    folds into a state of its own, so a quarantined event under one leaves the others be)."""
    runs = [(Monitor(plan), TrialState(), Changes()) for plan in plans]
    for position, payload, stored_at in store.payloads():
        event: EventBase | str = payload
        with suppress(Exception):  # undecodable: each run's fold quarantines it
            event = decode_json(payload)
        for monitor, state, changes in runs:
            changes.fold(state, event, position, monitor, stored_at)
    return [changes.derived for _, _, changes in runs]


def alerts_by_rule(derived: list[DerivedEvent]) -> dict[str, list[DerivedEvent]]:
    by_rule: dict[str, list[DerivedEvent]] = {}
    for item in derived:
        if item.kind in ALERTING:
            by_rule.setdefault(item.rule_id, []).append(item)
    return by_rule
