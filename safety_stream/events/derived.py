"""Derived events: what the monitor concludes from the log (boundaries, sentinels, clocks).

Each one cites the plan version and rule that produced it and the log position of the event
that caused it. Its id is a UUIDv5 of (plan version, rule, kind, key), where the key is what
makes it unique within the rule (the AE, or the ordinal of the rule's n-th transition of that
kind). Folding the same log under the same plan therefore yields the same ids, and storing a
derived event is idempotent: a replay emits nothing new.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter

DerivedKind = Literal[
    "boundary.approached",
    "boundary.crossed",
    "boundary.cleared",
    "sentinel.raised",
    "report.due",
    "report.overdue",
    "report.closed",
    "report.site_late",
    "event.quarantined",
]
Severity = Literal["critical", "warning", "info"]
SEVERITY: dict[str, Severity] = {
    "boundary.crossed": "critical",
    "sentinel.raised": "critical",
    "report.overdue": "critical",
    "event.quarantined": "critical",
    "boundary.approached": "warning",
    "report.due": "warning",
    "report.site_late": "warning",
    "boundary.cleared": "info",
    "report.closed": "info",
}
NAMESPACE = uuid.UUID("6f1e9a0c-52b7-4c1e-9d0a-5afe57e0d3a1")


class DerivedEvent(BaseModel):
    """One conclusion of the monitor. ``summary`` never names a patient."""

    model_config = ConfigDict(frozen=True)

    derived_id: uuid.UUID
    kind: DerivedKind
    severity: Severity
    rule_id: str
    plan_version: str
    occurred_at: datetime  # the monitoring clock when it was concluded (log time)
    caused_by: int  # log position of the event that caused it
    summary: str
    details: dict[str, Any]


DERIVED_JSON: TypeAdapter[DerivedEvent] = TypeAdapter(DerivedEvent)


def derive(
    kind: DerivedKind,
    rule_id: str,
    plan_version: str,
    key: str,
    occurred_at: datetime,
    caused_by: int,
    summary: str,
    details: dict[str, Any],
) -> DerivedEvent:
    return DerivedEvent(
        derived_id=uuid.uuid5(NAMESPACE, f"{plan_version}/{rule_id}/{kind}/{key}"),
        kind=kind,
        severity=SEVERITY[kind],
        rule_id=rule_id,
        plan_version=plan_version,
        occurred_at=occurred_at,
        caused_by=caused_by,
        summary=summary,
        details=details,
    )
