"""Confidence intervals for scorecards: bootstrap over repeats, Wilson for proportions, Newcombe
for a difference of proportions (an int8 model's accuracy against its fp32 reference).

A single run's p90 says nothing about how much the next run's will differ; repeats do, and a
percentile bootstrap over them makes no assumption about their distribution. With fewer than two
repeats there is no interval, and the scorecard shows none rather than a fake one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from agent.stats import LatencyHistogram, rank, wilson_interval

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20260101  # fixed: the same results always give the same interval


def bootstrap_mean(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float | None, float | None]:
    """Mean of ``values`` and its percentile-bootstrap interval (None, None with one value)."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if data.size == 0:
        return (math.nan, None, None)
    mean = float(data.mean())
    if data.size < 2:
        return (mean, None, None)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = data[rng.integers(0, data.size, size=(BOOTSTRAP_RESAMPLES, data.size))].mean(axis=1)
    means = np.clip(means, data.min(), data.max())  # a mean of the data lies within it; float rounding can step past
    tail = (1 - confidence) / 2
    return (mean, float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)))


def proportion(successes: int, n: int) -> tuple[float, float, float]:
    """A proportion with its 95 % Wilson interval."""
    lo, hi = wilson_interval(successes, n)
    return (successes / n if n else math.nan, lo, hi)


def difference(a: tuple[int, int], b: tuple[int, int]) -> tuple[float, float, float]:
    """p_a - p_b with Newcombe's hybrid score interval (1998, method 10), from (successes, n) pairs."""
    pa, la, ua = proportion(*a)
    pb, lb, ub = proportion(*b)
    d = pa - pb
    return (d, d - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2), d + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2))


def histogram_percentile(hist: LatencyHistogram, p: float, confidence: float = 0.95,
                         resamples: int = 1000) -> tuple[float, float]:
    """Interval of one run's p-th percentile: the run's latencies drawn again (a multinomial over
    its histogram buckets) — how far the percentile moves by sampling alone."""
    buckets = np.array(sorted(hist.counts), dtype=np.float64)
    counts = np.array([hist.counts[int(b)] for b in buckets], dtype=np.int64)
    n = int(counts.sum())
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.multinomial(n, counts / n, size=resamples)
    positions = (np.cumsum(draws, axis=1) > rank(n, p)).argmax(axis=1)  # the bucket LatencyHistogram.percentile picks
    values = buckets[positions]
    tail = (1 - confidence) / 2
    return (float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail)))
