"""A phone tool's latencies as the result's ``kpis.latency_ms`` block, saying what each number rests on.

``onnxruntime_perf_test -v`` prints every measured run, so its block is LoadGen's arithmetic over
those runs (``agent.stats``: nearest rank ``sorted[floor(n·p)]``, the same rank the tool's own
statistics use) with a latency histogram, as an agent's native engine would give. ``benchmark_model``
prints only aggregate statistics: its block holds what the tool printed — min, mean, max, and p50
and p95 where the build prints ``median`` and ``p95`` — and leaves every other percentile null.
Nothing is computed from a mean and a standard deviation: a p99 from them would assume a normal
distribution that latencies do not have. ``basis`` says which of the two a block is; neither is a
LoadGen run, and the result says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.android.tool_output import BenchmarkModelRun
from agent.stats import REPORTED_PERCENTILES, LatencyHistogram, latency_summary_ns

PER_RUN = "per-run latencies printed by the tool (nearest rank over them)"
AGGREGATE = "the tool's aggregate statistics (min, mean, max, median and p95 as printed; other percentiles not reported)"


@dataclass(frozen=True)
class Latencies:
    """``latency_ms`` (contract ``LatencyMs`` fields, ms, None where the tool gave nothing), the histogram
    block where per-run latencies exist, the runs counted, their throughput, and what the numbers rest on."""

    latency_ms: dict[str, float | None]
    histogram: dict[str, Any] | None
    runs: int
    throughput_sps: float | None
    basis: str


def from_runs(seconds: Sequence[float]) -> Latencies:
    """Per-run latencies (``onnxruntime_perf_test -v``): LoadGen's percentiles over them and their histogram.
    Throughput is runs ÷ their summed time: the runs were back to back, one sample each."""
    ns = [round(s * 1e9) for s in seconds]
    summary = latency_summary_ns(ns)
    total_s = sum(seconds)
    return Latencies({k: v / 1e6 for k, v in summary.items()}, LatencyHistogram.of(ns).to_dict(), len(ns),
                     len(ns) / total_s if total_s > 0 else None, PER_RUN)


def from_benchmark_model(run: BenchmarkModelRun) -> Latencies:
    """``benchmark_model``'s measured runs: only what it printed (module docstring). Throughput is 1 ÷ the mean
    latency: its runs are back to back, one sample each, so runs ÷ their summed time is exactly that."""
    stat = run.inference
    latency: dict[str, float | None] = dict.fromkeys(("min", "mean", *REPORTED_PERCENTILES, "max"))
    latency |= {"min": stat.min / 1e3, "mean": stat.avg / 1e3, "max": stat.max / 1e3,
                "p50": None if stat.median is None else stat.median / 1e3,
                "p95": None if stat.p95 is None else stat.p95 / 1e3}
    return Latencies(latency, None, stat.count, 1e6 / stat.avg if stat.avg > 0 else None, AGGREGATE)
