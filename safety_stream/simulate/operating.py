"""Operating characteristics of a plan's rules as the monitor runs them, by simulation.

Each simulated trial accrues patients uniformly over ``accrual_days``; each patient is treated
on a fixed schedule (chemotherapy and the PD-1 antibody from day 7, the last SBRT fraction on
day 64), may leave follow-up at a uniform time in the window (``dropout``), and has the rule's
counted event with probability ``rate`` at a uniform time in the window (early and late alike;
not seen if they left before it). The events go through the same validation, projection and
monitor as on the server (``monitoring.dryrun.fold``) and the clock then runs past every
window. A rule "stops" when it crosses within its planned maximum n.

``simulate_rule`` isolates one rule (a plan with that rule alone) at one true rate;
``simulate_plan`` runs every counting rule at once, each at its own rate, and asks whether any
rule stops (the whole plan's false-stop probability or power).
"""

from __future__ import annotations

import json
import random
import statistics
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from safety_stream.ctcae import ctcae_dictionary
from safety_stream.monitoring.counting import CountingRule
from safety_stream.monitoring.dryrun import fold
from safety_stream.plan import (
    AdverseEventMatch,
    AllOf,
    AnyOf,
    BayesianRule,
    Condition,
    LabAboveUln,
    MonitoringPlan,
    NoneOf,
    PocockRule,
)
from safety_stream.validation.records import RawRecord

T0 = datetime(2026, 1, 5, tzinfo=UTC)
FIRST_DOSE_DAY = 7  # chemotherapy and the PD-1 antibody
SBRT_DAY = 64  # the fifth and last fraction
DEFAULT_TERM = ("Diarrhea", 10012727)


@dataclass(frozen=True)
class OcSettings:
    trials: int = 2000
    accrual_days: int = 240
    dropout: float = 0.0
    seed: int = 1
    patients: int | None = None  # default: the plan's planned enrolment
    workers: int = 1


@dataclass
class Outcome:
    """What the simulated trials of one scenario did."""

    trials: int = 0
    stops: int = 0
    stops_early: int = 0  # before the last planned look
    stop_n: list[int] = field(default_factory=list)
    stop_day: list[float] = field(default_factory=list)
    reported_rates: list[float] = field(default_factory=list)  # x / n at the end

    @property
    def p_stop(self) -> float:
        return self.stops / self.trials if self.trials else 0.0

    @property
    def p_stop_early(self) -> float:
        return self.stops_early / self.trials if self.trials else 0.0

    @property
    def median_n(self) -> float | None:
        return statistics.median(self.stop_n) if self.stop_n else None

    @property
    def median_day(self) -> float | None:
        return statistics.median(self.stop_day) if self.stop_day else None

    @property
    def mean_reported_rate(self) -> float | None:
        return statistics.fmean(self.reported_rates) if self.reported_rates else None

    def merge(self, other: Outcome) -> None:
        self.trials += other.trials
        self.stops += other.stops
        self.stops_early += other.stops_early
        self.stop_n += other.stop_n
        self.stop_day += other.stop_day
        self.reported_rates += other.reported_rates


def counting_rules(plan: MonitoringPlan) -> list[CountingRule]:
    return [r for r in plan.rules if isinstance(r, BayesianRule | PocockRule)]


def rule_rates(rule: CountingRule) -> tuple[float | None, float]:
    """(expected, unacceptable) true rates of a rule, as its plan states them."""
    if isinstance(rule, PocockRule):
        return rule.p0, rule.p1
    return rule.expected_rate, rule.unacceptable_rate or rule.theta


# -- one simulated trial ---------------------------------------------------------------------


class _History:
    """Wire-format events of one simulated trial, sorted by time when done."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.events: list[tuple[datetime, int, dict[str, Any]]] = []

    def add(self, kind: str, patient: str, day: float, **fields: Any) -> str:
        moment = T0 + timedelta(days=day)
        stamp = moment.isoformat().replace("+00:00", "Z")
        event_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        document = {
            "event_type": kind, "schema_version": 1, "event_id": event_id,
            "trial_id": "SIM", "site_id": "SIM-01", "patient_id": patient,
            "reporter": "simulation", "occurred_at": stamp, "recorded_at": stamp, **fields,
        }  # fmt: skip
        self.events.append((moment, len(self.events), document))
        return event_id

    def records(self) -> Iterator[RawRecord]:
        for _, number, document in sorted(self.events, key=lambda e: (e[0], e[1])):
            yield RawRecord(f"event {number}", b"", value=document, parsed=True)


_TREATMENTS = {
    "chemotherapy": {"modality": "chemotherapy", "regimen": "FOLFOX", "cycle": 1},
    "immunotherapy": {"modality": "immunotherapy", "agent": "PD-1 antibody", "dose_mg": 240,
                      "cycle": 1},
}  # fmt: skip


def _treat(history: _History, patient: str, enrolled: float, modality: str) -> None:
    if modality == "radiotherapy":  # the last fraction anchors the window (one event for five)
        treatment = {"modality": "radiotherapy", "technique": "SBRT", "fraction": 5,
                     "fractions_planned": 5, "dose_gy": 10, "target": "liver"}  # fmt: skip
        history.add("treatment.administered", patient, enrolled + SBRT_DAY, treatment=treatment)
    else:
        history.add("treatment.administered", patient, enrolled + FIRST_DOSE_DAY,
                    treatment=_TREATMENTS[modality])  # fmt: skip


def _window_days(plan: MonitoringPlan, rule: CountingRule) -> tuple[float, float]:
    """(start, end) of the rule's window in days after enrolment on the fixed schedule."""
    if rule.population.window is None:
        exposed = str(rule.population.exposed_to)
        first = SBRT_DAY if exposed == "radiotherapy" else FIRST_DOSE_DAY
        return first, first + 90
    window = plan.windows[rule.population.window]
    if window.anchor == "enrolment":
        return 0.0, float(window.days)
    modality = str(window.modality)
    first = SBRT_DAY if modality == "radiotherapy" else FIRST_DOSE_DAY
    return float(first), float(first + window.days)  # one administration: first = last


def _modalities(plan: MonitoringPlan, rules: Sequence[CountingRule]) -> set[str]:
    needed: set[str] = set()
    for rule in rules:
        exposed = str(rule.population.exposed_to)
        needed.add("chemotherapy" if exposed == "any" else exposed)
        if rule.population.window is not None:
            window = plan.windows[rule.population.window]
            if window.modality is not None:
                needed.add(str(window.modality))
    return needed


def _lab_above(condition: Condition) -> LabAboveUln | None:
    if isinstance(condition, LabAboveUln):
        return condition
    if isinstance(condition, AnyOf):
        return next((c for c in map(_lab_above, condition.any_of) if c is not None), None)
    if isinstance(condition, AllOf):  # one lab condition and exclusions: the lab makes it hold
        kept = [c for c in condition.all_of if not isinstance(c, NoneOf)]
        return _lab_above(kept[0]) if len(kept) == 1 else None
    return None


def _counted_event(
    history: _History, plan: MonitoringPlan, rule: CountingRule, patient: str, day: float
) -> None:
    """An event the rule counts: a lab that makes its composite hold, or a matching AE."""
    for name in rule.counts.composites:
        lab = _lab_above(plan.composites[name].when)
        if lab is not None:
            history.add("lab.resulted", patient, day, test=str(lab.lab), unit="U/L", uln=40.0,
                        value=round(40.0 * (lab.above_uln + 1.0), 1))  # fmt: skip
            return
        if isinstance(plan.composites[name].when, AdverseEventMatch | AllOf):
            break  # an AE-only composite: fall through to a matching AE
    ctcae = ctcae_dictionary()
    names = list(rule.counts.terms)
    if not names and rule.counts.socs:
        names = [t.term for t in ctcae.terms.values() if t.soc in rule.counts.socs]
    term = ctcae.lookup(names[0]) if names else ctcae.lookup(DEFAULT_TERM[0])
    assert term is not None
    # the least grade the rule counts (a death only where the rule asks for one)
    grade = min(g for g in term.grades if g >= min(rule.counts.min_grade, max(term.grades)))
    related = rule.counts.related_to
    modalities = ["chemotherapy"] if related == "any" else [str(m) for m in related]
    attribution = {
        m: ("definite" if m in modalities else "unrelated")
        for m in ("radiotherapy", "chemotherapy", "immunotherapy")
    }
    immune = bool(rule.counts.immune_related)
    onset = (T0 + timedelta(days=day)).date().isoformat()
    history.add(
        "ae.reported", patient, day, ctcae_version="5.0", ctcae_term=term.term,
        meddra_code=term.meddra_code, grade=grade, onset_date=onset,
        seriousness=["death"] if grade == 5 else [], expectedness="expected",
        immune_related=immune, attribution=attribution, action_taken="dose_not_changed",
        **({"verbatim_term": term.term} if term.needs_verbatim else {}),
    )  # fmt: skip


def simulated_trial(
    plan: MonitoringPlan,
    rates: dict[str, float],
    settings: OcSettings,
    rng: random.Random,
) -> tuple[list[RawRecord], datetime]:
    """One trial's events (as records, in time order) and a time past every window."""
    watched = counting_rules(plan)
    rules = [r for r in watched if r.id in rates]
    patients = settings.patients or plan.trial.planned_enrolment
    history = _History(rng)
    modalities = sorted(_modalities(plan, watched))
    spans = {rule.id: _window_days(plan, rule) for rule in watched}
    longest = max(end for _, end in spans.values())
    latest = 0.0
    for number, enrolled in enumerate(
        sorted(rng.uniform(0, settings.accrual_days) for _ in range(patients)), 1
    ):
        patient = f"SIM-{number:04d}"
        consent = (T0 + timedelta(days=enrolled)).date().isoformat()
        planned = ["chemotherapy", "immunotherapy", "radiotherapy"]
        history.add(
            "patient.enrolled", patient, enrolled, consent_date=consent, planned_modalities=planned
        )
        for modality in modalities:
            _treat(history, patient, enrolled, modality)
        latest = max(latest, enrolled + longest)
        left = None
        if rng.random() < settings.dropout:
            left = enrolled + rng.uniform(0, longest)
            history.add("patient.withdrawn", patient, left, reason="consent_withdrawn")
        for rule in rules:
            start, end = spans[rule.id]
            if rng.random() < rates[rule.id]:
                day = enrolled + rng.uniform(start, end)
                if left is None or day <= left:
                    _counted_event(history, plan, rule, patient, day)
    return list(history.records()), T0 + timedelta(days=latest + 1)


def _one_trial(
    plan: MonitoringPlan, rates: dict[str, float], settings: OcSettings, seed: int
) -> dict[str, tuple[bool, bool, int | None, float | None, float | None]]:
    """Per rule: (stopped, stopped early, stopping n, stopping day, reported rate)."""
    records, end = simulated_trial(plan, rates, settings, random.Random(seed))
    folded = fold(plan, records, now=end)
    if folded.rejected:
        raise AssertionError(f"a simulated event was rejected: {folded.problems[:3]}")
    out: dict[str, tuple[bool, bool, int | None, float | None, float | None]] = {}
    for counter in folded.monitor.counting:
        rule = counter.rule
        at = counter.crossed_at
        stopped = at is not None and at <= rule.max_n
        day = None
        seen = counter.crossing_time()  # with timely data: when the crossing look completed
        if stopped and seen is not None:
            day = (seen - T0).total_seconds() / 86400
        rate = counter.x / counter.n if counter.n else None
        early = stopped and at is not None and at < counter.table.looks[-1]
        out[rule.id] = (stopped, early, at if stopped else None, day, rate)
    return out


def _batch(
    args: tuple[str, dict[str, float], OcSettings, list[int], bool],
) -> dict[str, Outcome]:
    plan_json, rates, settings, seeds, any_rule = args
    plan = MonitoringPlan.model_validate(json.loads(plan_json))
    outcomes: dict[str, Outcome] = {rule.id: Outcome() for rule in counting_rules(plan)}
    outcomes["(any rule)"] = Outcome()
    for seed in seeds:
        results = _one_trial(plan, rates, settings, seed)
        first: tuple[float, int, bool] | None = None  # the first rule to stop: day, n, early
        for rule_id, (stopped, early, n, day, rate) in results.items():
            outcome = outcomes[rule_id]
            outcome.trials += 1
            if rate is not None:
                outcome.reported_rates.append(rate)
            if stopped:
                assert n is not None and day is not None
                outcome.stops += 1
                outcome.stops_early += early
                outcome.stop_n.append(n)
                outcome.stop_day.append(day)
                first = min(first, (day, n, early)) if first is not None else (day, n, early)
        whole = outcomes["(any rule)"]
        whole.trials += 1
        if first is not None:
            whole.stops += 1
            whole.stops_early += first[2]
            whole.stop_day.append(first[0])
            whole.stop_n.append(first[1])
    if not any_rule:
        del outcomes["(any rule)"]
    return outcomes


Deferred = Callable[[], dict[str, Outcome]]


def _start(
    plan: MonitoringPlan,
    rates: dict[str, float],
    settings: OcSettings,
    any_rule: bool,
    pool: Executor | None,
) -> Deferred:
    """Queue the trials of one scenario on ``pool`` (None: run them now); the result when
    called. Small chunks keep every worker busy until all queued scenarios are done."""
    seeder = random.Random(settings.seed)
    seeds = [seeder.getrandbits(63) for _ in range(settings.trials)]
    plan_json = plan.model_dump_json()
    pieces = 1 if pool is None else settings.workers * 4
    chunks = [seeds[i::pieces] for i in range(pieces)]
    jobs = [(plan_json, rates, settings, chunk, any_rule) for chunk in chunks if chunk]
    if pool is None:
        parts = [_batch(job) for job in jobs]
        return lambda: _merged(parts)
    futures = [pool.submit(_batch, job) for job in jobs]
    return lambda: _merged(f.result() for f in futures)


def _merged(parts: Iterable[dict[str, Outcome]]) -> dict[str, Outcome]:
    merged: dict[str, Outcome] = {}
    for part in parts:
        for key, outcome in part.items():
            merged.setdefault(key, Outcome()).merge(outcome)
    return merged


def _run(
    plan: MonitoringPlan, rates: dict[str, float], settings: OcSettings, any_rule: bool
) -> dict[str, Outcome]:
    if settings.workers == 1:
        return _start(plan, rates, settings, any_rule, None)()
    with ProcessPoolExecutor(settings.workers) as pool:
        return _start(plan, rates, settings, any_rule, pool)()


def only_rule(plan: MonitoringPlan, rule_id: str) -> MonitoringPlan:
    """The plan with one counting rule and nothing else to monitor."""
    kept = [r for r in plan.rules if r.id == rule_id]
    return plan.model_copy(update={"rules": kept})


def simulate_rule(plan: MonitoringPlan, rule_id: str, rate: float, settings: OcSettings) -> Outcome:
    """One rule alone, every patient having its counted event with probability ``rate``."""
    return _run(only_rule(plan, rule_id), {rule_id: rate}, settings, any_rule=False)[rule_id]


def start_rule(
    plan: MonitoringPlan, rule_id: str, rate: float, settings: OcSettings, pool: Executor | None
) -> Callable[[], Outcome]:
    """``simulate_rule`` queued on ``pool``; call the result to wait for it."""
    pending = _start(only_rule(plan, rule_id), {rule_id: rate}, settings, False, pool)
    return lambda: pending()[rule_id]


def start_plan(
    plan: MonitoringPlan, rates: dict[str, float], settings: OcSettings, pool: Executor | None
) -> Deferred:
    """``simulate_plan`` queued on ``pool``; call the result to wait for it."""
    return _start(plan, rates, settings, True, pool)


def simulate_plan(
    plan: MonitoringPlan, rates: dict[str, float], settings: OcSettings
) -> dict[str, Outcome]:
    """Every counting rule of the plan watched at once; events drawn for the rules in
    ``rates`` (a rule left out, such as one counting any modality, sees the others' events);
    "(any rule)" is the whole plan: the first rule to stop."""
    return _run(plan, rates, settings, any_rule=True)
