"""The engine's numbers say exactly what happened: LoadGen's warnings kept, no estimate is null (not
0), both engines offer the same Server load, labels and load times that mean what they say.

Decisions and loads are checked on the fixed-delay SUT (tests/suts.py); real models only for what
does not depend on how busy the machine is (node placement, parameter counts, what is timed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from agent import bench, contract, kpi, model_file, result_text, runtimes
from agent.contract import RuntimeOptions
from agent.runtimes import onnx as onnx_runtime
from agent.scenarios import loadgen, native, run
from agent.scenarios.settings import Scenario, for_profile, with_overrides
from tests.suts import FixedDelaySut

# A line as LoadGen 6.0.17 writes it with MLPERF_LOG_WARNING (logging.h; loadgen.cc writes this one when
# its clock and the system clock drift apart). LoadGen cannot be made to warn on demand on Linux.
PERFCLOCK_WARNING = (':::MLLOG {"key": "warning_generic_message", "value": "PerfClock and system_clock differ by more '
                     'than 0.1%!  pc_sc_ratio: 0.995", "time_ms": 1.0, "namespace": "mlperf::logging", "event_type": '
                     '"POINT_IN_TIME", "metadata": {"is_error": false, "is_warning": true, "file": "loadgen.cc", '
                     '"line_no": 1, "pid": 1, "tid": 1}}\n')


def test_loadgen_warnings_are_read_from_its_detail_log_and_shown(tmp_path):
    """A real LoadGen run, then its detail log with one warning line added: the warning is kept word for
    word (errors stay errors) and the text output shows every warning, one line each."""
    doc = bench.run(bench.BenchRequest(model="zoo:fashion-mnist-cnn/int8.tflite", engine="loadgen", warmup_runs=5,
                                       settings=for_profile("smoke", Scenario.SINGLE_STREAM),
                                       options=RuntimeOptions(threads=1), log_dir=tmp_path))
    real = doc["logs"]["warnings"]  # a busy machine can make LoadGen warn for real ("Logging allocation detected")
    assert ("No warnings encountered" in doc["logs"]["summary"]) == (real == [])
    detail = tmp_path / "warned.txt"
    shutil.copy(tmp_path / doc["run_id"] / "mlperf_log_detail.txt", detail)
    with detail.open("a") as f:
        f.write(PERFCLOCK_WARNING)
    log = loadgen.parse_detail(detail)
    assert log["_warnings"] == [*real, "warning_generic_message: PerfClock and system_clock differ by more than 0.1%!  "
                                       "pc_sc_ratio: 0.995"]
    assert not any("PerfClock" in e for e in log["_errors"])
    doc["logs"]["warnings"] = log["_warnings"]
    assert contract.convert("result", json.loads(json.dumps(doc))).logs.warnings == tuple(log["_warnings"])
    shown = [line.split(None, 1) for line in result_text.render(doc).splitlines() if line.startswith("  warning")]
    assert shown == [["warning", "LoadGen: " + w] for w in log["_warnings"]]


@pytest.mark.parametrize("engine", ["native", "loadgen"])
def test_early_stopping_p99_is_null_under_662_queries(tmp_path, engine):
    """100 SingleStream queries: a p90 estimate exists (64 needed), a p99 one does not (662): null, not 0.0."""
    settings = replace(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=0, min_query_count=100,
                       max_query_count=100, expected_latency_ns=200_000)
    outcome = run(engine, FixedDelaySut(0.0002), settings, tmp_path)
    k = kpi.kpis_of(outcome, None, {})
    assert outcome.query_count == 100
    assert k["early_stopping_latency_ms"] >= 0.2
    assert k["early_stopping_p99_latency_ms"] is None


def test_the_native_server_schedule_is_loadgens(tmp_path):
    """Same seed, rate and minimums: the native engine schedules exactly the queries LoadGen generates,
    at LoadGen's scheduled rate (its detail log prints 6 significant digits)."""
    for seed, qps in ((for_profile("smoke", Scenario.SERVER).schedule_seed, 400.0), (12345, 1000.0)):
        settings = replace(for_profile("smoke", Scenario.SERVER), min_duration_ms=300, min_query_count=200,
                           server_target_qps=qps, server_target_latency_ms=1000.0, schedule_seed=seed)
        loadgen.run(FixedDelaySut(0.0002), settings, tmp_path / str(seed))
        log = loadgen.parse_detail(tmp_path / str(seed) / "mlperf_log_detail.txt")
        times = native.server_schedule(settings)
        assert len(times) == log["generated_query_count"]
        assert (len(times) - 1) / (times[-1] / 1e9) == pytest.approx(log["result_scheduled_samples_per_sec"], rel=1e-5)


def test_both_engines_offer_the_same_server_load(tmp_path):
    """A 1 ms SUT at 400 queries/s: the offered load each engine reports agrees within 0.01 % (LoadGen
    rounds it to 6 digits), and differs from the target by the Poisson draw alone."""
    settings = with_overrides(for_profile("smoke", Scenario.SERVER), min_duration_ms=500, min_query_count=200,
                              server_target_qps=400.0, server_target_latency_ms=1000.0)
    offered = {engine: kpi.kpis_of(run(engine, FixedDelaySut(0.001), settings, tmp_path / engine), None, {})["offered_qps"]
               for engine in ("native", "loadgen")}
    assert offered["native"] == pytest.approx(offered["loadgen"], rel=1e-4)
    assert offered["native"] != pytest.approx(400.0, rel=1e-4)  # a draw, not the target restated
    assert offered["native"] == pytest.approx(400.0, rel=0.15)


def test_ort_label_is_the_provider_that_took_the_nodes_not_the_first_registered():
    """Azure's provider registers first but takes no node of a plain CNN: the label says CPU, with the count."""
    import onnxruntime

    if "AzureExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("platform: this onnxruntime build has no second provider (the PyPI CPU wheel has AzureExecutionProvider)")
    model = model_file.resolve("zoo:fashion-mnist-cnn/fp32.onnx")
    session = runtimes.open_session(model, "onnxruntime", RuntimeOptions(
        threads=1, providers=("AzureExecutionProvider", "CPUExecutionProvider")))
    assert session.info.details["providers"][0] == "AzureExecutionProvider"  # what the old label named
    placement = session.info.details["node_placement"]
    assert list(placement) == ["CPUExecutionProvider"] and placement["CPUExecutionProvider"] > 0
    assert session.info.accelerator == "CPUExecutionProvider"


def test_a_split_placement_is_labelled_with_each_providers_share():
    """Where several providers ran nodes the label gives N of M for each; without ORT's record, "(requested)"."""
    both = {"CUDAExecutionProvider": 40, "CPUExecutionProvider": 2}
    registered = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_runtime._accelerator(registered, both) == \
        "CUDAExecutionProvider 40 of 42 nodes, CPUExecutionProvider 2 of 42 nodes"
    assert onnx_runtime._accelerator(registered, {"CPUExecutionProvider": 42}) == "CPUExecutionProvider"
    assert onnx_runtime._accelerator(registered, None) == "CUDAExecutionProvider (requested)"
    assert onnx_runtime._accelerator(["CPUExecutionProvider"], None) == "CPUExecutionProvider"


def _if_model(path):
    """y = x @ W, with W (4x3) in the then-branch and V (4x3) in the else-branch of an If on ``cond``:
    the main graph holds no initializer at all, as a VAD model with one branch per sample rate."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def branch(name):
        weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), name=f"{name}_w")
        return helper.make_graph([helper.make_node("MatMul", ["x", f"{name}_w"], [f"{name}_y"])], name, [],
                                 [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [1, 3])],
                                 initializer=[weight])

    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=branch("then"), else_branch=branch("else"))], "vad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_parameters_inside_if_branches_are_counted(tmp_path):
    _if_model(tmp_path / "vad.onnx")
    session = runtimes.open_session(model_file.resolve(str(tmp_path / "vad.onnx")), "onnxruntime", RuntimeOptions(threads=1))
    assert session.info.parameters == 2 * 12
    assert session.run({"x": np.ones((1, 4), np.float32), "cond": np.array(True)})[0].tolist() == [[18.0, 22.0, 26.0]]


@pytest.mark.parametrize(("runtime", "model"), [("onnxruntime", "int8.onnx"), ("litert", "int8.tflite")])
def test_load_time_is_the_sessions_own_and_imports_come_first(runtime, model):
    """In a fresh interpreter: preloading imports the runtime (and onnx, which the census needs), and
    the load time the session reports is a part of the wall time of opening it, never more."""
    script = f"""
import json, sys, time
from agent import model_file, runtimes
from agent.contract import RuntimeOptions
runtimes.preload({runtime!r})
imported = sorted(m for m in ("onnx", "onnxruntime", "ai_edge_litert") if m in sys.modules)
t0 = time.perf_counter_ns()
session = runtimes.open_session(model_file.resolve("zoo:fashion-mnist-cnn/{model}"), {runtime!r}, RuntimeOptions(threads=1))
print(json.dumps({{"imported": imported, "load_ms": session.info.load_ms, "wall_ms": (time.perf_counter_ns() - t0) / 1e6}}))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                                    cwd=Path(__file__).parent.parent).stdout.splitlines()[-1])
    assert out["imported"] == (["onnx", "onnxruntime"] if runtime == "onnxruntime" else ["ai_edge_litert"])
    assert 0 < out["load_ms"] <= out["wall_ms"]


def test_loadgen_pool_is_sized_from_its_own_dispatch_not_the_warmup(tmp_path):
    """A warm-up 50× faster than the SUT under LoadGen (10 µs vs 0.5 ms) would pre-generate 60,000 queries
    (about 28 MB); a short LoadGen probe sizes the pool to 3× what its measured cycle fits in the run."""
    settings = replace(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=300, min_query_count=64,
                       expected_latency_ns=10_000)
    assert loadgen.pool_queries(settings) == 60_000
    outcome = loadgen.run(FixedDelaySut(0.0005), settings, tmp_path)
    pool = outcome.logs["query_pool"]
    assert pool["warmup_planned"] == 60_000 and pool["probe_cycle_us"] >= 500
    assert abs(pool["generated"] - pool["planned"]) <= 1  # LoadGen generated what was planned
    # at least the minimum count: a probe slowed past 14 ms a query by a busy machine fits fewer in 0.3 s
    fits = loadgen.POOL_HEADROOM * 300_000 / pool["probe_cycle_us"]
    assert pool["planned"] <= max(settings.min_query_count, fits + 1) and pool["planned"] < 2000
    assert pool["expected_latency_ns"] > settings.expected_latency_ns == outcome.settings.expected_latency_ns
    assert (tmp_path / "pool-probe" / "mlperf_log_detail.txt").exists()
    assert (tmp_path / "pool-probe" / "mlperf_log_trace.json").stat().st_size == 0  # the probe traces nothing


def test_loadgen_pool_is_left_alone_when_small(tmp_path):
    settings = replace(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=300, expected_latency_ns=400_000)
    outcome = loadgen.run(FixedDelaySut(0.0005), settings, tmp_path)
    assert outcome.logs["query_pool"]["planned"] == loadgen.pool_queries(settings) == 1500
    assert outcome.settings.expected_latency_ns == 400_000 and not (tmp_path / "pool-probe").exists()


def test_auto_runs_native_where_loadgens_pool_would_take_over_a_quarter_of_the_memory_available():
    """A quick SingleStream run of a 57 µs model: LoadGen would pre-generate 349,000 queries, ~153 MB.
    With 512 MiB available (a 1 GB board, its OS running) that is over a quarter, so ``auto`` runs native and says
    why; with 24 GiB it runs LoadGen. An engine asked for by name runs whatever the memory, and the
    scenarios LoadGen holds no such pool for (Offline, accuracy) stay with it."""
    from agent import scenarios
    from agent.scenarios.settings import Mode

    quick = replace(for_profile("quick", Scenario.SINGLE_STREAM), expected_latency_ns=57_305)
    need_mb = loadgen.pool_bytes(quick) / 2**20
    assert loadgen.pool_queries(quick) == 349_010 and round(need_mb) == 153
    engine, rule = scenarios.fit_to_memory("auto", "loadgen", quick, available_bytes=2**29)
    assert engine == "native"
    assert rule == "auto: native, as LoadGen would pre-generate 153 MB of queries, over 25% of the 512 MB available"
    assert scenarios.fit_to_memory("auto", "loadgen", quick, available_bytes=24 * 2**30) == (
        "loadgen", "auto: LoadGen is installed")
    assert scenarios.fit_to_memory("loadgen", "loadgen", quick, available_bytes=2**29) == ("loadgen", "given")
    assert scenarios.fit_to_memory("auto", "native", quick) == ("native", "auto: LoadGen (mlperf-loadgen) is not installed")
    for other in (replace(quick, scenario=Scenario.OFFLINE), replace(quick, mode=Mode.ACCURACY)):
        assert loadgen.pool_bytes(other) == 0
        assert scenarios.fit_to_memory("auto", "loadgen", other, available_bytes=2**29)[0] == "loadgen"
