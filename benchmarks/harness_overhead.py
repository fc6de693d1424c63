"""Harness overhead per query: raw invoke loop vs the native engine vs the official LoadGen.

For the zoo's int8 TFLite and int8 ONNX models on one thread, in one process, this measures the
SingleStream p50 of (a) a bare loop over the runtime's own API, (b) the native engine and
(c) mlperf_loadgen, in interleaved rounds, and prints the overhead of each engine over the raw
loop next to each other. Target: native overhead <= LoadGen's.

    python benchmarks/harness_overhead.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from agent import datasets, model_file, runtimes
from agent.contract import RuntimeOptions
from agent.scenarios import loadgen, native
from agent.scenarios.settings import Scenario, for_profile
from agent.scenarios.sut import ModelSut
from agent.stats import latency_summary_ns

MODELS = ("zoo:fashion-mnist-cnn/int8.tflite", "zoo:fashion-mnist-cnn/int8.onnx")


def raw_loop(path: Path, feeds: list[dict[str, np.ndarray]], seconds: float) -> list[int]:
    """The runtime's own API in a bare loop, timed per call like a harness would time a query."""
    latencies, clock = [], time.perf_counter_ns
    if path.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(path), num_threads=1)
        interp.allocate_tensors()
        index = interp.get_input_details()[0]["index"]
        out = interp.get_output_details()[0]["index"]
        values = [next(iter(f.values())) for f in feeds]

        def call(i: int) -> None:
            interp.set_tensor(index, values[i])
            interp.invoke()
            interp.get_tensor(out)
    else:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

        def call(i: int) -> None:
            sess.run(None, feeds[i])

    end = clock() + int(seconds * 1e9)
    i = 0
    while clock() < end:
        t0 = clock()
        call(i % len(feeds))
        latencies.append(clock() - t0)
        i += 1
    return latencies


def measure(ref: str, seconds: float, rounds: int) -> dict[str, list[float]]:
    model = model_file.resolve(ref)
    session = runtimes.open_session(model, runtimes.runtime_for(model), RuntimeOptions(threads=1))
    samples = datasets.load("synthetic", session.info.inputs, {})
    sut = ModelSut(session, samples)
    raw_loop(model.path, samples.feeds, 1.0)  # warm up caches and CPU frequency
    settings = replace(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=int(seconds * 1000))
    p50 = {"raw": [], "native": [], "loadgen": []}
    for _ in range(rounds):
        p50["raw"].append(latency_summary_ns(raw_loop(model.path, samples.feeds, seconds))["p50"])
        expected = int(p50["raw"][-1])
        outcome = native.run(sut, replace(settings, expected_latency_ns=expected))
        p50["native"].append(latency_summary_ns(outcome.sample_latencies_ns)["p50"])
        with tempfile.TemporaryDirectory() as logs:
            outcome = loadgen.run(sut, replace(settings, expected_latency_ns=expected), Path(logs))
        p50["loadgen"].append(outcome.reported["latency_ns"]["p50"])
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each timed run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per model")
    args = parser.parse_args()
    print(f"SingleStream p50 in µs, 1 thread, median of {args.rounds} interleaved rounds of {args.seconds:g} s each")
    header = ("model", "raw loop", "native", "loadgen", "native +", "loadgen +", "native/LG overhead")
    print(f"{header[0]:<22} {header[1]:>9} {header[2]:>9} {header[3]:>9} {header[4]:>9} {header[5]:>10} {header[6]:>19}")
    for ref in MODELS:
        p50 = {k: statistics.median(v) / 1e3 for k, v in measure(ref, args.seconds, args.rounds).items()}
        over_native, over_lg = p50["native"] - p50["raw"], p50["loadgen"] - p50["raw"]
        ratio = f"{over_native / over_lg:.2f}" if over_lg > 0 else "n/a"
        print(f"{ref.rsplit('/', 1)[-1]:<22} {p50['raw']:9.2f} {p50['native']:9.2f} {p50['loadgen']:9.2f} "
              f"{over_native:+9.2f} {over_lg:+10.2f} {ratio:>19}")


if __name__ == "__main__":
    main()
