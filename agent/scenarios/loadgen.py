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
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import RuntimeMissing
from agent.scenarios.loadgen_trace import TraceError, TraceReader
from agent.scenarios.outcome import Check, Outcome
from agent.scenarios.settings import Mode, RunSettings, Scenario
from agent.scenarios.sut import SystemUnderTest
from agent.scenarios.verdict import judge
from agent.stats import REPORTED_PERCENTILES

ENGINE = "loadgen"
LOG_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json")
_SEED_MASK = (1 << 64) - 1


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
    ts.mode = lg.TestMode.AccuracyOnly if s.mode == Mode.ACCURACY else lg.TestMode.PerformanceOnly
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
    """``:::MLLOG {json}`` lines → {key: value} (the last value of a repeated key wins)."""
    values: dict[str, Any] = {"_errors": [], "_ending": ""}
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith(":::MLLOG "):
            continue
        event = json.loads(line[len(":::MLLOG ") :])
        key, value = event["key"], event["value"]
        values[key] = value
        if event.get("metadata", {}).get("is_error"):
            values["_errors"].append(f"{key}: {value}")
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
    return {
        "latency_ns": {k: v for k, v in latency.items() if v is not None},
        "throughput_sps": throughput,
        "early_stopping_ns": stops.get(s.scenario) or None,
        "early_stopping_p99_ns": log.get("early_stopping_latency_ms") if s.scenario == Scenario.SINGLE_STREAM else None,
        "query_count": log.get("result_query_count"),
        "validity": log.get("result_validity"),
    }


def run(sut: SystemUnderTest, settings: RunSettings, log_dir: Path) -> Outcome:
    """Run ``settings`` under LoadGen with ``sut``, keeping LoadGen's logs in ``log_dir``."""
    lg = _lg()
    log_dir.mkdir(parents=True, exist_ok=True)
    accuracy = settings.mode == Mode.ACCURACY
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
            lg.StartTestWithLogSettings(lg_sut, qsl, test_settings(lg, settings, count), log_settings)
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
              "summary": (log_dir / "mlperf_log_summary.txt").read_text(errors="replace"), "errors": log["_errors"]},
        latency_histogram=traced.histogram,
    )
    outcome.checks = judge(outcome) if accuracy else _checks(settings, log)
    return outcome
