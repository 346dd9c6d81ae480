"""``safety-stream alerts``: list alerts (most severe first) with their delivery and triage
state; ``alerts ack`` one."""

from __future__ import annotations

import contextlib
import json
import uuid

from safety_stream.alerts.config import default_config
from safety_stream.alerts.dispatcher import utc_now
from safety_stream.alerts.outbox import AlertView, UnknownAlert
from safety_stream.alerts.triage import LABELS, AlertTriage
from safety_stream.api.alerts import AlertOut
from safety_stream.application.triage import triage_in_log
from safety_stream.errors import SafetyStreamError, UsageError
from safety_stream.store.opening import open_store
from safety_stream.store.outbox_sql import SqlOutbox as Outbox
from safety_stream.store.sql import SqlEventStore


class AlreadyAcknowledged(SafetyStreamError):
    """The alert was acknowledged before: the first acknowledgement stands (exit status 1)."""


def _outbox(db: str) -> tuple[SqlEventStore, Outbox]:
    store = open_store(db, create=False)
    return store, Outbox(store.engine, default_config())  # routing is not needed to read


def _line(view: AlertView, triage: AlertTriage) -> str:
    alert = view.alert
    delivered = sum(d.state == "delivered" for d in view.deliveries)
    pending = [d for d in view.deliveries if d.state != "delivered"]
    state = f"delivered {delivered}/{len(view.deliveries)}"
    if pending:
        worst = max(pending, key=lambda d: d.attempts)
        state += f", {len(pending)} pending ({worst.attempts} attempts: {worst.last_error or '-'})"
    ack = (
        f"acked by {view.acknowledged_by} {view.acknowledged_at:%Y-%m-%d %H:%M}"
        if view.acknowledged_at
        else "UNACKNOWLEDGED"
    )
    escalated = " ESCALATED" if view.escalated_at else ""
    step = triage.steps[-1] if triage.steps else None
    triaged = LABELS[triage.state] + (f" ({step.by} {step.at:%Y-%m-%d %H:%M})" if step else "")
    return (
        f"{alert.derived_id}  {alert.severity:<8} {alert.kind:<19} {alert.rule_id:<28} "
        f"{ack}{escalated}; triage: {triaged}; {state}\n    {alert.summary}"
    )


def list_alerts(db: str, unacknowledged: bool, as_json: bool, trial_id: str) -> int:
    """``trial_id``: the plan's trial, whose triage stream holds the alerts' triage steps."""
    store, outbox = _outbox(db)
    try:
        views = outbox.alerts(unacknowledged=unacknowledged, limit=100_000, by_severity=True)
        triage = triage_in_log(store, trial_id)
    finally:
        store.close()
    found = [(v, triage.get(v.alert.derived_id) or AlertTriage()) for v in views]
    if as_json:
        print(json.dumps([AlertOut.of(v, t).model_dump(mode="json") for v, t in found], indent=2))
        return 0
    for view, steps in found:
        print(_line(view, steps))
    print(f"{len(views)} alert(s)")
    return 0


def acknowledge(db: str, alert_id: str, by: str, note: str | None) -> int:
    prefix = alert_id.strip().lower()
    if len(prefix) < 4 or any(c not in "0123456789abcdef-" for c in prefix):
        raise UsageError(
            f"{alert_id!r} is not an alert id (a UUID or a unique prefix of at least 4 "
            "characters, as `safety-stream alerts` and the board show)"
        )
    store, outbox = _outbox(db)
    try:
        derived_id = _resolve(outbox, prefix)
        found = outbox.alerts(derived_id=derived_id)
        if not found:
            raise UnknownAlert(alert_id)
        before = found[0]
        if before.acknowledged_at is not None:
            raise AlreadyAcknowledged(
                f"alert {str(derived_id)[:8]} was already acknowledged by "
                f"{before.acknowledged_by} at {before.acknowledged_at:%Y-%m-%d %H:%M} UTC "
                "(the first acknowledgement stands; this one was not recorded)"
            )
        view = outbox.acknowledge(derived_id, by, note, utc_now())
    except UnknownAlert:
        raise UsageError(f"no alert {alert_id} (see `safety-stream alerts`)") from None
    finally:
        store.close()
    if view.acknowledged_by != by:  # someone else's acknowledgement landed first
        raise AlreadyAcknowledged(
            f"alert {str(derived_id)[:8]} was acknowledged by {view.acknowledged_by} at "
            f"{view.acknowledged_at:%Y-%m-%d %H:%M} UTC just before; this one was not recorded"
        )
    print(
        f"alert {derived_id} acknowledged by {view.acknowledged_by} at "
        f"{view.acknowledged_at:%Y-%m-%d %H:%M} UTC"
    )
    return 0


def _resolve(outbox: Outbox, prefix: str) -> uuid.UUID:
    """The one alert whose id starts with ``prefix`` (a full id is its own prefix)."""
    with contextlib.suppress(ValueError):
        return uuid.UUID(prefix)
    matches = [
        view.alert.derived_id
        for view in outbox.alerts(limit=1_000_000)
        if str(view.alert.derived_id).startswith(prefix)
    ]
    if not matches:
        raise UnknownAlert(prefix)
    if len(matches) > 1:
        shown = ", ".join(str(m)[: len(prefix) + 4] for m in matches[:5])
        raise UsageError(f"{prefix!r} matches {len(matches)} alerts ({shown}): give more of the id")
    return matches[0]
