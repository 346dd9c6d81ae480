"""What an alert says on each channel, computed from the derived event alone (pure).

Subjects, titles and Alertmanager labels name the trial, the rule and what happened, never a
patient; the body carries the numbers a DSMB member needs to check the conclusion (counts,
boundary, posterior or nominal level) and a link to the safety board.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from safety_stream.events.derived import SEVERITY, DerivedEvent, DerivedKind

ALERTNAMES = {
    "boundary.approached": "SafetyBoundaryApproached",
    "boundary.crossed": "SafetyBoundaryCrossed",
    "boundary.cleared": "SafetyBoundaryCleared",
    "sentinel.raised": "SafetySentinelRaised",
    "report.due": "SafetyReportDue",
    "report.overdue": "SafetyReportOverdue",
    "report.closed": "SafetyReportClosed",
    "report.site_late": "SafetySaeLateFromSite",
    "event.quarantined": "SafetyEventQuarantined",
}
# what the monitor found about its own data goes to the safety officer and the operators
CATEGORY: dict[str, str] = {"event.quarantined": "integrity"}
HEADLINES = {
    "boundary.approached": "stopping boundary approached",
    "boundary.crossed": "STOPPING BOUNDARY CROSSED",
    "boundary.cleared": "back under the stopping boundary",
    "sentinel.raised": "sentinel event",
    "report.due": "expedited safety report due",
    "report.overdue": "EXPEDITED SAFETY REPORT OVERDUE",
    "report.closed": "expedited safety report clock closed",
    "report.site_late": "SAE reached the sponsor more than 24 h after the site knew",
    "event.quarantined": "A STORED EVENT COULD NOT BE MONITORED",
}
# The numbers shown in the body, in this order, with their labels.
FIGURES = (
    ("x", "counted patients"),
    ("n", "evaluable patients"),
    ("exposed", "exposed patients"),
    ("boundary", "stopping boundary at this n"),
    ("margin", "margin to the boundary"),
    ("max_n", "planned maximum n"),
    ("posterior_probability", "posterior P(rate > theta)"),
    ("theta", "theta"),
    ("cutoff", "posterior cutoff"),
    ("nominal_level", "nominal level"),
    ("p_value", "one-sided p-value"),
    ("ctcae_term", "CTCAE term"),
    ("grade", "grade"),
    ("site_id", "site"),
    ("due", "due (UTC)"),
    ("days", "days allowed"),
    ("submitted_at", "submitted at"),
    ("on_time", "on time"),
    ("position", "log position"),
    ("event_type", "event type"),
    ("step", "failed step"),
    ("error", "error"),
)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def alert_link(board_url: str, alert: DerivedEvent) -> str:
    return f"{board_url.rstrip('/')}/alerts/{alert.derived_id}"


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def figures(alert: DerivedEvent) -> list[tuple[str, str]]:
    return [
        (label, _figure(alert.details[key]))
        for key, label in FIGURES
        if alert.details.get(key) is not None
    ]


def subject(alert: DerivedEvent, trial_id: str, escalation: bool = False) -> str:
    prefix = "ESCALATED (unacknowledged) - " if escalation else ""
    return (
        f"{prefix}[{trial_id}] {alert.severity.upper()}: {HEADLINES[alert.kind]}"
        f" - rule {alert.rule_id}"
    )


def render(
    alert: DerivedEvent, trial_id: str, board_url: str, escalation: bool = False
) -> Rendered:
    title = subject(alert, trial_id, escalation)
    link = alert_link(board_url, alert)
    rows = figures(alert)
    lines = [
        title,
        "",
        alert.summary,
        "",
        *(f"  {label}: {value}" for label, value in rows),
        "",
        f"Rule {alert.rule_id}, plan version {alert.plan_version}; "
        f"concluded at {alert.occurred_at:%Y-%m-%d %H:%M} UTC from log position {alert.caused_by}.",
        f"Alert id {alert.derived_id}. Acknowledge on the board: {link}",
    ]
    table = "".join(
        f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in rows
    )
    body = (
        f"<html><body><h2>{html.escape(title)}</h2><p>{html.escape(alert.summary)}</p>"
        f"<table>{table}</table>"
        f"<p>Rule <code>{html.escape(alert.rule_id)}</code>, plan version "
        f"{html.escape(alert.plan_version)}; log position {alert.caused_by}.</p>"
        f"<p><a href='{html.escape(link)}'>Open and acknowledge on the safety board</a></p>"
        "</body></html>"
    )
    return Rendered(subject=title, text="\n".join(lines) + "\n", html=body)


def webhook_payload(
    alert: DerivedEvent, trial_id: str, board_url: str, reason: str, delivery_id: str
) -> bytes:
    """The JSON body of the generic webhook (canonical: sorted keys, no spaces)."""
    document = {
        "delivery_id": delivery_id,
        "reason": reason,
        "trial_id": trial_id,
        "alert_id": str(alert.derived_id),
        "title": subject(alert, trial_id, reason == "escalation"),
        "link": alert_link(board_url, alert),
        "alert": alert.model_dump(mode="json"),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def alertmanager_alerts(
    alert: DerivedEvent, trial_id: str, board_url: str, escalation: bool, now: datetime
) -> list[dict[str, Any]]:
    """Alerts for Alertmanager's API v2: closed-set labels, details in annotations.

    A rule back under its boundary also resolves its crossing (same labels, ``endsAt`` now),
    so Alertmanager shows the crossing as resolved and notifies a later crossing afresh.
    """
    alerts = [_alertmanager_alert(alert, alert.kind, trial_id, board_url, escalation)]
    if alert.kind == "boundary.cleared":
        resolved = _alertmanager_alert(alert, "boundary.crossed", trial_id, board_url, False)
        resolved["endsAt"] = now.isoformat()
        alerts.append(resolved)
    return alerts


def _alertmanager_alert(
    alert: DerivedEvent, kind: DerivedKind, trial_id: str, board_url: str, escalation: bool
) -> dict[str, Any]:
    rendered = render(alert, trial_id, board_url, escalation)
    return {
        "labels": {
            "alertname": ALERTNAMES[kind],
            "severity": SEVERITY[kind],
            "category": CATEGORY.get(kind, "safety"),
            "kind": kind,
            "rule": alert.rule_id,
            "trial": trial_id,
            "source": "safety-stream",
            **({"escalated": "true"} if escalation else {}),
        },
        "annotations": {
            "summary": alert.summary,
            "description": rendered.text,
            "alert_id": str(alert.derived_id),
            "plan_version": alert.plan_version,
        },
        "startsAt": alert.occurred_at.isoformat(),
        "generatorURL": alert_link(board_url, alert),
    }
