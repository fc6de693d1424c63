"""Latency statistics: LoadGen's nearest-rank percentiles, a mergeable histogram; Wilson, paired
Newcombe and Student's t intervals.

Reported percentiles of a run are exact order statistics of its raw latencies, indexed the way
LoadGen does (``sorted[floor(n * p)]``, no interpolation). Fleet-wide percentiles cannot be
averaged from per-device ones, so every result also carries a histogram that merges by adding
counts; percentiles read from it are within half a bucket (3 significant digits, <= 0.5 %).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from agent.contract import Histogram

# the percentiles a result reports (LoadGen's summary set): the one table every view reads
REPORTED_PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p97": 0.97, "p99": 0.99, "p999": 0.999}
Z95 = 1.959963984540054


def _ints(values: Iterable[int]) -> np.ndarray:
    return np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.int64)


def rank(n: int, p: float) -> int:
    """The 0-based index of the p-th percentile among ``n`` sorted values: ``floor(n * p)``, LoadGen's
    nearest rank (the same double arithmetic as results.cc). Every percentile edgeperf shows uses it:
    a run's from raw latencies, a fleet's from merged histograms, and the gate's bootstrap."""
    return int(n * p)


def nearest_rank(sorted_values: np.ndarray, p: float) -> int:
    """LoadGen's percentile of sorted raw latencies: ``sorted[rank(n, p)]``."""
    return int(sorted_values[rank(len(sorted_values), p)])


def latency_summary_ns(latencies_ns: Iterable[int]) -> dict[str, float]:
    """min, mean, reported percentiles and max of raw latencies, all in ns."""
    values = np.sort(_ints(latencies_ns))
    if values.size == 0:
        return {}
    out: dict[str, float] = {"min": int(values[0]), "mean": float(values.mean())}
    out |= {name: nearest_rank(values, p) for name, p in REPORTED_PERCENTILES.items()}
    out["max"] = int(values[-1])
    return out


def bucket_ns(latency_ns: float, digits: int = 3) -> int:
    """Round to ``digits`` significant digits: 55_321 -> 55_300, 987 -> 987."""
    value = int(latency_ns)
    if value <= 0:
        return 0
    drop = max(len(str(value)) - digits, 0)
    return int(round(value, -drop))


@dataclass
class LatencyHistogram:
    """Counts per latency bucket (ns); merge by adding, never by averaging percentiles."""

    counts: Counter = field(default_factory=Counter)
    digits: int = 3

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    @classmethod
    def of(cls, latencies_ns: Iterable[int], digits: int = 3) -> LatencyHistogram:
        hist = cls(digits=digits)
        values, counts = np.unique(_ints(latencies_ns), return_counts=True)
        for value, count in zip(values, counts, strict=True):
            hist.counts[bucket_ns(value, digits)] += int(count)
        return hist

    def merge(self, other: LatencyHistogram) -> None:
        if other.digits != self.digits:
            raise ValueError(f"cannot merge histograms of {self.digits} and {other.digits} significant digits")
        self.counts.update(other.counts)

    def percentile(self, p: float) -> int:
        """The bucket holding ``rank(n, p)``, as ``nearest_rank`` would pick from the raw latencies."""
        return self.value_at(rank(self.n, p))

    def value_at(self, index: int) -> int:
        """The bucket holding the ``index``-th (0-based) latency in ascending order: what
        ``sorted(latencies)[index]`` reads, to the histogram's resolution (early stopping reads
        ``sorted[n - t]``)."""
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen > index:
                return bucket
        raise ValueError("empty histogram")

    def cdf(self) -> tuple[list[int], list[float]]:
        """(bucket ns, share of latencies at or below it) over the sorted buckets: the curve a report plots."""
        buckets, seen, shares = sorted(self.counts), 0, []
        for bucket in buckets:
            seen += self.counts[bucket]
            shares.append(seen / self.n)
        return buckets, shares

    def to_dict(self) -> dict[str, Any]:
        return {"unit": "ns", "significant_digits": self.digits, "n": self.n,
                "counts": {str(k): v for k, v in sorted(self.counts.items())}}

    @classmethod
    def from_block(cls, block: Histogram) -> LatencyHistogram:
        """The histogram a result carries (``kpis.latency_histogram``, typed by the contract), to merge or read."""
        return cls(Counter(block.counts), block.significant_digits)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion: honest near 0 and 1, unlike the normal one."""
    if n == 0:
        return (0.0, 1.0)
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_paired(a: float, b: float, c: float, d: float) -> tuple[float, float]:
    """95 % interval of (a + b)/n − (a + c)/n for paired outcomes: Newcombe (1998) method 10.

    ``a``: both right, ``b``: first right only, ``c``: second right only, ``d``: both wrong. Wilson
    intervals of the two marginal proportions, combined with their estimated correlation φ, which is
    shrunk towards 0 by n/2 when positive (Newcombe's correction; 0 when a margin is empty)."""
    n = a + b + c + d
    if n <= 0:
        raise ValueError(f"a paired table of {n} samples has no interval")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n)
    l2, u2 = wilson_interval(a + c, n)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    phi = 0.0 if margins == 0 else (cross - n / 2 if cross > n / 2 else min(cross, 0.0)) / math.sqrt(margins)
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, p1 - p2 - below), min(1.0, p1 - p2 + above)


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (Lentz's method,
    as Numerical Recipes' ``betai``/``betacf``)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this: use the symmetry
        return 1.0 - _incomplete_beta(1.0 - x, b, a)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            step = 1.0
        elif i % 2 == 0:
            step = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            step = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + step * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + step / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1.0 - c * d) < 1e-15:
            break
    return front * (f - 1.0)


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom: 1 − I_{df/(df+t²)}(df/2, 1/2) / 2 for t > 0."""
    tail = 0.5 * _incomplete_beta(df / (df + t * t), df / 2, 0.5)
    return 1.0 - tail if t > 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (scipy's ``t.ppf``, without scipy
    on the device): the CDF inverted by bisection, within 1e-8 of scipy's up to a million degrees of freedom
(``lgamma`` of huge arguments limits it). ``student_t_quantile(0.975, 9)`` is 2.2622."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"Student's t quantile needs 0 < p < 1 and df > 0, not p={p}, df={df}")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2
    while hi - lo > 1e-12 * max(1.0, hi):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if student_t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def mean_interval_t(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student's t interval of the mean of ``values`` (mean ± t · s/√n); one value gives (−inf, inf)."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n < 2:
        return (-math.inf, math.inf)
    mean = float(values.mean())
    half = student_t_quantile(0.5 + confidence / 2, n - 1) * float(values.std(ddof=1)) / math.sqrt(n)
    return (mean - half, mean + half)
