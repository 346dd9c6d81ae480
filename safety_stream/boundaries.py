"""Stopping boundaries for continuous toxicity monitoring, with exact operating characteristics.

Two families, both "stop when x counted patients out of n evaluable reach b_n":

- Bayesian beta-binomial: prior Beta(a, b); stop at n when P(p > theta | x, n) > cutoff
  (strictly), from a minimum n on. b_n is the least such x.
- Pocock-type (Ivanova, Qaqish & Schell 2005, Biometrics 61:540-545): one nominal level a* at
  every look, b_n = the least x with P(Binomial(n, p0) >= x) <= a*; a* is the largest level whose
  probability of crossing at any look under p0 stays at or below the target alpha.

Crossing probabilities are computed exactly by recursion over the number of events among the
paths that have not stopped yet (never by simulation). Standard library only.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache

from safety_stream.stats import binomial_pmf


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    p: float
    p_stop: float  # crossing at any look, the last included
    p_stop_early: float  # crossing before the last look
    expected_n: float  # a stop at look n counts n patients; no stop counts the maximum


@dataclass(frozen=True, slots=True)
class BoundaryTable:
    method: str  # "bayesian" | "pocock"
    looks: tuple[int, ...]
    stop_if_at_least: tuple[int | None, ...]  # per look; None: no x can stop there
    nominal_level: float | None = None  # pocock: the common level a*
    parameters: tuple[tuple[str, object], ...] = ()

    def at(self, n: int) -> int | None:
        """The boundary in force with ``n`` evaluable patients: that of the last look reached.

        Before the first look nothing can stop; between group-sequential looks, and beyond the
        planned maximum, the boundary of the last look reached stays in force.
        """
        index = bisect_right(self.looks, n) - 1
        return None if index < 0 else self.stop_if_at_least[index]

    def operating_characteristics(self, p: float) -> OperatingPoint:
        return crossing(self.looks, self.stop_if_at_least, p)

    def as_json(self, oc: list[float]) -> dict[str, object]:
        return {
            "method": self.method,
            **{key: value for key, value in self.parameters},
            "looks": list(self.looks),
            "stop_if_at_least": list(self.stop_if_at_least),
            **({"nominal_level": self.nominal_level} if self.nominal_level is not None else {}),
            "operating_characteristics": [
                {
                    "p": point.p,
                    "p_stop": point.p_stop,
                    "p_stop_early": point.p_stop_early,
                    "expected_n": point.expected_n,
                }
                for point in (self.operating_characteristics(p) for p in oc)
            ],
        }


# -- exact crossing probabilities ----------------------------------------------------------------


def crossing(looks: tuple[int, ...], bounds: tuple[int | None, ...], p: float) -> OperatingPoint:
    """P(stop), P(stop before the last look) and E[N] when every patient has the event w.p. p."""
    alive = [1.0]  # alive[x]: P(x events so far and no stop yet)
    bound_at = dict(zip(looks, bounds, strict=True))
    last = looks[-1]
    stopped = stopped_early = expected = 0.0
    q = 1.0 - p
    for n in range(1, last + 1):
        # alive only holds the counts that have not stopped: never more than the last bound
        grown = [0.0] * (len(alive) + 1)
        for x, mass in enumerate(alive):
            if mass:
                grown[x] += mass * q
                grown[x + 1] += mass * p
        alive = grown
        bound = bound_at.get(n)
        if bound is not None and bound < len(alive):
            mass = math.fsum(alive[bound:])
            del alive[bound:]
            stopped += mass
            expected += n * mass
            if n < last:
                stopped_early += mass
    expected += last * (1.0 - stopped)
    return OperatingPoint(p, min(stopped, 1.0), min(stopped_early, 1.0), expected)


# -- Bayesian beta-binomial ------------------------------------------------------------------------


def _continued_fraction(x: float, a: float, b: float) -> float:
    """Lentz's evaluation of the continued fraction of the incomplete beta function."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < eps:
            return result
    raise ArithmeticError(f"incomplete beta did not converge for x={x}, a={a}, b={b}")


def beta_cdf(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b) = P(Beta(a, b) <= x)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _continued_fraction(x, a, b) / a
    return 1.0 - front * _continued_fraction(1.0 - x, b, a) / b


def posterior_above(theta: float, x: float, n: float, prior: tuple[float, float]) -> float:
    """P(p > theta | x events in n patients) under a Beta(prior) prior (n may be a sum of
    time-weights)."""
    return 1.0 - beta_cdf(theta, prior[0] + x, prior[1] + n - x)


# "Strictly above the cutoff" with a guard against rounding: a posterior that equals the cutoff
# in exact arithmetic (e.g. 0.75 at theta 0.5, x = n = 1, Beta(1, 1)) must not stop because the
# floating-point evaluation came out 1e-16 higher.
TIE_GUARD = 1e-12


def stops(theta: float, cutoff: float, x: float, n: float, prior: tuple[float, float]) -> bool:
    return posterior_above(theta, x, n, prior) > cutoff + TIE_GUARD


_BAYES_BOUNDS: dict[tuple[float, float, tuple[float, float]], dict[int, int | None]] = {}


def bayes_boundary(n: int, theta: float, cutoff: float, prior: tuple[float, float]) -> int | None:
    """The least x that stops at n (the same rule at any n, also past the planned maximum)."""
    known = _BAYES_BOUNDS.setdefault((theta, cutoff, prior), {})
    if n in known:
        return known[n]
    # The posterior rises with x, so the first x that stops is the boundary. It falls with n
    # (one more patient without the event), so nothing below the boundary at n - 1 stops at n:
    # the search starts there, and takes one or two steps, not b_n + 1 (a monitor meets each
    # n past the planned maximum for the first time while it runs, and once took seconds).
    start = known.get(n - 1) or 0
    found = next((x for x in range(start, n + 1) if stops(theta, cutoff, x, n, prior)), None)
    known[n] = found
    return found


@cache
def bayes_table(
    max_n: int, theta: float, cutoff: float, prior: tuple[float, float], min_n: int = 1
) -> BoundaryTable:
    looks = tuple(range(min_n, max_n + 1))
    bounds = [bayes_boundary(n, theta, cutoff, prior) for n in looks]
    return BoundaryTable(
        "bayesian",
        looks,
        tuple(bounds),
        parameters=(
            ("n", max_n),
            ("theta", theta),
            ("cutoff", cutoff),
            ("prior", list(prior)),
            ("min_n", min_n),
        ),
    )


# -- Pocock-type (Ivanova, Qaqish & Schell 2005) ---------------------------------------------------


def _upper_tails(n: int, p: float) -> list[float]:
    """P(Binomial(n, p) >= x) for x = 0..n+1, summed from the top (O(n), no cancellation)."""
    pmf = [binomial_pmf(k, n, p) for k in range(n + 1)]
    tails = [0.0] * (n + 2)
    for k in range(n, -1, -1):
        tails[k] = tails[k + 1] + pmf[k]
    return tails


def _bounds_at_level(
    tails: dict[int, list[float]], looks: tuple[int, ...], level: float
) -> tuple[int | None, ...]:
    """Per look, the least x with P(Binomial(n, p0) >= x) <= level (tails decrease in x)."""
    bounds: list[int | None] = []
    for n in looks:
        tail = tails[n]
        low, high = 0, n + 1  # tail[high] = 0 <= level always; find the first x that fits
        while low < high:
            middle = (low + high) // 2
            if tail[middle] <= level:
                high = middle
            else:
                low = middle + 1
        bounds.append(low if low <= n else None)
    return tuple(bounds)


@cache
def pocock_table(
    max_n: int, p0: float, alpha: float, looks: tuple[int, ...] | None = None
) -> BoundaryTable:
    """The Pocock-type boundary whose crossing probability under p0 is the largest <= alpha.

    The tails are computed once per look (O(N^2) in all); the level is found by bisection over
    the distinct tail values, each step one exact crossing recursion (O(N^2)): O(N^2 log N).
    """
    looks = looks or tuple(range(1, max_n + 1))
    tails = {n: _upper_tails(n, p0) for n in looks}
    # Only the tail probabilities themselves change the boundary, so the candidate levels are
    # exactly those values; the crossing probability never decreases as the level rises.
    candidates = sorted({tails[n][x] for n in looks for x in range(1, n + 1)})
    low, high = -1, len(candidates)  # invariant: candidates[low] fits (or none), [high] does not
    while high - low > 1:
        middle = (low + high) // 2
        bounds = _bounds_at_level(tails, looks, candidates[middle])
        if crossing(looks, bounds, p0).p_stop <= alpha:
            low = middle
        else:
            high = middle
    level = candidates[low] if low >= 0 else 0.0
    return BoundaryTable(
        "pocock",
        looks,
        _bounds_at_level(tails, looks, level),
        nominal_level=level,
        parameters=(("n", max_n), ("p0", p0), ("alpha", alpha)),
    )
