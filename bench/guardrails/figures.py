"""Summary figures: exact binomial confidence bounds and nearest-rank percentiles.

A false-rollback rate of "0 in 1,000" says little without its bound: the exact (Clopper-Pearson)
95% interval is what the target ("under 1%") is checked against. With no failure in `n` runs
its upper end is ``1 - 0.025 ** (1 / n)`` (0.37% for 1,000 runs).
"""

from __future__ import annotations

import math

CONFIDENCE = 0.95


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in logs (n up to a few thousand)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for j in range(k + 1):
        log_term = (
            math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
            + j * log_p + (n - j) * log_q
        )  # fmt: skip
        total += math.exp(log_term)
    return min(total, 1.0)


def _solve(target: float, k: int, n: int) -> float:
    """The p at which P(X <= k) = target (the CDF decreases in p), by bisection."""
    low, high = 0.0, 1.0
    for _ in range(100):
        middle = (low + high) / 2
        if _binomial_cdf(k, n, middle) > target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact two-sided interval for a proportion of `k` in `n`."""
    if n <= 0:
        return 0.0, 1.0
    tail = (1 - confidence) / 2
    lower = 0.0 if k == 0 else 1.0 - _solve(tail, n - k, n)
    upper = 1.0 if k == n else _solve(tail, k, n)
    return lower, upper


def median_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """A distribution-free interval for the median: the order statistics of ranks `l` and
    ``n + 1 - l``, `l` the largest rank with P(Binomial(n, 1/2) < l) <= (1 - confidence) / 2,
    which cover the median with at least `confidence` whatever the distribution."""
    ordered = sorted(values)
    n = len(ordered)
    tail = (1 - confidence) / 2
    rank = 0
    while rank + 1 <= n and _binomial_cdf(rank, n, 0.5) <= tail:
        rank += 1
    if rank == 0:  # too few values for the confidence asked
        return -math.inf, math.inf
    return ordered[rank - 1], ordered[n - rank]


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least `q` of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]
