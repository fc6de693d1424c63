"""The native engine: LoadGen's four scenarios in pure Python, plus an enforced max duration.

It exists for devices where LoadGen cannot be built and for fixed-duration runs (MLPerf Mobile
patches LoadGen for those). It issues queries the way LoadGen does — SingleStream/MultiStream
one query after another, Server at Poisson arrival times with latency counted from the
scheduled time, Offline as one query of all samples — and judges them with the same rules
(``verdict.py``). The timed loops are kept free of allocation beyond appending one integer.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Sequence

import numpy as np

from agent.scenarios.outcome import Outcome
from agent.scenarios.settings import RunSettings, Scenario
from agent.scenarios.sut import SystemUnderTest
from agent.scenarios.verdict import ENDED_MAX_DURATION, judge

ENGINE = "native"
ENDED_MINIMUMS = "minimum duration and query count met"
ENDED_MAX_QUERIES = "max query count reached"
_BLOCK = 4096  # random sample indices drawn per refill
_SPIN_NS = 200_000  # sleep until this close to a Server arrival, then spin


def _window(wall0: int, mono0: int, elapsed_ns: int) -> dict[str, tuple[int, int]]:
    """The measured interval on both clocks: wall for logs, monotonic for cutting power traces."""
    return {"window_unix_ns": (wall0, wall0 + elapsed_ns), "window_monotonic_ns": (mono0, mono0 + elapsed_ns)}


def _chunks(indices: Sequence[int], size: int) -> list[Sequence[int]]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def _stream(sut: SystemUnderTest, s: RunSettings) -> Outcome:
    """SingleStream / MultiStream: issue the next query when the previous one completes."""
    clock, process, loaded = time.perf_counter_ns, sut.process, sut.sample_count
    spq, batch = s.samples_per_query, sut.batch_size
    rng = np.random.default_rng(s.sample_index_seed)
    min_q, min_ns = s.min_query_count, s.min_duration_ms * 1_000_000
    max_q, max_ns = s.max_query_count, s.max_duration_ms * 1_000_000
    sample_lat, query_lat = array("q"), array("q")
    firsts: list[int] = []
    queries, issue, done, ended = 0, 0, 0, ENDED_MINIMUMS
    wall0, mono0 = time.time_ns(), time.monotonic_ns()
    start = clock()
    while True:
        if not firsts:
            firsts = rng.integers(0, loaded, size=_BLOCK).tolist()[::-1]
        first = firsts.pop()
        issue = clock()
        if spq == 1:
            process((first,))
            done = clock()
            sample_lat.append(done - issue)
            query_lat.append(done - issue)
        else:
            for chunk in _chunks([(first + k) % loaded for k in range(spq)], batch):
                process(chunk)
                done = clock()
                sample_lat.extend([done - issue] * len(chunk))
            query_lat.append(done - issue)
        queries += 1
        if queries >= min_q and issue - start >= min_ns:
            break
        if max_q and queries >= max_q:
            ended = ENDED_MAX_QUERIES
            break
        if max_ns and done - start > max_ns:
            ended = ENDED_MAX_DURATION
            break
    return Outcome(
        ENGINE, s, np.frombuffer(sample_lat, dtype=np.int64), np.frombuffer(query_lat, dtype=np.int64),
        queries, queries * spq, final_issue_ns=issue - start, last_done_ns=done - start,
        **_window(wall0, mono0, done - start), ended_by=ended,
    )


def _loadgen_exponential_ns(mt: np.random.RandomState, qps: float, size: int) -> np.ndarray:
    """``size`` gaps (ns) drawn as LoadGen draws them: ``std::exponential_distribution<>(qps)`` on
    ``std::mt19937`` as libstdc++ does it: ``generate_canonical<double, 53>`` from two 32-bit outputs,
    ``-log(1 - u) / qps`` seconds, then ``duration_cast<nanoseconds>`` (truncation)."""
    raw = mt.randint(0, 1 << 32, size=2 * size, dtype=np.uint32).astype(np.float64)  # full range: raw outputs
    u = np.minimum((raw[0::2] + raw[1::2] * 2.0**32) / 2.0**64, np.nextafter(1.0, 0.0))
    return (-np.log(1.0 - u) / qps * 1e9).astype(np.int64)


def server_schedule(s: RunSettings) -> np.ndarray:
    """Server arrival times (ns from start), the ones LoadGen's ``GenerateQueries`` makes for the same
    settings: the first query at 0, exponential gaps from ``std::mt19937`` seeded with the schedule
    seed (its low 32 bits, as ``mt19937``'s constructor keeps them), and queries added while the last
    one is before the minimum duration or fewer than the minimum count. Same seed, same rate: the
    same offered load in both engines (tests check the count and LoadGen's scheduled rate)."""
    # RandomState(int) is MT19937 seeded by init_genrand, as std::mt19937(seed) is; its stream is frozen
    mt = np.random.RandomState(s.schedule_seed & 0xFFFF_FFFF)
    min_ns = s.min_duration_ms * 1_000_000
    times = np.zeros(1, dtype=np.int64)
    while times.size <= s.min_query_count or times[-1] < min_ns:
        gaps = _loadgen_exponential_ns(mt, s.server_target_qps, _BLOCK)
        times = np.concatenate([times, times[-1] + np.cumsum(gaps)])
    needed = max(s.min_query_count, int(np.searchsorted(times, min_ns)) + 1)
    if s.max_query_count:
        needed = min(needed, s.max_query_count)
    return times[:needed]


def _server(sut: SystemUnderTest, s: RunSettings) -> Outcome:
    """Server: one sample per query at its scheduled time; latency counts from that time."""
    clock, process, loaded = time.perf_counter_ns, sut.process, sut.sample_count
    schedule = server_schedule(s).tolist()
    indices = np.random.default_rng(s.sample_index_seed).integers(0, loaded, size=len(schedule)).tolist()
    max_ns = s.max_duration_ms * 1_000_000
    lat = array("q")
    done, ended = 0, ENDED_MINIMUMS
    wall0, mono0 = time.time_ns(), time.monotonic_ns()
    start = clock()
    for scheduled, index in zip(schedule, indices, strict=True):
        wait = scheduled - (clock() - start)
        if wait > _SPIN_NS:
            time.sleep((wait - _SPIN_NS) / 1e9)
        while clock() - start < scheduled:
            pass
        process((index,))
        done = clock() - start
        lat.append(done - scheduled)
        if max_ns and done > max_ns:
            ended = ENDED_MAX_DURATION
            break
    latencies = np.frombuffer(lat, dtype=np.int64)
    return Outcome(
        ENGINE, s, latencies, latencies, len(lat), len(lat), final_scheduled_ns=schedule[len(lat) - 1],
        last_done_ns=done, **_window(wall0, mono0, done), ended_by=ended,
    )


def offline_sample_count(s: RunSettings) -> int:
    """LoadGen's Offline query size: max(min samples, 1.1 × min duration × expected QPS)."""
    return max(s.offline_min_sample_count, math.floor(1.1 * s.min_duration_ms / 1e3 * s.offline_expected_qps))


def _offline(sut: SystemUnderTest, s: RunSettings) -> Outcome:
    """Offline: one query holding every sample; each sample's latency runs from that one issue."""
    clock, process, loaded, batch = time.perf_counter_ns, sut.process, sut.sample_count, sut.batch_size
    total = offline_sample_count(s)
    lat = array("q")
    done = 0
    wall0, mono0 = time.time_ns(), time.monotonic_ns()
    start = clock()
    for begin in range(0, total, batch):
        chunk = [i % loaded for i in range(begin, min(begin + batch, total))]
        process(chunk)
        done = clock() - start
        lat.extend([done] * len(chunk))
    latencies = np.frombuffer(lat, dtype=np.int64)
    return Outcome(
        ENGINE, s, latencies, np.array([done], dtype=np.int64), 1, total, last_done_ns=done,
        **_window(wall0, mono0, done), ended_by=ENDED_MINIMUMS,
    )


def _accuracy(sut: SystemUnderTest, s: RunSettings) -> Outcome:
    """Every sample once, in order, grouped as the scenario groups them; outputs are kept."""
    clock, process = time.perf_counter_ns, sut.process
    group = {Scenario.MULTI_STREAM: s.samples_per_query, Scenario.OFFLINE: sut.batch_size}.get(s.scenario, 1)
    outputs: dict[int, list[np.ndarray]] = {}
    sample_lat, query_lat = array("q"), array("q")
    wall0, mono0 = time.time_ns(), time.monotonic_ns()
    start = clock()
    for chunk in _chunks(range(sut.sample_count), group):
        issue = clock()
        for index, out in zip(chunk, process(chunk), strict=True):
            outputs[index] = out
        latency = clock() - issue
        sample_lat.extend([latency] * len(chunk))
        query_lat.append(latency)
    end = clock() - start
    return Outcome(
        ENGINE, s, np.frombuffer(sample_lat, dtype=np.int64), np.frombuffer(query_lat, dtype=np.int64),
        len(query_lat), sut.sample_count, last_done_ns=end, **_window(wall0, mono0, end),
        ended_by="every sample answered", outputs=outputs,
    )


def run(sut: SystemUnderTest, settings: RunSettings) -> Outcome:
    """Drive ``sut`` through ``settings`` and judge the run."""
    if settings.mode.scored:
        outcome = _accuracy(sut, settings)
    elif settings.scenario == Scenario.SERVER:
        outcome = _server(sut, settings)
    elif settings.scenario == Scenario.OFFLINE:
        outcome = _offline(sut, settings)
    else:
        outcome = _stream(sut, settings)
    outcome.checks = judge(outcome)
    return outcome
