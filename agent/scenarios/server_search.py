"""Server without a given rate: find the highest arrival rate that meets the latency bound.

A fixed default rate or bound cannot fit every model: a 10 ms bound is below some models' own
inference time, and half of a 30 µs model's capacity (~17,000 queries/s) is beyond what either
engine can issue. So, like LoadGen's FindPeakPerformance mode, the rate is searched for: the
trial rate doubles while trials pass and is then bisected between the last pass and the first
fail, judging only the latency constraint. Three things differ from LoadGen, each to bound the
cost on a small device:

- the first trial is at half the capacity measured one sample at a time (``SingleStream``), not
  at a user's lower bound, so a few trials reach the operating point;
- trials are shorter than the profile's run and there are at most ``MAX_TRIALS``: a trial keeps
  the profile's query minimum but not its duration (``TRIAL_MIN_MS``), and ends at
  ``TRIAL_MAX_MS``. The query minimum stays because both engines draw arrivals from a fixed seed
  (LoadGen's is MLPerf's), so a trial of that many queries replays the first queries of the
  measured run's own schedule, scaled to its rate: a burst in that schedule (MLPerf's seed has
  one after the 100th query) is met in the trial, not first in the measured run;
- the measured run uses the profile's full settings at the rate found; if it still misses the
  latency bound (near capacity a queue settles more slowly than a short trial lasts, and a
  longer run sees more of a shared machine's changing load), the rate steps down ``STEP_DOWN``
  (from the rate the run achieved, where it fell behind) and the run is repeated, at most
  ``FINAL_RETRIES`` times.

Where no bound is given it is derived from the model's own SingleStream p99 on this device
(``BOUND_P99_MULTIPLE`` × p99, at least ``BOUND_FLOOR_MS``): the multiple leaves room for
queueing, the floor for a busy machine's scheduling stalls (docs/engines.md, "Server: the
latency bound and the rate", has the measurements behind both). Every trial and the rule that set the bound
are recorded in the result (``settings.server``). Everything runs through
``agent.scenarios.run``, so both engines and any ``SystemUnderTest`` are searched alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from agent import scenarios
from agent.scenarios import early_stopping
from agent.scenarios.outcome import Check, Outcome
from agent.scenarios.settings import RunSettings
from agent.scenarios.sut import SystemUnderTest
from agent.stats import nearest_rank

BOUND_P99_MULTIPLE = 6.0  # derived bound: this many SingleStream p99s ...
BOUND_FLOOR_MS = 30.0  # ... but never below this
START_FRACTION = 0.5  # first trial: this fraction of 1 / SingleStream median
LOWEST_FRACTION = 1 / 8  # halving stops here: below it queueing is not what misses the bound
RESOLUTION = 0.10  # bisection stops when the first failing rate is within 10 % of the last passing one
MAX_TRIALS = 8
TRIAL_MIN_MS = 1_000  # a trial's duration minimum (the profile's, where smaller); its query minimum is the profile's ...
TRIAL_MAX_MS = 30_000  # ... and it ends here at a rate so low that the query minimum would take longer
STEP_DOWN = 0.7  # a measured run that misses the bound is repeated at this fraction of its rate ...
FINAL_RETRIES = 2  # ... at most this many times
SINGLE_STREAM_SAMPLES, SINGLE_STREAM_MIN_S, SINGLE_STREAM_MAX_S = 200, 1.0, 3.0

Progress = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class SingleStream:
    """The model's latency one sample at a time on this device: the capacity estimate and the bound's basis."""

    samples: int
    median_ns: int
    p99_ns: int

    @property
    def capacity_qps(self) -> float:
        """Queries per second one SUT call at a time can complete (both engines call the SUT serially)."""
        return 1e9 / self.median_ns


@dataclass(frozen=True)
class Trial:
    """One Server run at one rate and what it showed."""

    target_qps: float
    achieved_qps: float | None
    p99_ms: float | None
    queries: int
    over_latency: int  # queries slower than the bound
    valid: bool  # a trial: the latency constraint met; the measured run: the full verdict
    reason: str = ""  # why not
    final: bool = False  # the measured run (profile's settings), not a shortened trial

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OperatingPoint:
    """How a Server run's latency bound and rate were set; the result's ``settings.server`` block."""

    latency_bound_ms: float
    latency_bound_rule: str
    single_stream: SingleStream
    target_qps: float = 0.0  # the measured run's rate
    target_qps_rule: str = "given"
    searched: bool = False
    trials: list[Trial] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_bound_ms": self.latency_bound_ms, "latency_bound_rule": self.latency_bound_rule,
            "single_stream_samples": self.single_stream.samples,
            "single_stream_median_ms": self.single_stream.median_ns / 1e6,
            "single_stream_p99_ms": self.single_stream.p99_ns / 1e6,
            "target_qps": self.target_qps, "target_qps_rule": self.target_qps_rule, "searched": self.searched,
            "max_trials": MAX_TRIALS if self.searched else 0, "trials": [t.to_dict() for t in self.trials],
        }


def single_stream(sut: SystemUnderTest) -> SingleStream:
    """Time samples one after another, as SingleStream does, after the caller's warm-up.

    At least ``SINGLE_STREAM_SAMPLES`` samples and ``SINGLE_STREAM_MIN_S`` (a fast model gets
    thousands, so its p99 is a real tail), and never past ``SINGLE_STREAM_MAX_S`` once 10 are in
    (a slow model's p99 is then one of its few slowest samples, which errs towards a looser bound).
    """
    clock = time.perf_counter_ns
    timings: list[int] = []
    start = clock()
    while True:
        t0 = clock()
        sut.process((len(timings) % sut.sample_count,))
        t1 = clock()
        timings.append(t1 - t0)
        elapsed_s = (t1 - start) / 1e9
        enough = len(timings) >= SINGLE_STREAM_SAMPLES and elapsed_s >= SINGLE_STREAM_MIN_S
        if enough or (len(timings) >= 10 and elapsed_s >= SINGLE_STREAM_MAX_S):
            break
    ordered = np.sort(np.asarray(timings, dtype=np.int64))
    return SingleStream(len(ordered), max(int(ordered[len(ordered) // 2]), 1), max(nearest_rank(ordered, 0.99), 1))


def _sig(qps: float) -> float:
    """A rate to 3 significant digits: trials read as 412 or 8.75 queries/s, not 411.9873."""
    return float(f"{qps:.3g}")


def operating_point(settings: RunSettings, ss: SingleStream) -> tuple[RunSettings, OperatingPoint]:
    """The bound the run is judged by: the given one, or derived from the SingleStream p99."""
    if settings.server_target_latency_ms:
        point = OperatingPoint(settings.server_target_latency_ms, "given", ss)
        return settings, point
    bound_ms = round(max(BOUND_P99_MULTIPLE * ss.p99_ns / 1e6, BOUND_FLOOR_MS), 3)
    rule = (f"derived: max({BOUND_P99_MULTIPLE:g} × SingleStream p99 {ss.p99_ns / 1e6:.3f} ms, {BOUND_FLOOR_MS:g} ms) "
            f"over {ss.samples} samples")
    return replace(settings, server_target_latency_ms=bound_ms), OperatingPoint(bound_ms, rule, ss)


def unsearched_rate(settings: RunSettings, point: OperatingPoint) -> RunSettings:
    """A rate where none is searched for: the given one, or (accuracy mode, where latency is not
    judged) ``START_FRACTION`` of the SingleStream capacity."""
    if not settings.server_target_qps:
        qps = _sig(START_FRACTION * point.single_stream.capacity_qps)
        settings = replace(settings, server_target_qps=qps)
        point.target_qps_rule = f"accuracy mode, latency not judged: {START_FRACTION:.0%} of 1 / SingleStream median"
    point.target_qps = settings.server_target_qps
    return settings


def expected_queries(s: RunSettings) -> int:
    """Queries a Server run of ``s`` issues: both minimums covered, capped by the maximum."""
    needed = max(s.min_query_count, math.ceil(s.server_target_qps * s.min_duration_ms / 1e3))
    return min(needed, s.max_query_count) if s.max_query_count else needed


def allowed_over(n: int, p: float) -> int:
    """The most over-latency queries a run of ``n`` can have and pass early stopping (-1: none pass)."""
    if not early_stopping.passes(n, 0, p):
        return -1
    lo, hi = 0, math.ceil(n * (1 - p))  # passes(n, lo) holds; beyond n(1 - p) it never does
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if early_stopping.passes(n, mid, p):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _tail(o: Outcome) -> tuple[float | None, int, int]:
    """(p99 ms, queries over the bound, queries) of a run: from the native engine's raw latencies,
    or LoadGen's own p99 and its binned latencies (3 significant digits, so a query within 0.5 %
    of the bound may be counted on the wrong side)."""
    s = o.settings
    bound_ns = s.server_target_latency_ms * 1e6
    if o.latency_histogram is not None:
        counts = o.latency_histogram.counts
        p99_ns = o.reported.get("latency_ns", {}).get("p99")
        over = sum(n for bucket, n in counts.items() if bucket > bound_ns)
        return (None if p99_ns is None else p99_ns / 1e6), over, o.latency_histogram.n
    latencies = np.sort(o.sample_latencies_ns)
    if not latencies.size:
        return None, 0, 0
    over = int(latencies.size - np.searchsorted(latencies, bound_ns, side="right"))
    return nearest_rank(latencies, s.target_latency_percentile) / 1e6, over, int(latencies.size)


def _record(o: Outcome, final: bool, planned: int) -> Trial:
    """One run as a trial. A shortened trial is valid when the engine's latency check passes (the
    constraint LoadGen's FindPeakPerformance judges) and its share of slow queries would let the
    measured run, ``planned`` queries long, pass early stopping; a measured run by its verdict."""
    s = o.settings
    p99_ms, over, queries = _tail(o)
    throughput = o.reported.get("throughput_sps")
    if not throughput and o.last_done_ns and o.sample_count > 1:
        throughput = (o.sample_count - 1) / (o.last_done_ns / 1e9)
    achieved = round(float(throughput), 1) if throughput else None
    latency = next((c for c in o.checks if c.name == "latency_bound"), None)
    if final:
        valid, reason = o.valid, "; ".join(o.invalid_reasons)
    elif latency is None or not latency.ok or not queries:
        valid, reason = False, f"latency_bound: {latency.detail if latency else 'not judged'}"
    else:
        allowed = allowed_over(planned, s.target_latency_percentile)
        predicted = math.ceil(over / queries * planned)
        valid = allowed < 0 or predicted <= allowed  # a run too short for early stopping is judged on p99 alone
        reason = "" if valid else (f"{over} of {queries} queries over {s.server_target_latency_ms:g} ms: "
                                   f"a {planned}-query run allows {allowed}")
    return Trial(s.server_target_qps, achieved, p99_ms, queries, over, valid, reason, final)


def trial_settings(settings: RunSettings, qps: float) -> RunSettings:
    """The profile's settings, shortened to a trial: its query minimum (the measured run's schedule,
    up to that query), a duration minimum of at most ``TRIAL_MIN_MS``, ended at ``TRIAL_MAX_MS``."""
    max_ms = min(settings.max_duration_ms or TRIAL_MAX_MS, TRIAL_MAX_MS)
    return replace(settings, server_target_qps=qps, min_duration_ms=min(settings.min_duration_ms, TRIAL_MIN_MS, max_ms),
                   max_duration_ms=max_ms)


def find(engine: str, sut: SystemUnderTest, settings: RunSettings, log_dir: Path, point: OperatingPoint,
         progress: Progress | None = None) -> None:
    """Search the highest passing rate into ``point`` (``target_qps`` 0: none passed).

    Doubling from the first trial while trials pass, halving while they fail (down to
    ``LOWEST_FRACTION`` of capacity), then bisecting between the last pass and the first fail
    until they are within ``RESOLUTION`` or ``MAX_TRIALS`` are spent.
    """
    point.searched = True
    ss, bound_ms = point.single_stream, settings.server_target_latency_ms
    if bound_ms * 1e6 < ss.median_ns:  # most samples are slower than the bound before any queueing
        point.target_qps_rule = (f"no rate can meet the {bound_ms:g} ms bound: this model's SingleStream median here is "
                                 f"{ss.median_ns / 1e6:.3f} ms")
        return
    lowest = LOWEST_FRACTION * ss.capacity_qps
    qps = _sig(START_FRACTION * ss.capacity_qps)
    passed: float | None = None
    failed: float | None = None
    while len(point.trials) < MAX_TRIALS:
        if progress:
            progress("searching", {"trial": len(point.trials) + 1, "target_qps": qps, "latency_bound_ms": bound_ms})
        trial_run = trial_settings(settings, qps)
        outcome = scenarios.run(engine, sut, trial_run, log_dir / "server-search" / f"trial-{len(point.trials) + 1:02d}")
        trial = _record(outcome, False, expected_queries(replace(settings, server_target_qps=qps)))
        point.trials.append(trial)
        if trial.valid:
            passed = qps
        else:
            failed = qps
        if passed is None:
            if qps / 2 < lowest:
                break
            qps = _sig(qps / 2)
        elif failed is None:
            qps = _sig(qps * 2)
        elif failed <= passed * (1 + RESOLUTION):
            break
        else:
            qps = _sig((passed + failed) / 2)
            if qps in (passed, failed):  # 3 significant digits cannot split them further
                break
    point.target_qps = passed or 0.0
    tried = len(point.trials)
    if passed is None:
        point.target_qps_rule = (f"searched: no rate met the {bound_ms:g} ms bound in {tried} trials, down to "
                                 f"{min(t.target_qps for t in point.trials):g} queries/s")
    else:
        above = f", {failed:g} failed" if failed is not None else ""
        point.target_qps_rule = f"searched: highest passing rate of {tried} trials{above}"


def measure(engine: str, sut: SystemUnderTest, settings: RunSettings, log_dir: Path, point: OperatingPoint) -> Outcome:
    """The measured run at the rate found, with the profile's full settings.

    A run that misses the latency bound (queries over it) is repeated at ``STEP_DOWN`` of its
    rate, or of the rate it achieved where that was lower (the device could not keep up: a shared
    machine's other load can take more of it for a 10-s run than for a 1-s trial), at most
    ``FINAL_RETRIES`` times. Where the search found no rate, the run goes once at the
    lowest rate tried (or the first trial's, when none was tried) and, if INVALID, says why in an
    extra ``server_search`` check.
    """
    found = point.target_qps > 0
    if found:
        qps = point.target_qps
    elif point.trials:
        qps = min(t.target_qps for t in point.trials)
    else:
        qps = _sig(START_FRACTION * point.single_stream.capacity_qps)
    for attempt in range(1 + FINAL_RETRIES if found else 1):
        run = replace(settings, server_target_qps=qps)
        outcome = scenarios.run(engine, sut, run, log_dir)
        trial = _record(outcome, True, expected_queries(run))
        point.trials.append(trial)
        point.target_qps = qps
        if trial.valid or trial.over_latency == 0 or attempt == FINAL_RETRIES:
            break
        qps = _sig(STEP_DOWN * min(qps, trial.achieved_qps or qps))
        point.target_qps_rule += f"; measured run INVALID at {run.server_target_qps:g}, stepped down to {qps:g}"
    if not found and not outcome.valid:
        outcome.checks.append(Check("server_search", False, point.target_qps_rule,
                                    "raise --target-latency-ms (or the job's target_latency_ms), or leave it out to derive it"))
    return outcome
