"""LoadGen's early-stopping rule (``loadgen/early_stopping.cc``, ``results.cc``), in closed form.

With confidence c = 0.99 and tolerance d = 0, h(t) is the least h such that
P[Bin(h + t, 1 - p) <= t] < 1 - c: the number of under-latency queries that, next to t
over-latency ones, shows the p-th percentile is met. LoadGen searches h(t) per t; here the
condition ``n >= h(t) + t`` is evaluated directly as ``P[Bin(n, 1 - p) <= t] < 1 - c`` (the CDF
falls as trials are added, so the two are the same test), which makes the SingleStream estimate
one pass over the binomial CDF instead of a search per t.
"""

from __future__ import annotations

import math

import numpy as np

CONFIDENCE = 0.99


def binomial_cdf(k_max: int, n: int, q: float) -> np.ndarray:
    """``P[Bin(n, q) <= k]`` for k = 0..k_max, summed in log space so large n does not underflow."""
    k = np.arange(k_max + 1, dtype=np.float64)
    steps = np.log(n - k[:-1]) - np.log(k[1:]) + math.log(q) - math.log1p(-q) if k_max else np.empty(0)
    log_pmf = n * math.log1p(-q) + np.concatenate(([0.0], np.cumsum(steps)))
    return np.cumsum(np.exp(log_pmf))


def passes(n: int, overlatency: int, p: float, confidence: float = CONFIDENCE) -> bool:
    """``n >= h(t) + t``: n queries with ``overlatency`` of them too slow meet percentile p."""
    if n <= overlatency:
        return False
    return bool(binomial_cdf(overlatency, n, 1.0 - p)[-1] < 1.0 - confidence)


def min_passing_h(t: int, p: float, confidence: float = CONFIDENCE) -> int:
    """h(t): the fewest under-latency queries that, with t over-latency ones, pass."""
    hi = max(1, math.ceil(math.log(1 - confidence) / math.log(p)))
    while not passes(hi + t, t, p, confidence):
        hi *= 2
    lo = 0
    while lo < hi:  # least h with passes(h + t)
        mid = (lo + hi) // 2
        if passes(mid + t, t, p, confidence):
            hi = mid
        else:
            lo = mid + 1
    return lo


def min_queries(p: float, confidence: float = CONFIDENCE) -> int:
    """Queries a stream scenario needs before early stopping can give an estimate: h(1) + 1."""
    return min_passing_h(1, p, confidence) + 1


def discard_count(n: int, p: float, confidence: float = CONFIDENCE) -> int | None:
    """t = max{i >= 1 : n >= h(i) + i}, or None when n < h(1) + 1 (too few queries).

    The SingleStream/MultiStream estimate is ``sorted_latencies[n - t]``: drop the t - 1 slowest
    queries and report the next.
    """
    if n < 2:
        return None
    q = 1.0 - p
    # The CDF passes 1 - c well before the mean plus ten standard deviations; stop there.
    k_max = min(n - 1, math.ceil(n * q + 10 * math.sqrt(n * q * p) + 10))
    cdf = binomial_cdf(k_max, n, q)
    below = np.flatnonzero(cdf < 1.0 - confidence)
    if below.size == 0 or below[-1] < 1:
        return None
    return int(below[-1])


def estimate(sorted_latencies: np.ndarray, p: float, confidence: float = CONFIDENCE) -> int | None:
    """The early-stopping p-th percentile estimate of ascending latencies, or None if too few."""
    n = len(sorted_latencies)
    t = discard_count(n, p, confidence)
    return None if t is None else int(sorted_latencies[n - t])
