"""Exact binomial statistics, standard library only.

Clopper & Pearson (1934), Biometrika 26:404-413: the exact two-sided interval for a binomial
proportion, here found by bisection on the binomial tail probabilities (no beta quantiles
needed), accurate to 1e-10.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def binomial_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0 if k == 0 else 0.0
    if p >= 1.0:
        return 1.0 if k == n else 0.0
    log = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    return math.exp(log)


def binomial_cdf(x: int, n: int, p: float) -> float:
    """P(X <= x) for X ~ Binomial(n, p)."""
    if x < 0:
        return 0.0
    if x >= n:
        return 1.0
    return min(1.0, sum(binomial_pmf(k, n, p) for k in range(x + 1)))


def _bisect(f: Callable[[float], float], target: float, increasing: bool) -> float:
    low, high = 0.0, 1.0
    for _ in range(100):
        middle = (low + high) / 2
        value = f(middle)
        if (value < target) == increasing:
            low = middle
        else:
            high = middle
        if high - low < 1e-12:
            break
    return (low + high) / 2


def clopper_pearson(x: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval for x successes in n trials (``(0, 1)`` when n = 0)."""
    if n == 0:
        return 0.0, 1.0
    if not 0 <= x <= n:
        raise ValueError(f"need 0 <= x <= n, got x={x}, n={n}")
    alpha = 1.0 - level
    # lower: P(X >= x | p) = alpha/2, increasing in p; upper: P(X <= x | p) = alpha/2, decreasing
    lower = (
        0.0
        if x == 0
        else _bisect(lambda p: 1.0 - binomial_cdf(x - 1, n, p), alpha / 2, increasing=True)
    )
    upper = 1.0 if x == n else _bisect(lambda p: binomial_cdf(x, n, p), alpha / 2, increasing=False)
    return lower, upper


def poisson_cdf(x: int, mean: float) -> float:
    """P(X <= x) for X ~ Poisson(mean), summed in log space (no overflow for large x)."""
    if x < 0:
        return 0.0
    if mean <= 0.0:
        return 1.0
    log_mean = math.log(mean)
    return min(1.0, sum(math.exp(k * log_mean - mean - math.lgamma(k + 1)) for k in range(x + 1)))


def _bisect_mean(
    f: Callable[[float], float], target: float, increasing: bool, high: float
) -> float:
    low = 0.0
    for _ in range(200):
        middle = (low + high) / 2
        if (f(middle) < target) == increasing:
            low = middle
        else:
            high = middle
        if high - low < 1e-10 * max(1.0, high):
            break
    return (low + high) / 2


def poisson_exact(x: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval for the mean of a Poisson count ``x`` (Garwood 1936,
    Biometrika 28:437-442): the lower limit is the mean at which P(X >= x) = alpha/2, the upper
    the mean at which P(X <= x) = alpha/2, i.e. chi2(alpha/2; 2x)/2 and chi2(1 - alpha/2;
    2x + 2)/2. Found by bisection on the Poisson tails (no chi-square quantiles needed);
    x = 0 gives (0, -ln(alpha/2)), 3.689 at 95 %. Divide by the time at risk for a rate."""
    if x < 0:
        raise ValueError(f"need a count x >= 0, got x={x}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"need 0 < level < 1, got level={level}")
    alpha = 1.0 - level
    high = 10.0 * (x + 10.0)  # far above any upper limit at these levels
    lower = (
        0.0
        if x == 0
        else _bisect_mean(lambda m: 1.0 - poisson_cdf(x - 1, m), alpha / 2, True, high)
    )
    upper = _bisect_mean(lambda m: poisson_cdf(x, m), alpha / 2, False, high)
    return lower, upper
