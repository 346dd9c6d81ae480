"""Every rule of the plan as a report shows it: its state, what it means, and its plot.

Counting rules get a plain-language statement of their stopping criterion, population and
what is counted (so a DSMB member need not open the plan file) and the boundary plot with the
observed (n, x) path. Sentinels list the AEs that raised them, in the closed report only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from safety_stream.monitoring.counting import CountState
from safety_stream.monitoring.matching import counts_by_term
from safety_stream.monitoring.status import RuleStatus
from safety_stream.plan import (
    BayesianRule,
    EventFilter,
    LabSentinelRule,
    MonitoringPlan,
    Population,
    SentinelRule,
)
from safety_stream.plots import boundary_plot
from safety_stream.report.snapshot import Snapshot


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class CountingRuleView(_Out):
    status: RuleStatus
    method: str
    criterion: str
    population: str
    counts: str
    plot: str  # inline <svg>, built by safety_stream.plots (escaped, deterministic)


class SentinelAe(_Out):
    """What raised a sentinel: an AE, or (lab sentinels) a patient's labs."""

    patient_id: str
    site_id: str
    ctcae_term: str | None  # None: raised by labs
    grade: int | None
    onset_date: date | None
    raised_at: datetime | None


class SentinelView(_Out):
    status: RuleStatus
    criterion: str
    raised: list[SentinelAe] | None  # None in the open report


def percent(value: float) -> str:
    return f"{value * 100:g}%"


def _population(plan: MonitoringPlan, population: Population) -> str:
    who = (
        "patients exposed to any study treatment"
        if population.exposed_to == "any"
        else f"patients exposed to {population.exposed_to}"
    )
    if population.window is None:
        return who
    window = plan.windows[population.window]
    anchor = {
        "enrolment": "enrolment",
        "first_exposure": f"the first {window.modality} administration",
        "last_exposure": f"the last {window.modality} administration",
    }[window.anchor]
    return (
        f"{who}, evaluable once followed {window.days} days after {anchor} "
        f"(window {population.window})"
    )


def describe_filter(plan: MonitoringPlan, counts: EventFilter) -> str:
    """What a rule counts, in words (composites are judged on their own definition, without
    the attribution filter, as the monitor does)."""
    parts = [plan.composites[c].title for c in counts.composites]
    if counts_by_term(counts):
        what = f"an AE of grade >= {counts.min_grade}"
        if counts.terms:
            what += f" ({', '.join(counts.terms)})"
        if counts.socs:
            what += f" in {', '.join(counts.socs)}"
        related = (
            "any study treatment"
            if counts.related_to == "any"
            else " or ".join(m.value for m in counts.related_to)
        )
        what += f", attributed at least '{counts.min_attribution}' to {related}"
        if counts.immune_related is not None:
            what += ", immune-related" if counts.immune_related else ", not immune-related"
        parts.append(what)
    return " or ".join(parts)


def _counting(plan: MonitoringPlan, counter: CountState, status: RuleStatus) -> CountingRuleView:
    rule = counter.rule
    if isinstance(rule, BayesianRule):
        method = "Bayesian beta-binomial, continuous"
        criterion = (
            f"stop when P(rate > {percent(rule.theta)} | data) > {rule.cutoff:g} under a "
            f"Beta({rule.prior[0]:g}, {rule.prior[1]:g}) prior, from n = {rule.min_n}; "
            f"planned n = {rule.max_n}"
        )
    else:
        method = "Pocock-type boundary (Ivanova, Qaqish & Schell 2005)"
        looks = (
            "after every patient"
            if rule.looks is None
            else "at n = " + ", ".join(str(n) for n in rule.looks)
        )
        criterion = (
            f"acceptable rate p0 = {percent(rule.p0)}, unacceptable p1 = {percent(rule.p1)}; "
            f"P(crossing | p0) = {rule.alpha:g}, common nominal level "
            f"{counter.table.nominal_level or 0:.4f}; looks {looks}; planned n = {rule.max_n}"
        )
    return CountingRuleView(
        status=status,
        method=method,
        criterion=criterion,
        population=_population(plan, rule.population),
        counts="patients with " + describe_filter(plan, rule.counts),
        plot=boundary_plot(
            counter.table, counter.path, rule.max_n, title=rule.title, status=status.status
        ),
    )


def _raised_at(snapshot: Snapshot, rule_id: str, key: str) -> dict[str, datetime]:
    """When each of a sentinel's raises was derived, by what raised it (``details[key]``)."""
    return {
        str(d.details.get(key)): d.occurred_at
        for d in snapshot.derived
        if d.kind == "sentinel.raised" and d.rule_id == rule_id
    }


def _sentinel(
    snapshot: Snapshot, rule: SentinelRule, status: RuleStatus, closed: bool
) -> SentinelView:
    criterion = "each " + describe_filter(snapshot.monitor.plan, rule.match).removeprefix("an ")
    if not closed:
        return SentinelView(status=status, criterion=criterion, raised=None)
    raised_at = _raised_at(snapshot, rule.id, "ae_id")
    rows = []
    for key in snapshot.monitor.raised[rule.id]:
        ae = snapshot.state.aes.get(UUID(key))
        if ae is None:  # the monitor raises only on AEs the state holds
            continue
        rows.append(
            SentinelAe(
                patient_id=ae.patient_id,
                site_id=ae.site_id,
                ctcae_term=ae.ctcae_term,
                grade=ae.worst,
                onset_date=ae.onset_date,
                raised_at=raised_at.get(key),
            )
        )
    rows.sort(key=lambda r: (r.onset_date, r.patient_id, r.ctcae_term))
    return SentinelView(status=status, criterion=criterion, raised=rows)


def _lab_sentinel(
    snapshot: Snapshot, rule: LabSentinelRule, status: RuleStatus, closed: bool
) -> SentinelView:
    exposed = "" if rule.exposed_to == "any" else f" in patients exposed to {rule.exposed_to}"
    criterion = f"labs: {rule.title}{exposed} ({' '.join(rule.source.split())})"
    if not closed:
        return SentinelView(status=status, criterion=criterion, raised=None)
    raised_at = _raised_at(snapshot, rule.id, "caused_by_event")
    signals = snapshot.monitor.lab_signals
    rows = []
    for cause, patient_id in zip(
        signals.raised[rule.id], signals.raised_patients[rule.id], strict=True
    ):
        patient = snapshot.state.patients.get(patient_id)
        rows.append(
            SentinelAe(
                patient_id=patient_id,
                site_id=patient.site_id if patient is not None else "",
                ctcae_term=None,
                grade=None,
                onset_date=None,
                raised_at=raised_at.get(cause),
            )
        )
    rows.sort(key=lambda r: (r.raised_at or datetime.max.replace(tzinfo=UTC), r.patient_id))
    return SentinelView(status=status, criterion=criterion, raised=rows)


class CrossingRow(_Out):
    """One crossing (or raised sentinel) in the period, with the DSMB's answer to it."""

    rule_id: str
    title: str
    kind: str  # boundary.crossed | sentinel.raised
    at: datetime
    summary: str | None  # None in the open report (a sentinel's summary names its site)
    decision: str  # "no decision yet", or the outcome, who and when


def crossing_rows(snapshot: Snapshot, since: datetime | None, closed: bool) -> list[CrossingRow]:
    """Every crossing and raised sentinel after ``since`` up to the cut-off, each with the
    first DSMB decision on its rule recorded after it."""
    titles = {rule.id: rule.title for rule in snapshot.monitor.plan.rules}
    rows = []
    for derived in snapshot.derived:
        if derived.kind not in ("boundary.crossed", "sentinel.raised"):
            continue
        if since is not None and derived.occurred_at <= since:
            continue
        answer = next(
            (
                d for d in snapshot.monitor.decisions
                if derived.rule_id in d.answers and d.recorded_at >= derived.occurred_at
            ),
            None,
        )  # fmt: skip
        decision = (
            "no decision yet"
            if answer is None
            else f"{str(answer.outcome).replace('_', ' ')} on "
            f"{answer.occurred_at.date().isoformat()} ({answer.decided_by}): {answer.rationale}"
        )
        rows.append(
            CrossingRow(
                rule_id=derived.rule_id,
                title=titles.get(derived.rule_id, derived.rule_id),
                kind=derived.kind,
                at=derived.occurred_at,
                summary=derived.summary if closed else None,
                decision=decision,
            )
        )
    return rows


def rule_views(
    snapshot: Snapshot, statuses: list[RuleStatus], closed: bool
) -> tuple[list[CountingRuleView], list[SentinelView]]:
    """Counting rules and sentinels, in plan order (``statuses`` from ``rule_statuses``)."""
    by_id = {s.rule_id: s for s in statuses}
    plan = snapshot.monitor.plan
    counting = [_counting(plan, c, by_id[c.rule.id]) for c in snapshot.monitor.counting]
    sentinels = [
        _sentinel(snapshot, rule, by_id[rule.id], closed) for rule in snapshot.monitor.sentinels
    ] + [
        _lab_sentinel(snapshot, rule, by_id[rule.id], closed)
        for rule in snapshot.monitor.lab_signals.rules
    ]
    return counting, sentinels
