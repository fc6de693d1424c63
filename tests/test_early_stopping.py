"""Early stopping must give LoadGen's numbers: the pinned values of docs/engines.md and an exact cross-check."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np
import pytest

from agent.scenarios import early_stopping as es


def exact_cdf(t: int, n: int, q: Fraction) -> Fraction:
    """P[Bin(n, q) <= t] in exact rational arithmetic (independent of the module under test)."""
    return sum((comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(t + 1)), Fraction(0))


def exact_h(t: int, p: Fraction) -> int:
    """LoadGen's definition, searched naively: least h with P[Bin(h+t, 1-p) <= t] < 1 - c."""
    h = 0
    while exact_cdf(t, h + t, 1 - p) >= Fraction(1, 100):
        h += 1
    return h


@pytest.mark.parametrize(("p", "h0", "minimum"), [(0.90, 44, 64), (0.99, 459, 662)])
def test_pinned_minimums(p, h0, minimum):
    assert es.min_passing_h(0, p) == h0
    assert es.min_queries(p) == minimum


@pytest.mark.parametrize(
    ("p", "t", "needed"),
    [(0.90, 10, 197), (0.90, 100, 1246), (0.99, 10, 2010), (0.99, 100, 12571), (0.99, 1000, 107569)],
)
def test_pinned_server_query_counts(p, t, needed):
    """Queries Server needs with t over-latency queries (docs/engines.md)."""
    assert es.min_passing_h(t, p) + t == needed
    assert es.passes(needed, t, p)
    assert not es.passes(needed - 1, t, p)


@pytest.mark.parametrize("t", [0, 1, 2, 5, 9])
def test_h_matches_exact_rational_search(t):
    assert es.min_passing_h(t, 0.9) == exact_h(t, Fraction(9, 10))


@pytest.mark.parametrize("n", [63, 64, 65, 100, 150, 220, 301])
def test_discard_count_matches_loadgen_loop(n):
    """LoadGen: t=1; for i in 2..n: if n < h(i)+i: t=i-1, break (results.cc)."""
    p = Fraction(9, 10)
    if n < exact_h(1, p) + 1:
        assert es.discard_count(n, 0.9) is None
        return
    t = 1
    for i in range(2, n + 1):
        if n < exact_h(i, p) + i:
            t = i - 1
            break
    assert es.discard_count(n, 0.9) == t


def test_estimate_drops_the_slowest_t_minus_one():
    latencies = np.arange(1, 221, dtype=np.int64) * 1000  # 220 queries: LoadGen discards 10
    t = es.discard_count(220, 0.9)
    assert t == 11
    assert es.estimate(latencies, 0.9) == latencies[220 - 11]


def test_estimate_needs_enough_queries():
    assert es.estimate(np.arange(63), 0.9) is None
    assert es.estimate(np.arange(661), 0.99) is None
    assert es.estimate(np.arange(662), 0.99) is not None


def test_large_runs_stay_fast_and_monotone():
    """Ten million queries must not cost a noticeable pause after a long run."""
    counts = [es.discard_count(n, 0.9) for n in (10_000, 100_000, 10_000_000)]
    assert counts == sorted(counts)
    assert counts[-1] < 10_000_000 * 0.1
