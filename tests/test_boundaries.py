"""Boundaries and operating characteristics, checked against values computed independently here."""

from __future__ import annotations

import itertools
import json
import math
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safety_stream.boundaries import (
    _BAYES_BOUNDS,
    bayes_boundary,
    bayes_table,
    beta_cdf,
    crossing,
    pocock_table,
    posterior_above,
    stops,
)
from safety_stream.cli import main


def exact_binomial_cdf(x: int, n: int, p: Fraction) -> Fraction:
    return sum(
        (Fraction(math.comb(n, k)) * p**k * (1 - p) ** (n - k) for k in range(x + 1)), Fraction(0)
    )


def exact_tail(x: int, n: int, p: Fraction) -> Fraction:
    return 1 - exact_binomial_cdf(x - 1, n, p)


@pytest.mark.parametrize("theta", [0.1, 0.2, 0.3, 0.5, 0.75])
def test_uniform_prior_posterior_equals_the_binomial_closed_form(theta: float) -> None:
    # Beta(1, 1) prior: P(p > theta | x, n) = P(Binomial(n + 1, theta) <= x)
    for n in range(0, 31):
        for x in range(n + 1):
            expected = float(exact_binomial_cdf(x, n + 1, Fraction(theta)))
            assert posterior_above(theta, x, n, (1, 1)) == pytest.approx(expected, abs=1e-12)


def test_beta_cdf_with_a_non_integer_prior_matches_numerical_integration() -> None:
    def integrate(x: float, a: float, b: float, steps: int = 200_000) -> float:
        # midpoint rule after s = t^a, which removes the singularity of t^(a-1) at 0:
        # the integral of t^(a-1) (1-t)^(b-1) over [0, x] is that of (1 - s^(1/a))^(b-1) / a
        # over [0, x^a]
        upper = x**a
        h = upper / steps
        total = 0.0
        for i in range(steps):
            s = (i + 0.5) * h
            total += (1.0 - s ** (1.0 / a)) ** (b - 1.0) / a
        normaliser = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))
        return float(total * h * normaliser)

    for a, b, x in [(0.3, 1.7, 0.15), (0.3 + 2, 1.7 + 5, 0.15), (0.5, 1.5, 0.25), (1.2, 8.8, 0.6)]:
        assert beta_cdf(x, a, b) == pytest.approx(integrate(x, a, b), abs=2e-6)


def test_bayes_boundary_is_the_least_x_that_stops_by_the_closed_form() -> None:
    theta, cutoff = 0.30, 0.90
    table = bayes_table(40, theta, cutoff, (1.0, 1.0))
    for n, bound in zip(table.looks, table.stop_if_at_least, strict=True):
        exact = [
            exact_binomial_cdf(x, n + 1, Fraction(theta)) > Fraction(cutoff) for x in range(n + 1)
        ]
        assert bound == (exact.index(True) if True in exact else None)
    assert table.looks[0] == 1 and table.looks[-1] == 40


@pytest.mark.parametrize(
    ("theta", "cutoff", "prior"),
    [
        (0.31, 0.9, (1.0, 1.0)),
        (0.5, 0.75, (1.0, 1.0)),
        (0.17, 0.8, (0.5, 2.5)),
        (0.2, 0.95, (2, 8)),
    ],
)
def test_bayes_boundary_equals_a_scan_from_zero_in_any_order(
    theta: float, cutoff: float, prior: tuple[float, float]
) -> None:
    # the search starts at the boundary one patient below, when it is known: the same least x
    # as scanning every x, whether the n are met in order (as a monitor meets them) or not
    def scanned(n: int) -> int | None:
        return next((x for x in range(n + 1) if stops(theta, cutoff, x, n, prior)), None)

    expected = {n: scanned(n) for n in range(1, 241)}
    orders = [sorted(expected), random.Random(7).sample(sorted(expected), len(expected))]
    for order in orders:
        _BAYES_BOUNDS.pop((theta, cutoff, prior), None)
        assert {n: bayes_boundary(n, theta, cutoff, prior) for n in order} == expected
    assert expected[240] is not None and expected[1] in (None, 1)


def test_a_posterior_exactly_at_the_cutoff_does_not_stop() -> None:
    # theta 0.5, Beta(1, 1), 1 of 1: P(p > 0.5) = P(Bin(2, 0.5) <= 1) = 0.75 exactly
    assert bayes_table(2, 0.5, 0.75, (1.0, 1.0)).stop_if_at_least[0] is None
    assert bayes_table(2, 0.5, 0.7499, (1.0, 1.0)).stop_if_at_least[0] == 1


def test_minimum_n_starts_the_table_and_nothing_stops_before_it() -> None:
    table = bayes_table(20, 0.3, 0.9, (1.0, 1.0), min_n=5)
    assert table.looks == tuple(range(5, 21))
    assert table.at(4) is None and table.at(5) == table.stop_if_at_least[0]
    assert table.at(35) == table.stop_if_at_least[-1]  # beyond the plan: last boundary holds


def brute_force(
    looks: tuple[int, ...], bounds: tuple[int | None, ...], p: Fraction
) -> tuple[Fraction, Fraction, Fraction]:
    """Every one of the 2^N outcome sequences, walked look by look."""
    last = looks[-1]
    bound_at = dict(zip(looks, bounds, strict=True))
    stop = early = expected = Fraction(0)
    for outcome in itertools.product((0, 1), repeat=last):
        weight = Fraction(1)
        for event in outcome:
            weight *= p if event else 1 - p
        stopped_at = last
        for n in range(1, last + 1):
            bound = bound_at.get(n)
            if bound is not None and sum(outcome[:n]) >= bound:
                stopped_at = n
                stop += weight
                early += weight if n < last else 0
                break
        expected += weight * stopped_at
    return stop, early, expected


@pytest.mark.parametrize(
    ("looks", "bounds"),
    [
        (tuple(range(1, 11)), (None, 2, 2, 3, 3, 3, 4, 4, 4, 5)),
        ((3, 6, 9, 12), (2, 3, 4, 4)),
        (tuple(range(4, 13)), (3, None, 3, 4, 4, 5, 5, 5, 6)),
    ],
)
@pytest.mark.parametrize("p", ["1/10", "1/4", "2/5"])
def test_crossing_recursion_equals_brute_force_enumeration(
    looks: tuple[int, ...], bounds: tuple[int | None, ...], p: str
) -> None:
    stop, early, expected = brute_force(looks, bounds, Fraction(p))
    point = crossing(looks, bounds, float(Fraction(p)))
    assert point.p_stop == pytest.approx(float(stop), abs=1e-12)
    assert point.p_stop_early == pytest.approx(float(early), abs=1e-12)
    assert point.expected_n == pytest.approx(float(expected), abs=1e-9)


@pytest.mark.parametrize(
    ("n", "p0", "alpha", "looks"),
    [(40, 0.20, 0.10, None), (12, 0.10, 0.10, None), (40, 0.05, 0.10, (10, 20, 30, 40)),
     (30, 0.30, 0.05, None)],
)  # fmt: skip
def test_pocock_level_is_the_largest_whose_crossing_stays_under_alpha(
    n: int, p0: float, alpha: float, looks: tuple[int, ...] | None
) -> None:
    table = pocock_table(n, p0, alpha, looks)
    level = table.nominal_level
    assert level is not None
    p = Fraction(p0)
    # every boundary is the least x whose exact tail under p0 is within the common level
    for look, bound in zip(table.looks, table.stop_if_at_least, strict=True):
        tails = [float(exact_tail(x, look, p)) for x in range(look + 1)]
        fitting = [x for x, tail in enumerate(tails) if tail <= level * (1 + 1e-12)]
        assert bound == (fitting[0] if fitting else None)
    achieved = table.operating_characteristics(p0).p_stop
    assert achieved <= alpha
    # the next larger level (the smallest tail probability above it) would cross alpha
    all_tails = sorted({float(exact_tail(x, k, p)) for k in table.looks for x in range(1, k + 1)})
    above = [t for t in all_tails if t > level * (1 + 1e-9)]
    looser = []
    for k in table.looks:
        fits = [x for x in range(k + 1) if float(exact_tail(x, k, p)) <= above[0]]
        looser.append(fits[0] if fits else None)
    assert crossing(table.looks, tuple(looser), p0).p_stop > alpha


def test_pocock_power_under_p1_exceeds_the_crossing_under_p0() -> None:
    table = pocock_table(40, 0.20, 0.10)
    under_p0 = table.operating_characteristics(0.20)
    under_p1 = table.operating_characteristics(0.35)
    assert under_p0.p_stop <= 0.10 < under_p1.p_stop
    assert under_p1.expected_n < under_p0.expected_n <= 40


@settings(max_examples=40, deadline=None)
@given(p=st.floats(0.01, 0.6), q=st.floats(0.01, 0.6))
def test_crossing_probability_rises_with_the_true_rate(p: float, q: float) -> None:
    table = bayes_table(25, 0.3, 0.85, (0.5, 1.5), min_n=3)
    low, high = sorted((p, q))
    assert (
        table.operating_characteristics(low).p_stop
        <= table.operating_characteristics(high).p_stop + 1e-12
    )


def test_boundaries_command_prints_json_in_the_documented_shape(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["boundaries", "bayes", "--n", "40", "--theta", "0.30", "--cutoff", "0.90",
                 "--prior", "1,1", "--oc", "0.1,0.2,0.3,0.4", "--json"])  # fmt: skip
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["method"] == "bayesian"
    assert document["looks"] == list(range(1, 41))
    assert document["stop_if_at_least"] == list(
        bayes_table(40, 0.3, 0.9, (1.0, 1.0)).stop_if_at_least
    )
    assert [p["p"] for p in document["operating_characteristics"]] == [0.1, 0.2, 0.3, 0.4]
    assert set(document["operating_characteristics"][0]) == {
        "p",
        "p_stop",
        "p_stop_early",
        "expected_n",
    }

    code = main(["boundaries", "pocock", "--n", "40", "--p0", "0.20", "--p1", "0.35",
                 "--alpha", "0.10", "--looks", "10,20,30,40", "--json"])  # fmt: skip
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["looks"] == [10, 20, 30, 40]
    assert [p["p"] for p in document["operating_characteristics"]] == [0.20, 0.35]
    assert document["operating_characteristics"][0]["p_stop"] <= 0.10


def test_boundaries_command_prints_a_readable_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["boundaries", "pocock", "--n", "20", "--p0", "0.2", "--p1", "0.4", "--alpha", "0.1"])
        == 0
    )
    out = capsys.readouterr().out
    assert "stop if at least" in out and "P(stop)" in out
    assert main(["boundaries", "bayes", "--n", "0", "--theta", "0.3", "--cutoff", "0.9"]) == 2
    assert "--n" in capsys.readouterr().err
