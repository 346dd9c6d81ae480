"""``safety-stream plan check PLAN.yaml``: validate a monitoring plan and summarise its rules."""

from __future__ import annotations

import argparse
from pathlib import Path

from safety_stream.boundaries import BoundaryTable
from safety_stream.monitoring.counting import table_for
from safety_stream.plan import (
    BayesianRule,
    ExpeditedReportRule,
    LabSentinelRule,
    MonitoringPlan,
    PocockRule,
    Rule,
    SentinelRule,
    load_plan,
)
from safety_stream.simulate.operating import rule_rates


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
        expected, unacceptable = rule_rates(rule)
        rates = [p for p in (expected, unacceptable) if p is not None]
        lines.append(
            f"evaluable: {rule.population.evaluability}"
            + (
                " (whole patients once the window has elapsed; the exact OCs below hold)"
                if rule.population.evaluability == "completed"
                else " (TITE weights; OCs by simulation only: --simulate N)"
            )
        )
        if table.nominal_level is not None:
            lines.append(f"common nominal level {table.nominal_level:.5f}")
        for p in rates:
            point = table.operating_characteristics(p)
            lines.append(
                f"at p = {p:.2f}: P(stop) {point.p_stop:.3f}, before n = {rule.max_n} "
                f"{point.p_stop_early:.3f}, E[N] {point.expected_n:.1f}"
            )
        if expected is not None and expected >= unacceptable:
            lines.append(
                f"WARNING: the expected rate {expected:.2f} is not below the unacceptable rate "
                f"{unacceptable:.2f}: a trial as toxic as expected would usually be stopped"
            )
        power = table.operating_characteristics(unacceptable).p_stop
        if power < 0.5:
            lines.append(
                f"WARNING: P(stop) at the unacceptable rate {unacceptable:.2f} is only "
                f"{power:.3f} (< 0.5): the rule would usually miss it"
            )
        return lines
    if isinstance(rule, LabSentinelRule):
        exposed = "" if rule.exposed_to == "any" else f" in patients exposed to {rule.exposed_to}"
        return [f"raises once per patient when its lab condition first holds{exposed}"]
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


def run(path: Path, args: argparse.Namespace | None = None) -> int:
    plan = load_plan(path)  # a PlanError lists every problem (exit status 2)
    as_json = args is not None and args.json and args.simulate is not None
    if not as_json:
        print("\n".join(describe(plan)), flush=True)
    if args is not None and args.simulate is not None:
        from safety_stream.commands import plan_simulate
        from safety_stream.simulate.operating import OcSettings

        settings = OcSettings(
            trials=args.simulate,
            accrual_days=args.accrual_days,
            dropout=args.dropout,
            seed=args.seed,
            workers=args.workers,
        )
        print("\n".join(plan_simulate.run(plan, settings, as_json)))
    return 0
