"""Exposure and dose intensity, and exposure-adjusted incidence rates with exact Poisson CIs:
the interval against published values, the figures of the hand-built trial worked out by
hand, and a simulated trial recomputed from the raw stored events with direct loops."""

from __future__ import annotations

import json
import math
import statistics
import uuid
from collections.abc import Callable
from datetime import date
from functools import partial
from typing import Any

import pytest
from dmc_hand_trial import day, hand_trial
from dmc_recount import MODALITIES, Raw, RawAe, RawPatient, fold_raw, treatment_emergent
from test_dmc_tables import stored_simulation
from test_read_snapshot import ADMIN, submit

from safety_stream.plan import AesiGroup
from safety_stream.review.dataset import ReviewData
from safety_stream.review.dmc import dmc_table
from safety_stream.runtime import build_memory_runtime, default_plan
from safety_stream.stats import poisson_exact

# -- Garwood's exact Poisson interval ---------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "low", "high"),
    [
        # chi2(0.025; 2x)/2 and chi2(0.975; 2x + 2)/2 (e.g. Ulm 1990, Am J Epidemiol 131:373;
        # R: poisson.test(x)$conf.int)
        (0, 0.0, 3.688879),
        (1, 0.025318, 5.571643),
        (2, 0.242209, 7.224688),
        (3, 0.618672, 8.767273),
        (5, 1.623486, 11.668332),
        (10, 4.795389, 18.390356),
        (100, 81.363991, 121.626794),
    ],
)
def test_poisson_exact_against_known_values(x: int, low: float, high: float) -> None:
    found_low, found_high = poisson_exact(x)
    assert found_low == pytest.approx(low, abs=2e-6)
    assert found_high == pytest.approx(high, abs=2e-6)


def test_poisson_exact_zero_is_minus_log_alpha_half_and_other_levels() -> None:
    assert poisson_exact(0)[1] == pytest.approx(-math.log(0.025), abs=1e-8)
    assert poisson_exact(0, level=0.90)[1] == pytest.approx(-math.log(0.05), abs=1e-8)
    low, high = poisson_exact(4, level=0.90)
    assert low == pytest.approx(1.366318, abs=2e-6)  # chi2(0.05; 8)/2
    assert high == pytest.approx(9.153519, abs=2e-6)  # chi2(0.95; 10)/2
    with pytest.raises(ValueError, match="x >= 0"):
        poisson_exact(-1)
    with pytest.raises(ValueError, match="0 < level < 1"):
        poisson_exact(3, level=1.0)


# -- the hand-built trial -------------------------------------------------------------------


@pytest.fixture(scope="module")
def hand_data() -> ReviewData:
    runtime = build_memory_runtime()
    submit(runtime, hand_trial())
    data: ReviewData = runtime.review.read(ADMIN, lambda d: d)
    return data


def test_exposure_by_hand(hand_data: ReviewData) -> None:
    table = dmc_table("exposure", hand_data, default_plan(), day(90), True)
    rows = {(r[0], r[1]): r[2:] for r in table.rows}
    # patients, total, median, minimum, maximum
    assert rows == {
        ("radiotherapy", "Patients planned"): (5, None, None, None, None),
        ("radiotherapy", "Patients exposed"): (2, None, None, None, None),  # P1, P4
        ("radiotherapy", "Fractions delivered"): (2, 8.0, 4.0, 3.0, 5.0),  # 5 and 3
        ("radiotherapy", "Fractions planned"): (2, 10.0, 5.0, 5.0, 5.0),
        ("radiotherapy", "Patients with every planned fraction"): (1, None, None, None, None),
        ("radiotherapy", "Dose delivered (Gy)"): (2, 74.0, 37.0, 24.0, 50.0),  # 5x10, 3x8
        ("radiotherapy", "Time on treatment (days)"): (2, 8.0, 4.0, 3.0, 5.0),
        ("chemotherapy", "Patients planned"): (5, None, None, None, None),
        ("chemotherapy", "Patients exposed"): (3, None, None, None, None),  # P1, P3, P4
        ("chemotherapy", "Cycles started"): (3, 5.0, 1.0, 1.0, 3.0),
        # P1: cycle 2 14 days after cycle 1 (on time), cycle 3 21 days after cycle 2 (> 17)
        ("chemotherapy", "Delayed cycles"): (3, 1.0, 0.0, 0.0, 1.0),
        ("chemotherapy", "Patients with a delayed cycle"): (1, None, None, None, None),
        ("chemotherapy", "Cycles with a dose reduction"): (3, 1.0, 0.0, 0.0, 1.0),
        ("chemotherapy", "Patients with a dose reduction"): (1, None, None, None, None),
        ("chemotherapy", "Time on treatment (days)"): (3, 38.0, 1.0, 1.0, 36.0),  # days 1-36
        ("immunotherapy", "Patients planned"): (5, None, None, None, None),
        ("immunotherapy", "Patients exposed"): (3, None, None, None, None),  # P1, P2, P4
        ("immunotherapy", "Doses"): (3, 5.0, 2.0, 1.0, 2.0),
        ("immunotherapy", "Cumulative dose (mg)"): (3, 1160.0, 480.0, 200.0, 480.0),
        ("immunotherapy", "Time on treatment (days)"): (3, 50.0, 22.0, 1.0, 27.0),
        ("any", "Patients exposed"): (4, None, None, None, None),
        ("any", "Time on treatment (days)"): (4, 65.0, 14.0, 1.0, 36.0),  # 36, 1, 1, 27
    }


def test_incidence_rates_by_hand(hand_data: ReviewData) -> None:
    table = dmc_table("incidence-rates", hand_data, default_plan(), day(90), True)
    rows = {r[0]: r[1:] for r in table.rows}
    month = 365.25 / 12
    # any AE: dosed patients at risk from the first dose to the first onset, death, exit or day
    # 90, both days counted: P1 day 1 -> 5 (5 days, event), P2 2 -> 30 (29, event), P3 3 ->
    # withdrawn 20 (18), P4 4 -> 50 (47, event); P5 never dosed: no time at risk. 99 days
    months = 99 / month
    low, high = 0.618672, 8.767273  # Garwood, x = 3
    events, pm, rate, ci_low, ci_high = rows["Any AE"]
    assert (events, pm) == (3, round(months, 2))
    assert rate == pytest.approx(300 / months, abs=1e-3)
    assert ci_low == pytest.approx(100 * low / months, abs=1e-3)
    assert ci_high == pytest.approx(100 * high / months, abs=1e-3)
    # serious: P2 day 30, P4 day 50; P1 at risk from day 1 to day 90 (90 days)
    assert rows["Serious AE"][:2] == (2, round((90 + 29 + 18 + 47) / month, 2))
    # radiotherapy-related grade >= 3: P4 only (day 4 -> 50); the others to their exit or day 90
    assert rows["Radiotherapy-related grade >= 3 AE"][:2] == (
        1, round((90 + 89 + 18 + 47) / month, 2),
    )  # fmt: skip
    # no event: rate 0, upper limit 3.689 / patient-months
    colitis = rows["AESI colitis: Immune-related colitis and diarrhoea"]
    total = (90 + 89 + 18 + 49) / month  # P4 to its death on day 52
    assert colitis[:4] == (0, round(total, 2), 0.0, 0.0)
    assert colitis[4] == pytest.approx(368.8879 / total, abs=1e-3)
    assert "counting both ends" in table.footnote


def test_a_patient_dosed_on_the_as_of_date_is_at_risk_one_day(hand_data: ReviewData) -> None:
    # at day 1, only P1 is dosed (day 1): 1 day at risk, no event yet
    rows = {r[0]: r[1:] for r in dmc_table("incidence-rates", hand_data, default_plan(), day(1),
                                             True).rows}  # fmt: skip
    assert rows["Any AE"][:2] == (0, round(1 / (365.25 / 12), 2))


def test_follow_up_ends_at_the_death_even_when_a_later_exit_record_says_otherwise() -> None:
    """A withdrawal dated after the death and stored after it (ingest refuses that today, but
    the fold must not trust it: older logs, corrections): P4 still stops at its death."""
    runtime = build_memory_runtime()
    submit(runtime, hand_trial())
    events = list(runtime.store.read())
    runtime.close()
    withdrawal = next(json.loads(e.payload) for e in events if "patient.withdrawn" in e.payload)
    withdrawal.update(
        patient_id="P4", site_id="S2", event_id=str(uuid.uuid4()), reason="consent_withdrawn",
        occurred_at=f"{day(60).isoformat()}T00:00:00+00:00",
    )  # fmt: skip
    rows = [(e.position, e.payload, e.stored_at, e.chain_hash) for e in events]
    last = events[-1]
    rows.append((last.position + 1, json.dumps(withdrawal), last.stored_at, last.chain_hash))
    data = ReviewData()
    data.fold_payloads(rows)
    found = data.patient("P4")
    assert found is not None and found[1].exit is not None and found[1].exit.on == day(60)
    table = dmc_table("incidence-rates", data, default_plan(), day(90), True)
    colitis = {r[0]: r[1:] for r in table.rows}[
        "AESI colitis: Immune-related colitis and diarrhoea"
    ]
    assert colitis[:2] == (0, round((90 + 89 + 18 + 49) / (365.25 / 12), 2))  # P4 to day 52


# -- a simulated trial, recomputed from the raw events ----------------------------------------


Simulated = tuple[ReviewData, Raw, date]


@pytest.fixture(scope="module")
def simulated() -> Simulated:
    events = stored_simulation(seed=11, patients=50)
    data = ReviewData()
    data.fold_payloads((e.position, e.payload, e.stored_at, e.chain_hash) for e in events)
    return data, fold_raw(events), events[-1].stored_at.date()


def _summary(values: list[float]) -> tuple[object, ...]:
    if not values:
        return (0, None, None, None, None)
    return (
        len(values), round(sum(values), 2), round(statistics.median(values), 2),
        round(min(values), 2), round(max(values), 2),
    )  # fmt: skip


def _expected_exposure(raw: Raw) -> dict[tuple[str, str], tuple[object, ...]]:
    out: dict[tuple[str, str], tuple[object, ...]] = {}
    none = (None, None, None, None)

    def given(p: RawPatient, modality: str | None) -> list[dict[str, Any]]:
        return [d for d in p.doses if modality is None or d["modality"] == modality]

    def days(doses: list[dict[str, Any]]) -> float:
        on = [d["on"] for d in doses]
        return float((max(on) - min(on)).days + 1)

    for modality in MODALITIES:
        treated = [g for p in raw.patients.values() if (g := given(p, modality))]
        planned = sum(1 for p in raw.patients.values() if modality in p.planned)
        out[(modality, "Patients planned")] = (planned, *none)
        out[(modality, "Patients exposed")] = (len(treated), *none)
        out[(modality, "Time on treatment (days)")] = _summary([days(g) for g in treated])
        if modality == "radiotherapy":
            fractions = [float(len({d["fraction"] for d in g})) for g in treated]
            out[(modality, "Fractions delivered")] = _summary(fractions)
            out[(modality, "Fractions planned")] = _summary(
                [float(g[-1]["fractions_planned"]) for g in treated]
            )
            out[(modality, "Dose delivered (Gy)")] = _summary(
                [sum(float(d["dose_gy"]) for d in g) for g in treated]
            )
            out[(modality, "Patients with every planned fraction")] = (
                sum(
                    1
                    for g in treated
                    if len({d["fraction"] for d in g}) >= g[-1]["fractions_planned"]
                ),
                *none,
            )
        elif modality == "chemotherapy":
            cycles, delays, reduced = [], [], []
            for g in treated:
                start: dict[int, date] = {}
                for d in g:
                    c = int(d["cycle"])
                    start[c] = min(start.get(c, d["on"]), d["on"])
                cycles.append(float(len(start)))
                delays.append(
                    float(
                        sum(
                            1
                            for c in start
                            if c + 1 in start and (start[c + 1] - start[c]).days > 17
                        )
                    )
                )
                reduced.append(float(len({d["cycle"] for d in g if d.get("dose_reduced")})))
            out[(modality, "Cycles started")] = _summary(cycles)
            out[(modality, "Delayed cycles")] = _summary(delays)
            out[(modality, "Patients with a delayed cycle")] = (sum(1 for x in delays if x), *none)
            out[(modality, "Cycles with a dose reduction")] = _summary(reduced)
            out[(modality, "Patients with a dose reduction")] = (
                sum(1 for x in reduced if x),
                *none,
            )
        else:
            out[(modality, "Doses")] = _summary([float(len(g)) for g in treated])
            out[(modality, "Cumulative dose (mg)")] = _summary(
                [sum(float(d["dose_mg"]) for d in g) for g in treated]
            )
    treated = [g for p in raw.patients.values() if (g := given(p, None))]
    out[("any", "Patients exposed")] = (len(treated), *none)
    out[("any", "Time on treatment (days)")] = _summary([days(g) for g in treated])
    return out


def test_simulated_exposure_recounted(simulated: Simulated) -> None:
    data, raw, as_of = simulated
    table = dmc_table("exposure", data, default_plan(), as_of, True)
    assert {(r[0], r[1]): r[2:] for r in table.rows} == _expected_exposure(raw)
    assert len(table.rows) == len(_expected_exposure(raw))


def _severe_related(modality: str, ae: RawAe) -> bool:
    return ae.worst >= 3 and ae.related(modality)


def _in_group(group: AesiGroup, ae: RawAe) -> bool:
    if group.immune_related is not None and ae.immune != group.immune_related:
        return False
    return ae.term in group.terms or ae.soc in group.socs


def test_simulated_rates_recounted(simulated: Simulated) -> None:
    data, raw, as_of = simulated
    plan = default_plan()
    table = dmc_table("incidence-rates", data, plan, as_of, True)
    checks: dict[str, Callable[[RawAe], bool]] = {
        "Any AE": lambda a: True,
        "Grade >= 3 AE": lambda a: a.worst >= 3,
        "Serious AE": lambda a: bool(a.seriousness),
        "Related grade >= 3 AE": lambda a: a.worst >= 3 and a.related(),
    }
    for m in MODALITIES:
        checks[f"{m.capitalize()}-related grade >= 3 AE"] = partial(_severe_related, m)
    for name, group in plan.aesi.items():
        checks[f"AESI {name}: {group.title}"] = partial(_in_group, group)
    assert [r[0] for r in table.rows] == list(checks)
    month = 365.25 / 12
    for row in table.rows:
        check = checks[str(row[0])]
        first: dict[str, date] = {}
        for ae in treatment_emergent(raw):
            if check(ae) and (ae.patient not in first or ae.onset < first[ae.patient]):
                first[ae.patient] = ae.onset
        events = days = 0
        for p in raw.patients.values():
            if not p.doses:
                continue  # never dosed: no time at risk
            start = min(d["on"] for d in p.doses)
            stop = as_of
            if p.exit is not None:
                stop = min(stop, p.exit[1])
            if p.death is not None:
                stop = min(stop, p.death[0])
            if p.patient in first and first[p.patient] <= stop:
                events += 1
                stop = first[p.patient]
            days += max(0, (stop - start).days + 1)
        months = days / month
        low, high = poisson_exact(events)
        assert row[1:] == (
            events, round(months, 2), round(100 * events / months, 3),
            round(100 * low / months, 3), round(100 * high / months, 3),
        ), row[0]  # fmt: skip
    assert any(r[1] for r in table.rows)
    # the as-of date matters: at an earlier date fewer patients and less time
    earlier = dmc_table("incidence-rates", data, plan, date(2025, 3, 31), True)
    earlier_months, months_now = earlier.rows[0][2], table.rows[0][2]
    assert isinstance(earlier_months, float) and isinstance(months_now, float)
    assert earlier_months < months_now
