"""Stopping rules keep their stated operating characteristics as the monitor runs them.

Trials are generated here, independently of ``safety_stream.simulate.operating``: patients
enrol at staggered times, every counted event falls early or late in the window, some patients
leave early. Each trial goes through the real validation, projection and monitor
(``monitoring.dryrun.fold``). Modest, seeded numbers of trials; the tolerance is the Monte-Carlo
error (3.5 standard errors), so a biased monitor (the old one stopped a safe trial 76 % of the
time where the plan promised 2 %) fails by a wide margin.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from conftest import REPO

from safety_stream.monitoring.counting import table_for
from safety_stream.monitoring.dryrun import fold
from safety_stream.plan import MonitoringPlan, parse_plan
from safety_stream.simulate.operating import OcSettings, simulate_rule
from safety_stream.validation.records import RawRecord

BASE = yaml.safe_load((REPO / "deploy" / "plans" / "sparkle-l.yaml").read_text())
START = datetime(2027, 3, 1, tzinfo=UTC)
WINDOW_DAYS = 56  # chemo_first_4_cycles, from the first chemotherapy
TRIALS = 300
PATIENTS = 30

BAYES: dict[str, Any] = {
    "id": "r", "title": "rule", "kind": "bayesian", "illustrative": True,
    "population": {"exposed_to": "chemotherapy", "window": "chemo_first_4_cycles"},
    "counts": {"min_grade": 3, "related_to": ["chemotherapy"]},
    "prior": [0.5, 0.5], "theta": 0.35, "cutoff": 0.80, "min_n": 5, "max_n": PATIENTS,
    "expected_rate": 0.20,
}  # fmt: skip
POCOCK: dict[str, Any] = {
    "id": "r", "title": "rule", "kind": "pocock", "illustrative": True,
    "population": {"exposed_to": "chemotherapy", "window": "chemo_first_4_cycles"},
    "counts": {"min_grade": 3, "related_to": ["chemotherapy"]},
    "p0": 0.15, "p1": 0.40, "alpha": 0.10, "max_n": PATIENTS,
}  # fmt: skip


def plan_of(rule: dict[str, Any]) -> MonitoringPlan:
    return parse_plan(yaml.safe_dump({**BASE, "rules": [rule]}))


def trial_records(
    rng: random.Random, rate: float, dropout: float, patients: int = PATIENTS
) -> tuple[list[RawRecord], datetime]:
    """One trial: enrolment over 200 days; chemotherapy 3-10 days later; the counted event
    (probability ``rate``) in the first or the last quarter of the window, equally often; a
    share ``dropout`` leaves at a uniform time in the window (an event after that is unseen)."""
    events: list[tuple[datetime, dict[str, Any]]] = []

    def add(kind: str, patient: str, moment: datetime, **fields: Any) -> None:
        stamp = moment.isoformat().replace("+00:00", "Z")
        events.append((moment, {
            "event_type": kind, "schema_version": 1,
            "event_id": str(uuid_of(rng)), "trial_id": "OC", "site_id": "OC-1",
            "patient_id": patient, "reporter": "test", "occurred_at": stamp,
            "recorded_at": stamp, **fields,
        }))  # fmt: skip

    end = START
    for number in range(patients):
        patient = f"OC-{number:03d}"
        enrolled = START + timedelta(days=rng.uniform(0, 200))
        add("patient.enrolled", patient, enrolled, consent_date=enrolled.date().isoformat(),
            planned_modalities=["chemotherapy"])  # fmt: skip
        dosed = enrolled + timedelta(days=rng.uniform(3, 10))
        add("treatment.administered", patient, dosed,
            treatment={"modality": "chemotherapy", "regimen": "FOLFOX", "cycle": 1})  # fmt: skip
        window_end = dosed + timedelta(days=WINDOW_DAYS)
        end = max(end, window_end)
        left = None
        if rng.random() < dropout:
            left = dosed + timedelta(days=rng.uniform(0, WINDOW_DAYS))
            add("patient.withdrawn", patient, left, reason="other")
        if rng.random() < rate:
            quarter = rng.choice((0.0, 0.75))  # early or late in the window
            onset = dosed + timedelta(days=WINDOW_DAYS * (quarter + rng.uniform(0, 0.25)))
            if left is None or onset <= left:
                add("ae.reported", patient, onset, ctcae_version="5.0",
                    ctcae_term="Neutrophil count decreased", meddra_code=10029366, grade=3,
                    onset_date=onset.date().isoformat(), seriousness=[],
                    expectedness="expected", immune_related=False,
                    attribution={"radiotherapy": "unrelated", "chemotherapy": "probable",
                                 "immunotherapy": "unrelated"},
                    action_taken="dose_not_changed")  # fmt: skip
    events.sort(key=lambda e: e[0])
    records = [
        RawRecord(f"event {i}", b"", value=doc, parsed=True) for i, (_, doc) in enumerate(events)
    ]
    return records, end + timedelta(days=1)


def uuid_of(rng: random.Random) -> str:
    import uuid

    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def run_trials(plan: MonitoringPlan, rate: float, dropout: float, seed: int) -> tuple[float, float]:
    """(share of trials stopped within max_n, mean reported rate x / n at the end)."""
    rng = random.Random(seed)
    stops, rates = 0, []
    for _ in range(TRIALS):
        records, end = trial_records(rng, rate, dropout)
        folded = fold(plan, records, now=end)
        assert folded.rejected == 0, folded.problems[:3]
        counter = folded.monitor.counting[0]
        stops += counter.crossed_at is not None and counter.crossed_at <= counter.rule.max_n
        if counter.n:
            rates.append(counter.x / counter.n)
    return stops / TRIALS, sum(rates) / len(rates)


def tolerance(p: float, trials: int = TRIALS) -> float:
    return 3.5 * math.sqrt(max(p * (1 - p), 0.01) / trials)


@pytest.mark.parametrize(("rule", "rate"), [(BAYES, 0.20), (POCOCK, 0.15)])
def test_whole_patient_rules_stop_as_often_as_their_exact_oc_says(
    rule: dict[str, Any], rate: float
) -> None:
    plan = plan_of(rule)
    exact = table_for(plan.rules[0]).operating_characteristics(rate).p_stop  # type: ignore[arg-type]
    realised, reported = run_trials(plan, rate, dropout=0.0, seed=11)
    assert abs(realised - exact) <= tolerance(exact), (realised, exact)
    assert abs(reported - rate) <= 0.02


def test_time_weighted_rules_stop_as_often_as_the_oc_simulation_says() -> None:
    rule = {**BAYES, "population": {**BAYES["population"], "evaluability": "time_weighted"}}
    plan = plan_of(rule)
    realised, _ = run_trials(plan, 0.20, dropout=0.0, seed=12)
    stated = simulate_rule(
        plan, "r", 0.20, OcSettings(trials=TRIALS, accrual_days=200, seed=5, patients=PATIENTS)
    ).p_stop
    both = math.sqrt(tolerance(stated) ** 2 + tolerance(realised) ** 2)
    assert abs(realised - stated) <= both, (realised, stated)


@pytest.mark.parametrize(
    ("rule", "evaluability"),
    [(BAYES, "completed"), (BAYES, "time_weighted"), (POCOCK, "completed")],
)
def test_drop_out_does_not_hide_toxicity(rule: dict[str, Any], evaluability: str) -> None:
    """30 % of patients leave early; the mean reported rate is not below the true rate."""
    rule = {**rule, "population": {**rule["population"], "evaluability": evaluability}}
    _, reported = run_trials(plan_of(rule), 0.40, dropout=0.30, seed=13)
    assert reported >= 0.40 - 0.02, reported


def test_the_old_outcome_driven_evaluability_would_fail_these_tests() -> None:
    """The check has teeth: counting a patient as soon as they have the event (the old way)
    makes a safe trial stop far more often than the exact OC."""
    plan = plan_of(BAYES)
    exact = table_for(plan.rules[0]).operating_characteristics(0.20).p_stop  # type: ignore[arg-type]
    rng = random.Random(11)
    stops = 0
    for _ in range(TRIALS):
        records, _ = trial_records(rng, 0.20, 0.0)
        order: list[tuple[datetime, bool]] = []  # (when evaluable, counted), the old way
        dosed: dict[str, datetime] = {}
        counted: dict[str, datetime] = {}
        for record in records:
            doc = record.value
            moment = datetime.fromisoformat(doc["occurred_at"].replace("Z", "+00:00"))
            if doc["event_type"] == "treatment.administered":
                dosed[doc["patient_id"]] = moment
            elif doc["event_type"] == "ae.reported":
                counted[doc["patient_id"]] = moment
        for patient, when in dosed.items():
            at = counted.get(patient, when + timedelta(days=WINDOW_DAYS))
            order.append((at, patient in counted))
        order.sort()
        table = table_for(plan.rules[0])  # type: ignore[arg-type]
        x = 0
        for n, (_, event) in enumerate(order, 1):
            x += event
            bound = table.at(n) if n in table.looks else None
            if bound is not None and x >= bound:
                stops += 1
                break
    assert stops / TRIALS > exact + 2 * tolerance(exact), (stops / TRIALS, exact)
