"""One latency source per engine: the stored histogram reads back the engine's own percentiles.

Under LoadGen the histogram holds LoadGen's latencies, streamed from its trace through a named
pipe (``agent/scenarios/loadgen_trace.py``); under the native engine it bins the raw latencies
its table comes from. Bucketing to 3 significant digits is monotone, so the histogram's
nearest-rank percentile is exactly the bucket of the engine's percentile: the tests assert that
equality, which is tighter than the documented 0.5 %.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pytest

from agent import bench, kpi
from agent.contract import RuntimeOptions
from agent.scenarios import loadgen, native
from agent.scenarios.loadgen_trace import TRACE_FILE, TraceError, TraceReader, bucket_array_ns, read_histogram
from agent.scenarios.settings import Mode, RunSettings, Scenario, for_profile
from agent.stats import REPORTED_PERCENTILES, LatencyHistogram, bucket_ns
from tests.suts import FixedDelaySut

SHORT = {  # smoke-length runs of well under a second each (a 0.1 ms SUT)
    Scenario.SINGLE_STREAM: {},
    Scenario.MULTI_STREAM: {},
    Scenario.SERVER: {"server_target_qps": 1000.0, "server_target_latency_ms": 10.0},
    Scenario.OFFLINE: {"offline_min_sample_count": 300},
}


def short(scenario: Scenario) -> RunSettings:
    return replace(for_profile("smoke", scenario), min_duration_ms=0, expected_latency_ns=100_000, **SHORT[scenario])


def stored_histogram(kpis: dict) -> LatencyHistogram:
    """The histogram as the result stores it (``kpis.latency_histogram``), read back."""
    block = kpis["latency_histogram"]
    return LatencyHistogram(Counter({int(k): v for k, v in block["counts"].items()}), block["significant_digits"])


def assert_reads_back(hist: LatencyHistogram, table_ns: dict[str, float]) -> None:
    for name, p in REPORTED_PERCENTILES.items():
        assert hist.percentile(p) == bucket_ns(table_ns[name]), name
        assert abs(hist.percentile(p) - table_ns[name]) <= 0.005 * table_ns[name], name


@pytest.mark.parametrize("scenario", list(Scenario), ids=lambda s: s.value)
def test_loadgen_histogram_holds_loadgens_own_latencies(tmp_path, scenario):
    outcome = loadgen.run(FixedDelaySut(0.0001), short(scenario), tmp_path)
    kpis = kpi.kpis_of(outcome, None, {})
    hist = stored_histogram(kpis)
    assert_reads_back(hist, outcome.reported["latency_ns"])
    basis = outcome.query_count if scenario == Scenario.MULTI_STREAM else outcome.sample_count
    assert hist.n == basis > 0
    assert kpis["latency_ms"]["p99"] == outcome.reported["latency_ns"]["p99"] / 1e6  # the table stays LoadGen's
    assert not (tmp_path / TRACE_FILE).exists()  # a FIFO while it ran; never a file that grows with the run
    assert sorted(os.listdir(tmp_path)) == sorted(outcome.logs["files"])


@pytest.mark.parametrize("scenario", list(Scenario), ids=lambda s: s.value)
def test_native_histogram_bins_the_latencies_of_its_table(scenario):
    outcome = native.run(FixedDelaySut(0.0001), short(scenario))
    kpis = kpi.kpis_of(outcome, None, {})
    table_ns = {name: round(ms * 1e6) for name, ms in kpis["latency_ms"].items()}
    hist = stored_histogram(kpis)
    assert_reads_back(hist, table_ns)
    assert hist.n == (outcome.query_count if scenario == Scenario.MULTI_STREAM else outcome.sample_count)


def test_loadgen_accuracy_mode_bins_loadgens_latencies_and_reads_its_table_from_them(tmp_path):
    """LoadGen reports no latencies in accuracy mode: the table is read from the traced histogram."""
    settings = for_profile("smoke", Scenario.MULTI_STREAM, Mode.ACCURACY)
    outcome = loadgen.run(FixedDelaySut(0.0001, sample_count=48, batch_size=4), settings, tmp_path)
    assert outcome.valid and outcome.reported["latency_ns"] == {}
    kpis = kpi.kpis_of(outcome, None, {})
    hist = stored_histogram(kpis)
    assert hist.n == outcome.query_count == 6  # 48 samples, 8 a query
    assert min(hist.counts) >= 8 * 100_000  # a query's latency is its slowest sample's, after all eight
    for name, p in REPORTED_PERCENTILES.items():
        assert kpis["latency_ms"][name] == hist.percentile(p) / 1e6
    assert not (tmp_path / TRACE_FILE).exists()


def test_a_real_model_run_stores_the_histogram_of_its_latency_table():
    settings = for_profile("smoke", Scenario.SINGLE_STREAM)
    doc = bench.run(bench.BenchRequest(model="zoo:fashion-mnist-cnn/int8.tflite", settings=settings, engine="loadgen",
                                       options=RuntimeOptions(threads=1), dataset="synthetic", warmup_runs=5))
    kpis = doc["kpis"]
    hist = stored_histogram(kpis)
    assert hist.n == kpis["sample_count"]
    for name in ("p50", "p90", "p99"):
        table_ns = round(kpis["latency_ms"][name] * 1e6)
        assert hist.percentile(REPORTED_PERCENTILES[name]) == bucket_ns(table_ns), name
    assert not (Path(doc["logs"]["dir"]) / TRACE_FILE).exists()


def test_vector_buckets_round_as_bucket_ns():
    rng = np.random.default_rng(7)
    values = np.concatenate([
        (10 ** rng.uniform(0, 12, size=20_000)).astype(np.int64),
        np.array([0, -5, 1, 9, 999, 1000, 1005, 1015, 9995, 55_250, 55_350, 99_950, 99_949, 10**15 + 5 * 10**11]),
    ])
    assert bucket_array_ns(values).tolist() == [bucket_ns(v) for v in values.tolist()]


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``size`` bytes a read, as a pipe under load does."""

    def __init__(self, data: bytes, size: int) -> None:
        self._data, self._size, self._at = data, size, 0

    def read(self, n: int = -1) -> bytes:
        block = self._data[self._at : self._at + min(n, self._size)]
        self._at += len(block)
        return block


def sample_event(query: int, latency_ns: int) -> bytes:
    """One "Sample" begin event as LoadGen 6.0.17 writes it."""
    return (b'{"name":"Sample","cat":"default","ph":"b","pid":1,"id":0,"ts":1.0,"args":{"sample_seq":0,'
            b'"query_seq":%d,"sample_idx":3,"issue_start_ns":0,"complete_ns":%d}},\n' % (query, latency_ns))


def test_per_query_latency_is_the_slowest_sample_across_read_boundaries():
    rng = np.random.default_rng(3)
    latency = {(q, s): int(rng.integers(100_000, 900_000)) for q in range(40) for s in range(8)}
    events = list(latency)
    rng.shuffle(events)  # samples of several queries interleave, as LoadGen's threads log them
    noise = b'{"name":"QuerySamplesComplete","ph":"X","pid":1,"tid":1,"ts":2.0,"dur":0.5,"args":{}},\n'
    trace = b'{"traceEvents":[\n' + b"".join(sample_event(q, latency[q, s]) + noise for q, s in events)
    counts, samples = read_histogram(Trickle(trace, 97), query_samples=8)
    assert samples == 320
    slowest = [max(latency[q, s] for s in range(8)) for q in range(40)]
    assert counts == LatencyHistogram.of(slowest).counts
    per_sample, _ = read_histogram(Trickle(trace, 4096))
    assert per_sample == LatencyHistogram.of(list(latency.values())).counts


def test_a_reader_no_writer_opened_sees_eof_and_leaves_nothing(tmp_path):
    """LoadGen failing before it opens its trace must not leave the reader waiting."""
    with TraceReader(tmp_path) as reader:
        assert (tmp_path / TRACE_FILE).is_fifo()
        traced = reader.finish()
    assert (traced.samples, traced.histogram.n) == (0, 0)
    assert not (tmp_path / TRACE_FILE).exists()


def reader_process() -> psutil.Process:
    (child,) = [c for c in psutil.Process().children() if "agent.scenarios.loadgen_trace" in c.cmdline()]
    return child


def test_a_stopped_reader_times_out_with_a_clear_error(tmp_path):
    with TraceReader(tmp_path) as reader:
        child = reader_process()
        child.send_signal(signal.SIGSTOP)
        with pytest.raises(TraceError, match=r"did not finish within 0\.5 s"):
            reader.finish(timeout_s=0.5)
    assert not child.is_running() and not (tmp_path / TRACE_FILE).exists()


class ReaderKillingSut(FixedDelaySut):
    """Kills the trace reader on its first call: the run must end, and say the latencies are lost."""

    def process(self, indices):
        if not self.calls:
            reader_process().kill()  # not waited for here: the reader's parent reaps it and sees SIGKILL
        return super().process(indices)


def test_a_reader_killed_mid_run_fails_the_run_clearly(tmp_path):
    settings = replace(short(Scenario.SINGLE_STREAM), min_query_count=2000)  # ~1.3 MB of trace, far past a pipe's buffer
    with pytest.raises(TraceError, match=r"trace reader failed .*exit status -9"):
        loadgen.run(ReaderKillingSut(0.00001), settings, tmp_path)
    assert not (tmp_path / TRACE_FILE).exists()


def test_a_reader_dead_before_loadgen_opens_the_trace_cannot_block_it(tmp_path):
    """LoadGen opens its trace with a blocking open(); with its reader gone, that open and the writes must still return."""
    written = threading.Event()

    def loadgen_writing() -> None:
        with open(tmp_path / TRACE_FILE, "wb") as trace:  # what LoadGen's std::ofstream does
            trace.write(sample_event(0, 123_456) * 4000)  # ~0.6 MB: ten times a pipe's buffer
        written.set()

    with TraceReader(tmp_path) as reader:
        child = reader_process()
        child.kill()
        while child in psutil.Process().children():  # until its parent has reaped it: no reader is left
            time.sleep(0.01)
        writer = threading.Thread(target=loadgen_writing, daemon=True)
        writer.start()
        assert written.wait(timeout=20), "the trace's writer blocked"
        with pytest.raises(TraceError, match="exit status -9"):
            reader.finish()
