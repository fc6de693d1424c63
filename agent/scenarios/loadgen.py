"""The official MLPerf LoadGen (``mlcommons-loadgen``) driving our SUT; its logs are kept.

LoadGen decides what to issue and judges the run; the verdict, percentiles, early-stopping
estimates and throughput in the result are the ones LoadGen wrote to ``mlperf_log_detail.txt``.
The latency histogram holds LoadGen's latencies too, so that fleet percentiles, CDFs and the
regression gate read the same numbers as the table: LoadGen hands them out only through its
trace, which ``loadgen_trace`` streams through a named pipe into a histogram, in every scenario
and mode, without writing it to disk.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import RuntimeMissing
from agent.scenarios.loadgen_trace import TraceError, TraceReader
from agent.scenarios.outcome import Check, Outcome
from agent.scenarios.settings import RunSettings, Scenario
from agent.scenarios.sut import SystemUnderTest
from agent.scenarios.verdict import judge
from agent.stats import REPORTED_PERCENTILES

ENGINE = "loadgen"
LOG_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json")
_SEED_MASK = (1 << 64) - 1
QUERY_BYTES = 460  # RSS per pre-generated query (pool_queries)
PROBE_ABOVE_QUERIES = 50_000  # ~23 MB of pool: below this it is left as the warm-up sized it
PROBE_MS = 250  # the pool probe's minimum duration
POOL_HEADROOM = 3.0  # pool = this × the queries the probe's cycle fits in the minimum duration (a probe on a busy
# machine can be slow: a steady state up to 3 × faster still finds queries; ~460 bytes each)


def available() -> bool:
    """True when ``mlperf_loadgen`` imports (the ``auto`` engine choice)."""
    try:
        import mlperf_loadgen  # noqa: F401
    except ImportError:
        return False
    return True


def _lg():
    try:
        import mlperf_loadgen
    except ImportError:
        raise RuntimeMissing(
            "MLPerf LoadGen is not installed: pip install 'edgeperf[loadgen]' (on aarch64 it builds "
            "from source and needs a C++ compiler), or use --engine native"
        ) from None
    return mlperf_loadgen


def version() -> str:
    return importlib.metadata.version("mlcommons-loadgen")


def test_settings(lg: Any, s: RunSettings, performance_count: int) -> Any:
    """Our settings in LoadGen's ``TestSettings``, field by field."""
    ts = lg.TestSettings()
    ts.scenario = getattr(lg.TestScenario, s.scenario.value)
    ts.mode = lg.TestMode.AccuracyOnly if s.mode.scored else lg.TestMode.PerformanceOnly
    ts.min_duration_ms = s.min_duration_ms
    ts.max_duration_ms = s.max_duration_ms
    ts.min_query_count = s.offline_min_sample_count if s.scenario == Scenario.OFFLINE else s.min_query_count
    ts.max_query_count = s.max_query_count
    expected = max(1, s.expected_latency_ns)
    ts.single_stream_expected_latency_ns = expected
    ts.single_stream_target_latency_percentile = s.target_latency_percentile
    ts.multi_stream_expected_latency_ns = expected * s.samples_per_query
    ts.multi_stream_target_latency_percentile = s.target_latency_percentile
    ts.multi_stream_samples_per_query = s.samples_per_query
    ts.server_target_qps = s.server_target_qps
    ts.server_target_latency_ns = int(s.server_target_latency_ms * 1e6)
    ts.server_target_latency_percentile = s.target_latency_percentile
    ts.offline_expected_qps = s.offline_expected_qps
    ts.schedule_rng_seed = s.schedule_seed & _SEED_MASK
    ts.sample_index_rng_seed = s.sample_index_seed & _SEED_MASK
    ts.performance_sample_count_override = performance_count
    return ts


def parse_detail(path: Path) -> dict[str, Any]:
    """``:::MLLOG {json}`` lines → {key: value} (the last value of a repeated key wins).

    Errors and warnings (``metadata.is_error`` / ``is_warning``) are collected under ``_errors``
    and ``_warnings``: the summary only counts them ("1 warning encountered. See detailed log."),
    and a warning such as LoadGen's "PerfClock and system_clock differ" says the run's timing
    is doubtful, so the result must carry its text.
    """
    values: dict[str, Any] = {"_errors": [], "_warnings": [], "_ending": ""}
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith(":::MLLOG "):
            continue
        event = json.loads(line[len(":::MLLOG ") :])
        key, value = event["key"], event["value"]
        values[key] = value
        metadata = event.get("metadata", {})
        if metadata.get("is_error"):
            values["_errors"].append(f"{key}: {value}")
        if metadata.get("is_warning"):
            values["_warnings"].append(f"{key}: {str(value).strip()}")
        if isinstance(value, str) and "Ending " in value:
            values["_ending"] = value.strip()
    return values


def _power_time_ns(text: str) -> int:
    """LoadGen's power_begin/power_end stamp (``%m-%d-%Y %H:%M:%S.%f``, UTC) → unix ns."""
    stamp = datetime.strptime(text, "%m-%d-%Y %H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return int(stamp.timestamp() * 1e9)


def _checks(s: RunSettings, log: dict[str, Any]) -> list[Check]:
    """LoadGen's own verdict, one check per constraint it logged."""
    reason = str(log.get("result_invalid_reason", "")).strip()
    checks = []
    for name, key in (("min_duration", "result_min_duration_met"), ("min_queries", "result_min_queries_met")):
        ok = bool(log.get(key))
        checks.append(Check(name, ok, "met" if ok else "not met", "" if ok else reason))
    if s.scenario == Scenario.SERVER:
        ok = bool(log.get("result_perf_constraints_met"))
        checks.append(Check("latency_bound", ok, f"{log.get('result_overlatency_query_count', '?')} queries over latency",
                            "" if ok else "reduce the target QPS to improve latency"))
    if s.scenario != Scenario.OFFLINE:
        ok = bool(log.get("early_stopping_met"))
        checks.append(Check("early_stopping", ok, str(log.get("early_stopping_result", "")).strip()))
    return checks


def _reported(s: RunSettings, log: dict[str, Any]) -> dict[str, Any]:
    """The metrics LoadGen computed, in our names (ns)."""
    multi = s.scenario == Scenario.MULTI_STREAM
    latency = {name: log.get(f"result_{name}_{'query_' if multi else ''}latency_ns") for name in ("min", "mean", "max")}
    for name, p in REPORTED_PERCENTILES.items():
        latency[name] = log.get(f"result_{p * 100:.2f}_percentile_{'per_query_' if multi else ''}latency_ns")
    throughput = {
        Scenario.SINGLE_STREAM: log.get("result_qps_with_loadgen_overhead"),
        Scenario.SERVER: log.get("result_completed_samples_per_sec"),
        Scenario.OFFLINE: log.get("result_samples_per_second"),
    }.get(s.scenario)
    stops = {
        Scenario.SINGLE_STREAM: log.get("early_stopping_latency_ss"),
        Scenario.MULTI_STREAM: log.get("early_stopping_latency_ms"),
    }
    # LoadGen logs 0 for an estimate it could not make (too few queries: 64 for p90, 662 for p99);
    # no query takes 0 ns, so 0 is "no estimate" and becomes None, never a 0.0 ms latency.
    return {
        "latency_ns": {k: v for k, v in latency.items() if v is not None},
        "throughput_sps": throughput,
        "early_stopping_ns": stops.get(s.scenario) or None,
        "early_stopping_p99_ns": (log.get("early_stopping_latency_ms") or None) if s.scenario == Scenario.SINGLE_STREAM else None,
        "query_count": log.get("result_query_count"),
        "offered_qps": log.get("result_scheduled_samples_per_sec") if s.scenario == Scenario.SERVER else None,
        "validity": log.get("result_validity"),
    }


def pool_queries(s: RunSettings) -> int:
    """Queries LoadGen pre-generates for SingleStream/MultiStream: 2 × min duration at the expected
    latency, at least the minimum count (``GenerateQueries``). Each costs about ``QUERY_BYTES`` of
    RSS (LoadGen 6.0.17 on x86_64: 600,001 queries took 274 MB)."""
    per_query_ns = max(1, s.expected_latency_ns) * s.samples_per_query
    return max(s.min_query_count, math.ceil(2 * s.min_duration_ms * 1e6 / per_query_ns))


def pool_bytes(s: RunSettings) -> int:
    """At most what LoadGen's pre-generated queries will take for ``s`` (before ``sized_pool`` may
    shrink them): SingleStream and MultiStream performance runs; 0 for the others, whose pools are
    their arrival schedule, their one query or each sample once."""
    if s.mode.scored or s.scenario not in (Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM):
        return 0
    return pool_queries(s) * QUERY_BYTES


def _probe_cycle_ns(lg: Any, sut: SystemUnderTest, s: RunSettings, log_dir: Path) -> float:
    """ns from one query's issue to the next under LoadGen itself, over a short untimed run: the
    model's time plus LoadGen's own dispatch, which the warm-up loop never sees."""
    issues: list[int] = []
    failures: list[BaseException] = []

    def issue(query_samples: list[Any]) -> None:
        issues.append(time.perf_counter_ns())
        for begin in range(0, len(query_samples), sut.batch_size):
            chunk = query_samples[begin : begin + sut.batch_size]
            try:
                sut.process([q.index for q in chunk])
            except Exception as exc:  # raised below: an exception must not cross LoadGen's C++ thread
                failures.append(exc)
            lg.QuerySamplesComplete([lg.QuerySampleResponse(q.id, 0, 0) for q in chunk])

    probe = replace(s, min_duration_ms=PROBE_MS, min_query_count=1, max_query_count=0, max_duration_ms=0)
    log_dir.mkdir(parents=True, exist_ok=True)
    lg_sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(sut.sample_count, sut.sample_count, lambda _: None, lambda _: None)
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(log_dir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False  # LoadGen's default would write ~650 bytes a sample to disk
    try:
        lg.StartTestWithLogSettings(lg_sut, qsl, test_settings(lg, probe, sut.sample_count), log_settings)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(lg_sut)
    if failures:
        raise failures[0]
    return (issues[-1] - issues[0]) / (len(issues) - 1) if len(issues) > 1 else 0.0


def sized_pool(lg: Any, sut: SystemUnderTest, s: RunSettings, log_dir: Path) -> tuple[RunSettings, dict[str, Any]]:
    """``s`` for LoadGen, with an expected latency that pre-generates what the run needs, not 2× the
    warm-up's pace, and how the pool was sized (kept in the result's ``logs.query_pool``).

    The warm-up's fastest sample leaves LoadGen's pool ``2 × min duration / fastest`` queries; under
    LoadGen a query also waits for its dispatch, so a quick run of a 112 KiB model used 38,088 of
    290,943 generated queries and peaked at 199 MB RSS (docs/engines.md, "LoadGen's query pool").
    Where the pool would pass ``PROBE_ABOVE_QUERIES``, a short LoadGen run measures the real
    issue-to-issue cycle and the pool is sized to ``POOL_HEADROOM`` × the queries that cycle fits in
    the minimum duration; it never grows past the warm-up's sizing.
    """
    if s.mode.scored or s.scenario not in (Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM):
        return s, {}  # Server's pool is its arrival schedule, Offline's one query, accuracy's every sample once
    before = pool_queries(s)
    if before <= PROBE_ABOVE_QUERIES:
        return s, {"planned": before}
    cycle_ns = _probe_cycle_ns(lg, sut, s, log_dir)
    # pool = 2 × duration / (expected × spq) = headroom × duration / cycle
    expected = max(s.expected_latency_ns, int(2 * cycle_ns / (POOL_HEADROOM * s.samples_per_query)))
    sized = replace(s, expected_latency_ns=expected)
    return sized, {"planned": pool_queries(sized), "warmup_planned": before, "probe_cycle_us": cycle_ns / 1e3,
                   "expected_latency_ns": expected}


def run(sut: SystemUnderTest, settings: RunSettings, log_dir: Path) -> Outcome:
    """Run ``settings`` under LoadGen with ``sut``, keeping LoadGen's logs in ``log_dir``."""
    lg = _lg()
    log_dir.mkdir(parents=True, exist_ok=True)
    # LoadGen alone gets the pool-sizing expected latency; the result keeps the measured one
    lg_settings, pool = sized_pool(lg, sut, settings, log_dir / "pool-probe")
    accuracy = settings.mode.scored
    outputs: dict[int, list[np.ndarray]] = {}
    failures: list[BaseException] = []
    clock = time.perf_counter_ns
    marks = {"first": 0, "last_issue": 0, "done": 0}  # our own clock, finer than LoadGen's ms stamps
    answered = {"queries": 0, "samples": 0}

    def issue(query_samples: list[Any]) -> None:
        entered = clock()
        marks["first"] = marks["first"] or entered
        marks["last_issue"] = entered
        answered["queries"] += 1
        answered["samples"] += len(query_samples)
        for begin in range(0, len(query_samples), sut.batch_size):
            chunk = query_samples[begin : begin + sut.batch_size]
            keep, responses = [], []
            try:
                results = sut.process([q.index for q in chunk])
            except Exception as exc:  # a failing SUT must not take LoadGen's thread down with it
                failures.append(exc)
                results = [[] for _ in chunk]
            for q, out in zip(chunk, results, strict=True):
                if accuracy and out:
                    outputs[q.index] = out
                    data = np.ascontiguousarray(out[0]).view(np.uint8).ravel()
                    keep.append(data)
                    responses.append(lg.QuerySampleResponse(q.id, data.ctypes.data, data.nbytes))
                else:
                    responses.append(lg.QuerySampleResponse(q.id, 0, 0))
            lg.QuerySamplesComplete(responses)
        marks["done"] = clock()

    count = sut.sample_count
    lg_sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(count, count, lambda _: None, lambda _: None)
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(log_dir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = True
    per_query = settings.samples_per_query if settings.scenario == Scenario.MULTI_STREAM else 0
    with TraceReader(log_dir, per_query) as trace:
        try:
            lg.StartTestWithLogSettings(lg_sut, qsl, test_settings(lg, lg_settings, count), log_settings)
        finally:
            lg.DestroyQSL(qsl)
            lg.DestroySUT(lg_sut)
        if failures:
            raise failures[0]
        traced = trace.finish()
    if traced.samples != answered["samples"]:
        raise TraceError(f"LoadGen's trace held {traced.samples} samples of the {answered['samples']} answered: "
                         f"its format may differ in LoadGen {version()}; use --engine native")

    log = parse_detail(log_dir / "mlperf_log_detail.txt")
    wall_minus_mono = time.time_ns() - time.monotonic_ns()
    if "power_begin" in log and "power_end" in log:  # LoadGen's own window, stamped in wall time (ms)
        begin, end = _power_time_ns(log["power_begin"]), _power_time_ns(log["power_end"])
    else:  # accuracy mode logs no power window: use our callback's first entry and last completion
        perf_minus_mono = time.perf_counter_ns() - time.monotonic_ns()
        begin = marks["first"] - perf_minus_mono + wall_minus_mono
        end = marks["done"] - perf_minus_mono + wall_minus_mono
    no_raw = np.empty(0, dtype=np.int64)  # LoadGen's latencies are in the histogram and its summary only
    outcome = Outcome(
        ENGINE, settings, no_raw, no_raw,
        int(log.get("result_query_count") or answered["queries"]), answered["samples"],
        final_issue_ns=marks["last_issue"] - marks["first"], last_done_ns=marks["done"] - marks["first"],
        window_unix_ns=(begin, end),
        window_monotonic_ns=(begin - wall_minus_mono, end - wall_minus_mono),
        ended_by=log["_ending"] or "every generated query issued",
        outputs=outputs if accuracy else None,
        reported=_reported(settings, log),
        logs={"dir": str(log_dir), "loadgen_version": version(), "files": [f for f in LOG_FILES if (log_dir / f).exists()],
              "summary": (log_dir / "mlperf_log_summary.txt").read_text(errors="replace"), "errors": log["_errors"],
              "warnings": log["_warnings"],
              "query_pool": pool | {"generated": log.get("generated_query_count")}},
        latency_histogram=traced.histogram,
    )
    outcome.checks = judge(outcome) if accuracy else _checks(settings, log)
    return outcome
