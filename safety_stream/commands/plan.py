"""``safety-stream plan check PLAN.yaml``: validate a monitoring plan and summarise its rules."""

from __future__ import annotations

from pathlib import Path

from safety_stream.monitoring.boundaries import BoundaryTable
from safety_stream.monitoring.counting import table_for
from safety_stream.plan import (
    BayesianRule,
    ExpeditedReportRule,
    MonitoringPlan,
    PocockRule,
    Rule,
    SentinelRule,
    load_plan,
)


def describe(plan: MonitoringPlan) -> list[str]:
    lines = [
        f"plan for {plan.trial.id} ({plan.trial.registration}), version {plan.version}",
        f"planned enrolment {plan.trial.planned_enrolment}; related = "
        f"{plan.related_means_at_least.value} or stronger",
        "windows: "
        + ", ".join(
            f"{name} ({w.days} d after {w.anchor.replace('_', ' ')}"
            + (f" of {w.modality.value})" if w.modality else ")")
            for name, w in plan.windows.items()
        ),
        "composites: " + ", ".join(plan.composites) if plan.composites else "composites: none",
        f"{len(plan.rules)} rules:",
    ]
    for rule in plan.rules:
        flag = "  [ILLUSTRATIVE thresholds]" if rule.illustrative else ""
        lines.append(f"  {rule.id:<28} {rule.kind:<17} {rule.title}{flag}")
        lines += [f"      {line}" for line in _rule_detail(rule)]
    return lines


def _ranges(table: BoundaryTable) -> str:
    """Looks grouped by boundary: '5-6: 3, 7-9: 4, ...' ('-' where nothing can stop)."""
    parts: list[str] = []
    start = previous = None
    for look, bound in zip(table.looks, table.stop_if_at_least, strict=True):
        if parts and previous == bound and start is not None:
            parts[-1] = f"{start}-{look}: {'-' if bound is None else bound}"
        else:
            start = look
            parts.append(f"{look}: {'-' if bound is None else bound}")
        previous = bound
    return ", ".join(parts)


def _rule_detail(rule: Rule) -> list[str]:
    if isinstance(rule, BayesianRule | PocockRule):
        table = table_for(rule)
        counted = rule.counts
        what = ", ".join(counted.composites) or ", ".join(counted.terms + counted.socs) or "any AE"
        related = (
            counted.related_to
            if counted.related_to == "any"
            else "/".join(m.value for m in counted.related_to)
        )
        lines = [
            f"population: exposed to {rule.population.exposed_to}"
            + (f", evaluable over {rule.population.window}" if rule.population.window else ""),
            f"counts: patients with {what}"
            + (
                ""
                if counted.composites and not (counted.terms or counted.socs)
                else f", grade >= {counted.min_grade}, "
                f"{counted.min_attribution.value} or stronger to {related}"
            ),
            f"stop if at least (by n): {_ranges(table)}",
        ]
        rates = [rule.theta] if isinstance(rule, BayesianRule) else [rule.p0, rule.p1]
        if table.nominal_level is not None:
            lines.append(f"common nominal level {table.nominal_level:.5f}")
        for p in rates:
            point = table.operating_characteristics(p)
            lines.append(
                f"at p = {p:.2f}: P(stop) {point.p_stop:.3f}, before n = {rule.max_n} "
                f"{point.p_stop_early:.3f}, E[N] {point.expected_n:.1f}"
            )
        return lines
    if isinstance(rule, SentinelRule):
        match = rule.match
        terms = ", ".join(match.terms) or "any term"
        return [f"raises on any single AE: {terms}, grade >= {match.min_grade}"]
    assert isinstance(rule, ExpeditedReportRule)
    return [
        f"serious, unexpected, {rule.min_attribution.value}-or-stronger related AEs: report in "
        f"{rule.fatal_or_life_threatening_days} days if fatal or life-threatening, else "
        f"{rule.other_serious_days}"
    ]


def run(path: Path) -> int:
    plan = load_plan(path)  # a PlanError lists every problem (exit status 2)
    print("\n".join(describe(plan)))
    return 0
