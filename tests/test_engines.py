"""The native engine agrees with the official LoadGen: on a real model, and decision by decision.

On the real model only the verdicts and counts are compared: its latency on a busy machine (a
test suite running files in parallel, other jobs) is not the engines' to control. Latencies
are compared on a SUT of controlled delay, which neither engine can report faster than it is.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from agent import datasets, model_file, runtimes
from agent.contract import RuntimeOptions
from agent.scenarios import loadgen, native, run
from agent.scenarios.settings import Mode, RunSettings, Scenario, for_profile
from agent.scenarios.sut import ModelSut
from agent.stats import bucket_ns
from tests.suts import FixedDelaySut

ENGINES = ("native", "loadgen")


def both(make_sut, settings: RunSettings, tmp_path):
    return {engine: run(engine, make_sut(), settings, tmp_path / engine) for engine in ENGINES}


def failed(outcome) -> list[str]:
    return [c.name for c in outcome.checks if not c.ok]


def test_real_model_same_verdict(tmp_path):
    model = model_file.resolve("zoo:fashion-mnist-cnn/int8.tflite")
    session = runtimes.open_session(model, "litert", RuntimeOptions(threads=1))
    sut = ModelSut(session, datasets.load("synthetic", session.info.inputs, {}))
    for i in range(200):  # warm caches before either engine runs
        sut.process([i % sut.sample_count])
    settings = replace(for_profile("smoke", Scenario.SINGLE_STREAM), expected_latency_ns=50_000)
    for engine, outcome in both(lambda: sut, settings, tmp_path).items():
        assert outcome.valid, (engine, outcome.invalid_reasons)
        assert outcome.query_count >= 64


def test_both_engines_time_a_controlled_delay_alike(tmp_path):
    """A 2 ms SUT: each engine's p50 is at least the delay, and they agree within max(50 %, 1 ms)
    (LoadGen's own dispatch adds a few µs per query, benchmarks/harness_overhead.py)."""
    from agent.stats import latency_summary_ns

    delay_ns = 2_000_000
    settings = replace(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=300, expected_latency_ns=delay_ns)
    outcomes = both(lambda: FixedDelaySut(delay_ns / 1e9), settings, tmp_path)
    native_p50 = latency_summary_ns(outcomes["native"].sample_latencies_ns)["p50"]
    loadgen_p50 = outcomes["loadgen"].reported["latency_ns"]["p50"]
    assert native_p50 >= delay_ns and loadgen_p50 >= delay_ns
    assert abs(native_p50 - loadgen_p50) <= max(0.5 * loadgen_p50, 1_000_000), (native_p50, loadgen_p50)


@pytest.mark.parametrize(
    ("name", "scenario", "changes", "valid", "queries", "samples"),
    [
        ("ss-minimums", Scenario.SINGLE_STREAM, {"min_query_count": 64}, True, 64, 64),
        ("ss-too-few-for-early-stopping", Scenario.SINGLE_STREAM, {"min_query_count": 40}, False, 40, 40),
        ("ss-max-queries", Scenario.SINGLE_STREAM, {"min_query_count": 100, "max_query_count": 70}, False, 70, 70),
        ("ms-minimums", Scenario.MULTI_STREAM, {"min_query_count": 662}, True, 662, 5296),
        ("server-within-bound", Scenario.SERVER,  # a 1 ms SUT at 30 % load: far within 200 ms, however busy the machine
         {"min_query_count": 459, "server_target_qps": 300.0, "server_target_latency_ms": 200.0}, True, 459, 459),
        ("offline-samples", Scenario.OFFLINE, {"offline_min_sample_count": 300}, True, 1, 300),
        ("offline-short", Scenario.OFFLINE,
         {"offline_min_sample_count": 200, "min_duration_ms": 1500, "offline_expected_qps": 100.0}, False, 1, 200),
    ],
)
def test_fixed_delay_sut_same_counts_and_decisions(tmp_path, name, scenario, changes, valid, queries, samples):
    """A deterministic SUT: both engines issue the same number of queries and judge alike."""
    delay = 0.0001 if scenario == Scenario.MULTI_STREAM else 0.001
    base = replace(for_profile("smoke", scenario), min_duration_ms=0, expected_latency_ns=int(delay * 1e9))
    settings = replace(base, **changes)
    outcomes = both(lambda: FixedDelaySut(delay), settings, tmp_path)
    native_out, lg_out = outcomes["native"], outcomes["loadgen"]
    assert (native_out.valid, lg_out.valid) == (valid, valid), (native_out.invalid_reasons, lg_out.invalid_reasons)
    assert failed(native_out) == failed(lg_out)
    for outcome in outcomes.values():
        assert (outcome.query_count, outcome.sample_count) == (queries, samples)


def test_overloaded_server_is_invalid_in_both(tmp_path):
    """Arrivals at twice the SUT's capacity: latency grows past the bound and both engines say so."""
    settings = replace(for_profile("smoke", Scenario.SERVER), min_duration_ms=0, min_query_count=459,
                       server_target_qps=2000.0, server_target_latency_ms=10.0)
    outcomes = both(lambda: FixedDelaySut(0.001), settings, tmp_path)
    for outcome in outcomes.values():
        assert not outcome.valid
        assert "latency_bound" in failed(outcome)
    assert failed(outcomes["native"]) == failed(outcomes["loadgen"])


def test_accuracy_mode_answers_every_sample_exactly_once(tmp_path):
    for scenario in (Scenario.SINGLE_STREAM, Scenario.OFFLINE, Scenario.MULTI_STREAM):
        settings = for_profile("smoke", scenario, Mode.ACCURACY)
        for engine in ENGINES:
            sut = FixedDelaySut(0.00001, sample_count=48, batch_size=4)
            outcome = run(engine, sut, settings, tmp_path / f"{engine}-{scenario.value}")
            answered = sorted(i for call in sut.calls for i in call)
            assert answered == list(range(48)), (engine, scenario)
            assert sorted(outcome.outputs) == list(range(48))
            assert all(int(outcome.outputs[i][0][0]) == i for i in range(48))  # outputs kept by index
            assert outcome.valid


def test_native_max_duration_ends_the_run_on_time():
    settings = replace(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=10_000, max_duration_ms=500)
    started = time.perf_counter()
    outcome = native.run(FixedDelaySut(0.002), settings)
    elapsed = time.perf_counter() - started
    assert 0.5 <= elapsed < 5.0  # min_duration is 10 s: ended by max_duration, with room for a starved machine
    assert outcome.ended_by == "max duration reached"
    min_queries = next(c for c in outcome.checks if c.name == "min_queries")
    assert min_queries.ok and min_queries.detail.startswith("skipped")  # MLPerf Mobile's enforce_max_duration
    assert not next(c for c in outcome.checks if c.name == "min_duration").ok  # the minimum was still not met


def test_loadgen_logs_are_kept_and_server_latencies_come_from_its_trace(tmp_path):
    # a 0.5 ms SUT at 500 queries/s (a quarter of its capacity) and a 1 s bound: VALID however busy the machine
    settings = replace(for_profile("smoke", Scenario.SERVER), min_duration_ms=0, min_query_count=459, server_target_qps=500.0,
                       server_target_latency_ms=1000.0)
    outcome = loadgen.run(FixedDelaySut(0.0005), settings, tmp_path)
    assert {"mlperf_log_summary.txt", "mlperf_log_detail.txt"} <= set(outcome.logs["files"])
    assert "Result is : VALID" in outcome.logs["summary"]
    assert not (tmp_path / "mlperf_log_trace.json").exists()  # streamed through a pipe: it grows 650 bytes a sample
    assert outcome.latency_histogram.n == 459
    assert outcome.latency_histogram.percentile(0.99) == bucket_ns(outcome.reported["latency_ns"]["p99"])  # LoadGen's own


def test_server_schedule_is_poisson_at_the_target_rate():
    settings = replace(for_profile("smoke", Scenario.SERVER), min_duration_ms=20_000, min_query_count=100,
                       server_target_qps=1000.0)
    times = native.server_schedule(settings)
    assert times[-1] >= 20_000 * 1_000_000 and times[-2] < 20_000 * 1_000_000  # one past the minimum, as LoadGen
    gaps = (times[1:] - times[:-1]) / 1e9
    assert gaps.mean() == pytest.approx(1 / 1000, rel=0.03)
    assert gaps.std() == pytest.approx(1 / 1000, rel=0.05)  # exponential: std == mean
