"""``safety-stream plan check PLAN --simulate N``: operating characteristics as run.

Per rule and for the whole plan, at the expected and at the unacceptable rates the plan states:
the realised probability of stopping within the planned n, of stopping before the last look,
the median n and day of a stop, and the mean reported rate, next to the exact probability
where one exists (whole-patient rules). Rules that count one modality are simulated together
(their events are independent: the whole plan's false-stop probability and power); a rule that
counts any modality is also simulated alone at its own rates.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from safety_stream.monitoring.counting import table_for
from safety_stream.plan import MonitoringPlan
from safety_stream.simulate.operating import (
    OcSettings,
    Outcome,
    counting_rules,
    rule_rates,
    start_plan,
    start_rule,
)

WHOLE_PLAN = "(any rule)"


@dataclass(frozen=True)
class Row:
    rule_id: str
    scenario: str  # expected | unacceptable
    rate: float | None  # None: implied by the other rules' events
    outcome: Outcome
    exact: float | None

    def as_json(self) -> dict[str, Any]:
        o = self.outcome
        return {
            "rule_id": self.rule_id,
            "scenario": self.scenario,
            "rate": self.rate,
            "trials": o.trials,
            "p_stop": o.p_stop,
            "p_stop_exact": self.exact,
            "p_stop_early": o.p_stop_early,
            "median_stop_n": o.median_n,
            "median_stop_day": o.median_day,
            "mean_reported_rate": o.mean_reported_rate,
        }


def simulate_rows(plan: MonitoringPlan, settings: OcSettings) -> list[Row]:
    """Every scenario queued at once on one pool of workers, then the rows in order."""
    if settings.workers == 1:
        return _rows(plan, settings, None)
    with ProcessPoolExecutor(settings.workers) as pool:
        return _rows(plan, settings, pool)


@dataclass(frozen=True)
class _Pending:
    """A row whose outcome is still being simulated."""

    rule_id: str
    scenario: str
    rate: float | None
    outcome: Callable[[], Outcome]
    exact: float | None

    def row(self) -> Row:
        return Row(self.rule_id, self.scenario, self.rate, self.outcome(), self.exact)


def _rows(plan: MonitoringPlan, settings: OcSettings, pool: Executor | None) -> list[Row]:
    rules = counting_rules(plan)
    single = [r for r in rules if not _any_modality(r)]
    pending: list[_Pending] = []
    for index, scenario in enumerate(("expected", "unacceptable")):
        rates = {r.id: rate for r in single if (rate := rule_rates(r)[index]) is not None}
        together = cache(start_plan(plan, rates, settings, pool))
        for rule in rules:
            rate = rates.get(rule.id)
            if _any_modality(rule):
                own = rule_rates(rule)[index]
                if own is not None:
                    alone = start_rule(plan, rule.id, own, settings, pool)
                    pending.append(_Pending(rule.id, scenario, own, alone, _exact(rule, own)))
                others = f"{scenario} (others' events)"
                pending.append(_Pending(rule.id, others, None, _pick(together, rule.id), None))
            elif rate is not None:
                outcome = _pick(together, rule.id)
                pending.append(_Pending(rule.id, scenario, rate, outcome, _exact(rule, rate)))
        pending.append(_Pending(WHOLE_PLAN, scenario, None, _pick(together, WHOLE_PLAN), None))
    return [p.row() for p in pending]


def _pick(deferred: Callable[[], dict[str, Outcome]], key: str) -> Callable[[], Outcome]:
    return lambda: deferred()[key]


def _any_modality(rule: Any) -> bool:
    """A rule counting AEs related to any modality sees the other rules' events too."""
    return bool(rule.counts.related_to == "any" and not rule.counts.composites)


def _exact(rule: Any, rate: float) -> float | None:
    if rule.population.evaluability != "completed":
        return None  # time-weighted: only simulation tells
    return table_for(rule).operating_characteristics(rate).p_stop


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(rows: list[Row], settings: OcSettings, patients: int) -> list[str]:
    lines = [
        f"operating characteristics as the monitor runs the plan: {settings.trials} simulated "
        f"trials per scenario, {patients} patients accrued over {settings.accrual_days} days, "
        f"drop-out {settings.dropout:.0%}, seed {settings.seed}",
        f"  {'rule':<26} {'scenario':<30} {'true p':>6} {'P(stop)':>7} {'exact':>6} "
        f"{'early':>6} {'med n':>6} {'med day':>7} {'x/n':>6}",
    ]
    for row in rows:
        o = row.outcome
        lines.append(
            f"  {row.rule_id:<26} {row.scenario:<30} {_number(row.rate, 2):>6} "
            f"{o.p_stop:>7.3f} {_number(row.exact):>6} {o.p_stop_early:>6.3f} "
            f"{_number(o.median_n, 0):>6} {_number(o.median_day, 0):>7} "
            f"{_number(o.mean_reported_rate):>6}"
        )
    return lines


def run(plan: MonitoringPlan, settings: OcSettings, as_json: bool) -> list[str]:
    workers = max(1, min(settings.workers, os.cpu_count() or 1))
    settings = replace(settings, workers=workers)
    rows = simulate_rows(plan, settings)
    patients = settings.patients or plan.trial.planned_enrolment
    if as_json:
        document = {
            "settings": {
                "trials": settings.trials,
                "patients": patients,
                "accrual_days": settings.accrual_days,
                "dropout": settings.dropout,
                "seed": settings.seed,
            },
            "rows": [row.as_json() for row in rows],
        }
        return [json.dumps(document, indent=2)]
    return render(rows, settings, patients)
