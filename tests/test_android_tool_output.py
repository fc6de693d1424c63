"""The phone tools' output read as their sources print it (tests/fixtures/android/README.md says
which outputs are modelled and from where), the end marker that tells a finished command from a
cut-off one, and latency blocks that hold only what a tool reported."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from agent import contract
from agent.android import latency
from agent.android.tool_output import CutOff, finished, marked, parse_benchmark_model, parse_perf_test
from agent.errors import InferenceError
from agent.zoo import zoo_root

FIXTURES = Path(__file__).parent / "fixtures" / "android"


def test_a_marked_command_reports_its_own_status_and_a_cut_off_one_is_refused():
    command = marked("/data/local/tmp/benchmark_model --graph=m.tflite")
    assert command == "/data/local/tmp/benchmark_model --graph=m.tflite; echo __EDGEPERF_RC=$?"
    body, status = finished("line one\nline two\n__EDGEPERF_RC=3\n", "benchmark_model")
    assert (body, status) == ("line one\nline two\n", 3)
    # adb 29 exits 0 with whatever arrived when the phone goes away: without the marker it is not a run
    with pytest.raises(CutOff, match="benchmark_model: the output ends without the command's end marker"):
        finished("INFO: count=10 first=1 curr=1 min=1 max=2 avg=1.5 std=0.5\n", "benchmark_model")
    with pytest.raises(CutOff):
        finished("echo __EDGEPERF_RC=", "x")  # the marker's text in the output, without a status, is not the marker


def test_current_benchmark_model_output_gives_its_percentiles_and_nothing_more():
    run = parse_benchmark_model((FIXTURES / "benchmark_model_litert.txt").read_text())
    assert run.init_ms == pytest.approx(4.873) and run.first_inference_us == 412
    assert run.warmup.count == 2714 and run.inference.count == 5503
    assert (run.inference.median, run.inference.p95, run.inference.avg) == (174, 214, 180.9)
    assert (run.memory_init_mb, run.memory_overall_mb) == (3.26953, 3.51172)
    block = latency.from_benchmark_model(run)
    assert block.latency_ms["p50"] == pytest.approx(0.174) and block.latency_ms["p95"] == pytest.approx(0.214)
    assert block.latency_ms["mean"] == pytest.approx(0.1809) and block.latency_ms["max"] == pytest.approx(1.204)
    # the tool printed no p90/p99: they stay null rather than be made from the mean and std
    assert all(block.latency_ms[k] is None for k in ("p90", "p97", "p99", "p999"))
    assert block.histogram is None and block.runs == 5503 and block.basis == latency.AGGREGATE
    assert block.throughput_sps == pytest.approx(1e6 / 180.9)
    contract.build(contract.LatencyMs, block.latency_ms)  # the contract's latency type holds it as it is


def test_an_older_benchmark_model_without_percentiles_leaves_p50_null():
    run = parse_benchmark_model((FIXTURES / "benchmark_model_tf2_4.txt").read_text())
    assert run.inference.median is None and run.inference.p95 is None and run.init_ms == pytest.approx(2.104)
    assert (run.memory_init_mb, run.memory_overall_mb) == (2.81641, 3.10156)
    block = latency.from_benchmark_model(run)
    assert block.latency_ms["p50"] is None and block.latency_ms["min"] == pytest.approx(0.299)


@pytest.mark.parametrize("cut", ["Inference timings in us", "count=3044"])
def test_benchmark_model_output_without_its_summary_or_statistics_is_one_clear_error(cut):
    text = (FIXTURES / "benchmark_model_tf2_4.txt").read_text()
    lines = text.splitlines()
    keep = "\n".join(line for line in lines if cut not in line and (cut != "count=3044" or "count=" not in line))
    with pytest.raises(InferenceError, match="benchmark_model's output has no") as info:
        parse_benchmark_model(keep)
    assert "\n" not in str(info.value)


def _perf_test_output(latencies_s: list[float], current: bool = True) -> str:
    """``onnxruntime_perf_test -v`` as performance_runner prints it, on a current build or an older one
    (tests/fixtures/android/README.md)."""
    lines = [f"iteration:{n},time_cost:{seconds!r}" for n, seconds in enumerate(latencies_s, start=1)]
    total = sum(latencies_s)
    if current:
        lines += ["Session creation time cost: 0.0213 s", "First inference time cost: 3 ms",
                  f"Total inference time cost: {total!r} s", f"Total inference requests: {len(latencies_s)}",
                  f"Average inference time cost: {total / len(latencies_s) * 1000!r} ms", "Avg CPU usage: 97 %",
                  "Peak working set size: 48234496 bytes"]
    else:
        lines += [f"Total time cost:{total!r}", f"Total iterations:{len(latencies_s)}",
                  f"Average time cost:{total / len(latencies_s) * 1000!r} ms"]
    return "\n".join(lines) + "\n"


def _real_latencies(n: int) -> list[float]:
    """The zoo model run ``n`` times in ONNX Runtime here, each run timed: real latencies to print."""
    session = ort.InferenceSession(str(zoo_root() / "fashion-mnist-cnn" / "fp32.onnx"), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.zeros((1, 1, 28, 28), dtype=np.float32)}
    out = []
    for _ in range(n):
        start = time.perf_counter()
        session.run(None, feed)
        out.append(time.perf_counter() - start)
    return out


def test_perf_test_per_run_latencies_give_loadgen_percentiles():
    seconds = _real_latencies(300)
    run = parse_perf_test(_perf_test_output(seconds))
    assert run.runs_s == seconds
    assert (run.session_s, run.first_inference_ms, run.peak_working_set_bytes) == (0.0213, 3.0, 48234496)
    old = parse_perf_test(_perf_test_output(seconds, current=False))
    assert old.runs_s == seconds and (old.session_s, old.first_inference_ms, old.peak_working_set_bytes) == (None, None, None)
    block = latency.from_runs(run.runs_s)
    ordered = np.sort(np.round(np.asarray(seconds) * 1e9).astype(np.int64))
    for name, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):  # sorted[floor(n*p)], as the tool's DumpToFile
        assert block.latency_ms[name] == pytest.approx(ordered[int(len(ordered) * p)] / 1e6)
    assert block.histogram["n"] == 300 and block.runs == 300 and block.basis == latency.PER_RUN
    assert block.throughput_sps == pytest.approx(300 / sum(seconds))
    contract.build(contract.LatencyMs, block.latency_ms)


def test_perf_test_output_without_per_run_lines_or_with_runs_missing_is_refused():
    text = _perf_test_output([0.001, 0.002, 0.003])
    with pytest.raises(InferenceError, match="run it with -v"):
        parse_perf_test("\n".join(line for line in text.splitlines() if not line.startswith("iteration:")))
    with pytest.raises(InferenceError, match="printed 2 runs but says it ran 3"):
        parse_perf_test(text.replace("iteration:2,time_cost:0.002\n", ""))
