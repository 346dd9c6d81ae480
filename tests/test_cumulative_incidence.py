"""The Aalen-Johansen cumulative incidence of the first related grade >= 3 AE, death competing:
the estimator and its delta-method variance against hand-computed cases (one without ties, one
with tied events, competing events and censorings), and the curves of a history posted through
the production path against outcomes worked out by hand from that history."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from liver_histories import AS_OF_DAY, S1, competing_trial
from test_read_snapshot import ADMIN, submit
from trial_builder import NEUTROPENIA, T0

from safety_stream.events import Attribution
from safety_stream.review.cumulative import (
    CENSORED,
    COMPETING,
    EVENT,
    aalen_johansen,
    cumulative_incidence,
    cumulative_incidences,
)
from safety_stream.runtime import build_memory_runtime

AS_OF = (T0 + timedelta(days=AS_OF_DAY)).date()


def test_no_ties_by_hand() -> None:
    # A event at 2, B death at 3, C censored at 4, D event at 5, E censored at 6.
    steps = aalen_johansen([(2, EVENT), (3, COMPETING), (4, CENSORED), (5, EVENT), (6, CENSORED)])
    # t=2: n=5, CIF = 1 * 1/5 = 0.2,           S = 1 * (1 - 1/5) = 0.8
    # t=3: n=4, death: CIF 0.2,                S = 0.8 * (1 - 1/4) = 0.6
    # t=4: n=3, censored: unchanged
    # t=5: n=2, CIF = 0.2 + 0.6 * 1/2 = 0.5,   S = 0.3
    # t=6: n=1, censored
    assert [s.day for s in steps] == [2, 3, 4, 5, 6]
    assert [s.at_risk for s in steps] == [5, 4, 3, 2, 1]
    assert [(s.events, s.competing, s.censored) for s in steps] == [
        (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 0), (0, 0, 1),
    ]  # fmt: skip
    assert [s.cif for s in steps] == pytest.approx([0.2, 0.2, 0.2, 0.5, 0.5])
    # Var at t=2: S(2-)^2 d1 (n - d1) / n^3 = 1 * 1 * 4 / 125 = 0.032 (the binomial 0.2*0.8/5)
    assert steps[0].variance == pytest.approx(0.032)
    # Var at t=5, F(5) = 0.5:
    #   first  = (0.5-0.2)^2 * 1/(5*4) + (0.5-0.2)^2 * 1/(4*3) = 0.0045 + 0.0075 = 0.012
    #   second = 1 * 1*4/5^3 + 0.6^2 * 1*1/2^3 = 0.032 + 0.045 = 0.077
    #   third  = (0.5-0.2) * 1 * 1/5^2 = 0.012
    #   Var = 0.012 + 0.077 - 2 * 0.012 = 0.065
    assert steps[3].variance == pytest.approx(0.065)
    # the log(-log) interval around 0.5: se 0.065^0.5 / (0.5 |ln 0.5|)
    spread = 1.959963984540054 * math.sqrt(0.065) / (0.5 * math.log(2))
    centre = math.log(math.log(2))
    expected = sorted(math.exp(-math.exp(centre + s * spread)) for s in (-1, 1))
    assert (steps[3].ci_low, steps[3].ci_high) == pytest.approx(tuple(expected))
    low, high = steps[3].ci_low, steps[3].ci_high
    assert low is not None and high is not None and low < 0.5 < high


def test_ties_with_competing_events_and_censorings_by_hand() -> None:
    outcomes = [
        (1, EVENT), (1, COMPETING), (1, CENSORED),
        (3, EVENT), (3, EVENT), (3, CENSORED),
        (4, COMPETING), (5, CENSORED),
    ]  # fmt: skip
    steps = aalen_johansen(outcomes)
    # events before censorings at the same time: the censored patients are still at risk
    # t=1: n=8, d1=1, d2=1, c=1: CIF = 1/8 = 0.125;           S = 1 - 2/8 = 0.75
    # t=3: n=5, d1=2, c=1:       CIF = 0.125 + 0.75*2/5 = 0.425; S = 0.75 * 3/5 = 0.45
    # t=4: n=2, d2=1:            CIF 0.425;                   S = 0.225
    # t=5: n=1, censored
    assert [s.at_risk for s in steps] == [8, 5, 2, 1]
    assert [s.cif for s in steps] == pytest.approx([0.125, 0.425, 0.425, 0.425])
    # the competing incidence is 0.125 + 0.45/2 = 0.35, and 0.425 + 0.35 + S(5) = 1
    assert pytest.approx(1.0) == 0.425 + 0.35 + 0.225
    # Var at t=3, F = 0.425:
    #   t=1: first (0.3)^2 * 2/(8*6) = 0.00375; second 1*1*7/512 = 0.013671875;
    #        third 0.3 * 1 * 1/64 = 0.0046875
    #   t=3: first 0; second 0.75^2 * 2*3/125 = 0.027; third 0
    #   Var = 0.00375 + 0.013671875 + 0.027 - 2 * 0.0046875 = 0.035046875
    assert steps[1].variance == pytest.approx(0.035046875)
    assert steps[0].variance == pytest.approx(
        (1 - 0.125) ** 2 * 0 + 1 * 1 * 7 / 512  # at its own time only the second term
    )


def test_without_competing_events_it_is_one_minus_kaplan_meier_with_greenwoods_variance() -> None:
    outcomes = [
        (2, EVENT), (3, CENSORED), (5, EVENT), (5, EVENT), (6, CENSORED),
        (7, EVENT), (9, CENSORED), (9, EVENT),
    ]  # fmt: skip
    survival, greenwood = 1.0, 0.0
    for step in aalen_johansen(outcomes):
        n, d = step.at_risk, step.events
        survival *= 1 - d / n
        if n > d:
            greenwood += d / (n * (n - d))
        assert step.cif == pytest.approx(1 - survival)
        assert step.variance == pytest.approx(survival**2 * greenwood)  # Greenwood (1926)


def test_everyone_failing_at_the_last_time_keeps_the_variance_finite() -> None:
    steps = aalen_johansen([(1, EVENT), (2, EVENT), (2, COMPETING)])
    # t=1: n=3, CIF 1/3, S 2/3; t=2: n=2, d=2 (n = d): CIF = 1/3 + 2/3 * 1/2 = 2/3, S = 0
    assert [s.cif for s in steps] == pytest.approx([1 / 3, 2 / 3])
    assert all(math.isfinite(s.variance) for s in steps)


def test_bad_outcomes_are_refused_with_what_is_allowed() -> None:
    with pytest.raises(ValueError, match=r"kind 0 \(censored\), 1 \(event\) or 2"):
        aalen_johansen([(1, 3)])
    with pytest.raises(ValueError, match="time must be >= 0"):
        aalen_johansen([(-1, EVENT)])


def test_curves_of_a_posted_history_follow_the_hand_computed_outcomes() -> None:
    runtime = build_memory_runtime()
    trial, _ = competing_trial()
    # what the treatment-emergent rule leaves out: PT-1's related grade 3 neutropenia the day
    # before its first dose (day 2), and never-dosed PT-6's on day 5 (PT-6 is in no curve)
    trial.ae("PT-1", 1, *NEUTROPENIA, 3, ct="possible", site=S1)
    trial.ae("PT-6", 5, *NEUTROPENIA, 3, ct="possible", site=S1)
    submit(runtime, trial)
    threshold = runtime.plan.related_means_at_least
    assert threshold == Attribution.POSSIBLE
    data = runtime.review.read(ADMIN, lambda d: d)
    curve = cumulative_incidence(data, threshold, AS_OF)
    # any modality (docstring of competing_trial), dosed patients only (PT-6 never dosed):
    # event at 3, 5, 10, 20; censored at 10; death at 20.
    # t=3:  n=6, CIF 1/6,                      S 5/6
    # t=5:  n=5, CIF 1/6 + 5/6 * 1/5 = 2/6,    S 4/6
    # t=10: n=4, CIF 2/6 + 4/6 * 1/4 = 3/6,    S 3/6 (and PT-5 censored)
    # t=20: n=2, CIF 3/6 + 3/6 * 1/2 = 3/4,    S 0 (PT-7 event, PT-4 death)
    assert (curve.patients, curve.events, curve.competing, curve.censored) == (6, 4, 1, 1)
    assert [(s.day, s.at_risk) for s in curve.steps] == [(3, 6), (5, 5), (10, 4), (20, 2)]
    assert [s.cif for s in curve.steps] == pytest.approx([1 / 6, 2 / 6, 3 / 6, 3 / 4])
    assert curve.at(19) == pytest.approx(3 / 6)
    assert curve.pre_dose == 2

    # related to chemotherapy: PT-2's diarrhoea is the PD-1 antibody's (censored at 39)
    # t=3: n=6, 1/6; t=10: n=5, 1/6 + 5/6 * 1/5 = 2/6 (PT-5 censored); t=20: n=3,
    # 2/6 + 4/6 * 1/3 = 5/9 (PT-7 event, PT-4 death); t=39: censored
    chemo = cumulative_incidence(data, threshold, AS_OF, "chemotherapy")
    assert [s.day for s in chemo.steps] == [3, 10, 20, 39]
    assert [s.cif for s in chemo.steps] == pytest.approx([1 / 6, 2 / 6, 5 / 9, 5 / 9])
    assert (chemo.events, chemo.competing, chemo.censored, chemo.pre_dose) == (3, 1, 2, 2)

    # radiotherapy: no related AE; PT-4 and PT-7 die (competing), the rest censored
    radio = cumulative_incidence(data, threshold, AS_OF, "radiotherapy")
    assert (radio.events, radio.competing, radio.censored, radio.pre_dose) == (0, 2, 4, 0)
    assert radio.at(1000) == 0.0
    labels = [c.label for c in cumulative_incidences(data, threshold, AS_OF)]
    assert labels == ["any study treatment", "radiotherapy", "chemotherapy", "immunotherapy"]

    # a stricter "related" (probable or stronger) keeps only PT-3's nausea
    strict = cumulative_incidence(data, Attribution.PROBABLE, AS_OF)
    assert strict.events == 1 and strict.steps[0].cif == pytest.approx(1 / 6)
    runtime.close()
