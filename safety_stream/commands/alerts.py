"""``safety-stream alerts``: list alerts with their delivery state; ``alerts ack`` one."""

from __future__ import annotations

import json
import uuid

from safety_stream.alerts.config import default_config
from safety_stream.alerts.dispatcher import utc_now
from safety_stream.alerts.outbox import AlertView, Outbox, UnknownAlert
from safety_stream.api.alerts import AlertOut
from safety_stream.store.sql import SqlEventStore


def _outbox(db: str) -> tuple[SqlEventStore, Outbox]:
    store = SqlEventStore.open(db)
    return store, Outbox(store.engine, default_config())  # routing is not needed to read


def _line(view: AlertView) -> str:
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
    return (
        f"{alert.derived_id}  {alert.severity:<8} {alert.kind:<19} {alert.rule_id:<28} "
        f"{ack}{escalated}; {state}\n    {alert.summary}"
    )


def list_alerts(db: str, unacknowledged: bool, as_json: bool) -> int:
    store, outbox = _outbox(db)
    try:
        views = outbox.alerts(unacknowledged=unacknowledged, limit=100_000)
    finally:
        store.close()
    if as_json:
        print(json.dumps([AlertOut.of(v).model_dump(mode="json") for v in views], indent=2))
        return 0
    for view in views:
        print(_line(view))
    print(f"{len(views)} alert(s)")
    return 0


def acknowledge(db: str, alert_id: str, by: str, note: str | None) -> int:
    try:
        derived_id = uuid.UUID(alert_id)
    except ValueError:
        print(f"error: {alert_id!r} is not an alert id (a UUID; see `safety-stream alerts`)")
        return 2
    store, outbox = _outbox(db)
    try:
        view = outbox.acknowledge(derived_id, by, note, utc_now())
    except UnknownAlert:
        print(f"error: no alert {alert_id}")
        return 1
    finally:
        store.close()
    print(f"acknowledged by {view.acknowledged_by} at {view.acknowledged_at:%Y-%m-%d %H:%M} UTC")
    return 0
