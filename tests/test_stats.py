"""Percentiles by LoadGen's nearest rank, a histogram that merges exactly, Wilson intervals."""

from __future__ import annotations

import json
import math

import msgspec
import numpy as np
import pytest

from agent import contract
from agent.stats import LatencyHistogram, bucket_ns, latency_summary_ns, nearest_rank, wilson_interval


def test_nearest_rank_is_loadgens_floor_index():
    values = np.arange(100, dtype=np.int64)  # sorted[i] == i
    assert nearest_rank(values, 0.50) == 50
    assert nearest_rank(values, 0.90) == 90
    assert nearest_rank(values, 0.999) == 99  # floor(99.9)
    assert nearest_rank(np.arange(10), 0.99) == 9


def test_summary_reports_every_contract_percentile(rng):
    latencies = rng.integers(40_000, 90_000, size=1001)
    summary = latency_summary_ns(latencies)
    ordered = np.sort(latencies)
    assert summary["min"] == ordered[0] and summary["max"] == ordered[-1]
    assert summary["p90"] == ordered[int(1001 * 0.9)]
    assert summary["p999"] == ordered[int(1001 * 0.999)]
    assert summary["mean"] == pytest.approx(latencies.mean())


@pytest.mark.parametrize(
    ("value", "bucket"), [(0, 0), (7, 7), (987, 987), (55_321, 55_300), (55_360, 55_400), (1_234_567, 1_230_000)]
)
def test_buckets_keep_three_significant_digits(value, bucket):
    assert bucket_ns(value) == bucket


def test_merged_histogram_equals_histogram_of_all_samples(rng):
    """Fleet percentiles come from merged counts, never from averaging device percentiles."""
    fast = rng.normal(50_000, 2_000, 5000).astype(np.int64)
    slow = rng.normal(400_000, 30_000, 500).astype(np.int64)
    merged = LatencyHistogram.of(fast)
    merged.merge(LatencyHistogram.of(slow))
    combined = LatencyHistogram.of(np.concatenate([fast, slow]))
    assert merged.counts == combined.counts
    assert merged.n == 5500
    exact = np.sort(np.concatenate([fast, slow]))
    for p in (0.5, 0.9, 0.95, 0.99):
        assert merged.percentile(p) == pytest.approx(nearest_rank(exact, p), rel=0.005)
    averaged_p99 = (nearest_rank(np.sort(fast), 0.99) + nearest_rank(np.sort(slow), 0.99)) / 2
    assert abs(merged.percentile(0.99) - averaged_p99) > 100_000  # the average would be badly wrong


def test_histogram_round_trips_through_the_result_contract(rng):
    """What the agent writes (``to_dict``) comes back, as the controller reads it: JSON, then the typed block."""
    hist = LatencyHistogram.of(rng.integers(1_000, 2_000_000, 300))
    block = msgspec.json.decode(json.dumps(hist.to_dict()), type=contract.Histogram)
    again = LatencyHistogram.from_block(block)
    assert again.counts == hist.counts and again.digits == 3 and block.n == hist.n


def test_histograms_of_different_resolution_refuse_to_merge():
    with pytest.raises(ValueError, match="significant digits"):
        LatencyHistogram.of([1, 2], digits=3).merge(LatencyHistogram.of([1, 2], digits=2))


def test_wilson_interval_textbook_values():
    lo, hi = wilson_interval(8, 10)  # Wilson (1927) / Newcombe (1998) example: 0.490-0.943
    assert (round(lo, 3), round(hi, 3)) == (0.49, 0.943)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and 0.15 < hi < 0.17  # stays informative at 0 successes


def test_wilson_interval_narrows_with_n():
    width = [wilson_interval(int(0.88 * n), n) for n in (100, 1000, 10_000)]
    widths = [hi - lo for lo, hi in width]
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] == pytest.approx(2 * 1.96 * math.sqrt(0.88 * 0.12 / 10_000), rel=0.02)
