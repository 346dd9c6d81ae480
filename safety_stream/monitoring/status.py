"""The state of every rule at the monitor's clock, for the API, the CLI and the metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from safety_stream.monitoring.counting import STATUS_NAMES
from safety_stream.monitoring.monitor import Monitor
from safety_stream.monitoring.states import ClockState, ClockStateName


class ReportClockOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    ae_id: str
    site_id: str
    aware_at: datetime
    due: datetime
    fatal_or_life_threatening: bool
    state: ClockStateName
    stage: str = "initial"  # initial | complete | follow-up
    reason: str | None = None  # why it closed (submitted, retracted, no longer reportable: ...)


class DecisionOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str
    outcome: str
    decided_by: str
    decided_at: datetime
    rationale: str


def _decision(monitor: Monitor, rule_id: str) -> DecisionOut | None:
    decision = monitor.last_decision(rule_id)
    if decision is None:
        return None
    return DecisionOut(
        event_id=str(decision.event_id),
        outcome=str(decision.outcome),
        decided_by=decision.decided_by,
        decided_at=decision.occurred_at,
        rationale=decision.rationale,
    )


class RuleStatus(BaseModel):
    """One rule: for counting rules n, x and the boundary; sentinels and clocks their tallies."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    title: str
    kind: Literal["bayesian", "pocock", "sentinel", "expedited_report"]
    illustrative: bool
    status: Literal["ok", "approached", "crossed", "beyond_planned_n"]
    evaluability: Literal["completed", "time_weighted"] | None = None
    exposed: int | None = None
    n: int | float | None = None  # a sum of follow-up weights for time-weighted rules
    not_evaluable_left_early: int | None = None
    next_look: int | None = None
    crossed_at_n: int | None = None  # the first look at which the boundary was reached
    x: int | None = None
    boundary: int | None = None
    margin: int | None = None
    max_n: int | None = None
    posterior_probability: float | None = None
    nominal_level: float | None = None
    p_value: float | None = None
    raised: int | None = None  # sentinel: AEs that raised it
    clocks: list[ReportClockOut] | None = None
    # crossed (or raised) and not yet answered by a DSMB decision: the latch holds
    awaiting_decision: bool = False
    last_decision: DecisionOut | None = None


def rule_statuses(monitor: Monitor) -> list[RuleStatus]:
    out: list[RuleStatus] = []
    for counter in monitor.counting:
        rule = counter.rule
        evidence = counter.evidence()
        out.append(
            RuleStatus(
                rule_id=rule.id,
                title=rule.title,
                kind=rule.kind,
                illustrative=rule.illustrative,
                status=STATUS_NAMES[counter.status],
                evaluability=rule.population.evaluability,
                exposed=counter.exposed,
                not_evaluable_left_early=counter.left_early,
                next_look=evidence.get("next_look"),
                crossed_at_n=evidence.get("crossed_at_n"),
                n=counter.n,
                x=counter.x,
                boundary=evidence["boundary"],
                margin=evidence["margin"],
                max_n=rule.max_n,
                posterior_probability=evidence.get("posterior_probability"),
                nominal_level=evidence.get("nominal_level"),
                p_value=evidence.get("p_value"),
                awaiting_decision=counter.awaiting_decision,
                last_decision=_decision(monitor, rule.id),
            )
        )
    for sentinel in [*monitor.sentinels, *monitor.lab_signals.rules]:
        raised = len(monitor.raised[sentinel.id])
        out.append(
            RuleStatus(
                rule_id=sentinel.id,
                title=sentinel.title,
                kind="sentinel",
                illustrative=sentinel.illustrative,
                status="crossed" if raised else "ok",
                raised=raised,
                awaiting_decision=monitor.awaiting_decision(sentinel.id),
                last_decision=_decision(monitor, sentinel.id),
            )
        )
    if monitor.reporting is not None:
        clocks = [
            ReportClockOut(
                ae_id=str(c.ae_id),
                site_id=c.site_id,
                aware_at=c.opened_at,
                due=c.due,
                fatal_or_life_threatening=c.severe,
                state=c.state.value,
                stage=c.stage,
                reason=c.reason,
            )
            for c in monitor.clocks.values()
        ]
        states = {c.state for c in monitor.clocks.values()}
        overdue, pending = ClockState.OVERDUE in states, ClockState.OPEN in states
        reporting = monitor.reporting
        out.append(
            RuleStatus(
                rule_id=reporting.id,
                title=reporting.title,
                kind="expedited_report",
                illustrative=reporting.illustrative,
                status="crossed" if overdue else "approached" if pending else "ok",
                clocks=clocks,
            )
        )
    return out
