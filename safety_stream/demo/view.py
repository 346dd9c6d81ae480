"""The demo's terminal view: rich renderables built from the API's own answers.

Pure functions of the JSON that ``/v1/toxicity``, ``/v1/rules`` and ``/v1/alerts`` return, so
what the terminal shows is exactly what any API client (or the board) would see.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

STATE_STYLE = {"crossed": "bold white on red", "approached": "bold black on yellow", "ok": "green"}
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def toxicity_table(toxicity: dict[str, Any]) -> Table:
    table = Table(title="Related toxicity by modality", title_justify="left", expand=True)
    for header in ("modality", "exposed", "related AE", "worst grade 1/2/3/4/5", "grade >= 3"):
        table.add_column(header, justify="left" if header == "modality" else "right")
    for row in toxicity["modalities"]:
        grades = row["by_worst_grade"]
        severe = row["grade3_or_worse"]
        table.add_row(
            row["modality"],
            str(row["exposed"]),
            str(row["patients_with_related_ae"]),
            "/".join(str(grades.get(str(g), 0)) for g in range(1, 6)),
            f"{severe['count']}/{severe['n']} {_percent(severe['rate'])} "
            f"[{_percent(severe['ci95_low'])}-{_percent(severe['ci95_high'])}]",
        )
    return table


def rules_table(rules: dict[str, Any]) -> Table:
    table = Table(title="Stopping rules", title_justify="left", expand=True)
    for header in ("rule", "state", "counted / evaluable", "boundary", "margin"):
        table.add_column(header, justify="left" if header in ("rule", "state") else "right")
    for rule in rules["rules"]:
        state = rule["status"]
        if rule["kind"] in ("bayesian", "pocock"):
            counts = f"{rule['x']} / {rule['n']}"
            boundary = "-" if rule["boundary"] is None else str(rule["boundary"])
            margin = "-" if rule["margin"] is None else str(rule["margin"])
        elif rule["kind"] == "sentinel":
            counts, boundary, margin = f"{rule['raised']} raised", "any", "-"
        else:
            clocks = rule.get("clocks") or []
            tally = {s: sum(c["state"] == s for c in clocks) for s in ("open", "overdue", "closed")}
            counts = f"{tally['open']} open, {tally['overdue']} overdue, {tally['closed']} closed"
            boundary, margin = "-", "-"
        label = f"{state}, awaiting DSMB decision" if rule.get("awaiting_decision") else state
        table.add_row(rule["rule_id"], Text(label, STATE_STYLE[state]), counts, boundary, margin)
    return table


def alert_line(alert: dict[str, Any]) -> Text:
    """One alert as the console channel prints it (the summary never names a patient)."""
    event = alert["alert"]
    return Text.assemble(
        (f"ALERT #{alert['number']} ", "bold"),
        f"{event['occurred_at'][:10]} ",
        (f"{event['severity'].upper()} ", SEVERITY_STYLE.get(event["severity"], "")),
        (f"{event['kind']} ", "bold"),
        f"{event['rule_id']}: {event['summary']}",
    )


def alerts_panel(alerts: list[dict[str, Any]], shown: int = 6) -> Panel:
    lines = [alert_line(a) for a in alerts[-shown:]] or [Text("no alerts yet", "dim")]
    return Panel(Group(*lines), title=f"Alerts ({len(alerts)})", title_align="left")


def header(progress: dict[str, Any]) -> Text:
    return Text.assemble(
        ("SPARKLE-L live safety monitoring (simulated) ", "bold"),
        f"trial date {progress['simulated_until']}  ",
        f"records posted {progress['records']:,}  stored {progress['stored']:,}  ",
        f"rejected {progress['rejected']:,}  ",
        f"({progress['rate']:,.0f} records/s)",
    )


def screen(
    progress: dict[str, Any],
    toxicity: dict[str, Any] | None,
    rules: dict[str, Any] | None,
    alerts: list[dict[str, Any]],
) -> Group:
    parts: list[Any] = [header(progress)]
    if toxicity is not None:
        parts.append(toxicity_table(toxicity))
    if rules is not None:
        parts.append(rules_table(rules))
    parts.append(alerts_panel(alerts))
    return Group(*parts)
