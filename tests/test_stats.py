"""Clopper-Pearson intervals against closed forms and the defining tail equations."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import pytest

from safety_stream.stats import binomial_cdf, clopper_pearson


def exact_cdf(x: int, n: int, p: float) -> float:
    q = Fraction(p)
    return float(sum(comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(x + 1)))


@pytest.mark.parametrize("n", [1, 5, 10, 40, 100])
def test_closed_forms_at_the_extremes(n: int) -> None:
    # x = 0: upper = 1 - (alpha/2)^(1/n); x = n: lower = (alpha/2)^(1/n)
    assert clopper_pearson(0, n)[0] == 0.0
    assert clopper_pearson(0, n)[1] == pytest.approx(1 - 0.025 ** (1 / n), abs=1e-9)
    assert clopper_pearson(n, n)[0] == pytest.approx(0.025 ** (1 / n), abs=1e-9)
    assert clopper_pearson(n, n)[1] == 1.0


@pytest.mark.parametrize(("x", "n"), [(1, 10), (3, 40), (5, 10), (12, 37), (50, 100)])
def test_bounds_solve_the_tail_equations(x: int, n: int) -> None:
    low, high = clopper_pearson(x, n)
    assert 1 - exact_cdf(x - 1, n, low) == pytest.approx(0.025, abs=1e-8)
    assert exact_cdf(x, n, high) == pytest.approx(0.025, abs=1e-8)
    assert low < x / n < high


def test_published_example() -> None:
    # 5/10: 0.1871 to 0.8129, as R prints for binom.test(5, 10)$conf.int
    low, high = clopper_pearson(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.1871, 0.8129)


def test_cdf_matches_exact_arithmetic() -> None:
    for n, p in [(20, 0.3), (60, 0.05), (7, 0.9)]:
        for x in range(n + 1):
            assert binomial_cdf(x, n, p) == pytest.approx(exact_cdf(x, n, p), abs=1e-12)


def test_empty_denominator_and_bad_input() -> None:
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="0 <= x <= n"):
        clopper_pearson(3, 2)
