"""What an engine hands back: raw timings, counts, the verdict's checks and kept outputs.

Both engines fill the same record, so KPIs, reports and the result document never need to know
which engine ran. Times are integer ns from the run's own start on a monotonic clock; the wall
clock window is kept separately for cutting power traces to exactly the measured interval.
The native engine keeps raw latencies (its verdict needs exact order statistics); LoadGen judges
the run itself, so its latencies arrive binned, which keeps a 20 M-sample run in a few kB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.scenarios.settings import RunSettings
from agent.stats import LatencyHistogram


@dataclass(frozen=True)
class Check:
    """One validity constraint, LoadGen style: passed or not, what was seen, what to change."""

    name: str  # min_duration, min_queries, early_stopping, latency_bound, all_samples
    ok: bool
    detail: str = ""
    advice: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "advice": self.advice}


@dataclass
class Outcome:
    """One scenario run as measured by an engine."""

    engine: str
    settings: RunSettings  # effective settings (after calibration and derivations)
    sample_latencies_ns: np.ndarray  # per sample, from its query's scheduled/issue time (native; loadgen: empty)
    query_latencies_ns: np.ndarray  # per query (MultiStream: its slowest sample) (native; loadgen: empty)
    query_count: int
    sample_count: int
    final_issue_ns: int = 0  # SingleStream/MultiStream: issue time of the last query
    final_scheduled_ns: int = 0  # Server: scheduled time of the last query
    last_done_ns: int = 0  # completion of the last sample
    window_unix_ns: tuple[int, int] = (0, 0)  # wall-clock [begin, end] of the measured interval
    window_monotonic_ns: tuple[int, int] = (0, 0)  # the same on time.monotonic_ns(), for power samples
    checks: list[Check] = field(default_factory=list)
    ended_by: str = ""  # why issuing stopped: minimums met, max duration, max queries, ...
    outputs: dict[int, list[np.ndarray]] | None = None  # accuracy mode: outputs by sample index
    reported: dict[str, Any] = field(default_factory=dict)  # engine-reported metrics (LoadGen log)
    logs: dict[str, Any] = field(default_factory=dict)
    # the metric's latencies (per query for MultiStream, else per sample) binned, from an engine
    # that keeps no raw ones (loadgen: LoadGen's own, read from its trace); None: bin the raw ones
    latency_histogram: LatencyHistogram | None = None

    @property
    def valid(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def invalid_reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" + (f" ({c.advice})" if c.advice else "") for c in self.checks if not c.ok]
