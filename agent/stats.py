"""Latency statistics: LoadGen's nearest-rank percentiles, a mergeable histogram, Wilson intervals.

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
