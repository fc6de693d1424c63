"""Server with no options: does the rate search end VALID on a slow and on a fast model, with both engines?

Builds two ONNX models locally with ``onnx.helper`` (random weights, nothing downloaded) and
runs each through ``agent.bench.run`` — the path ``edgeperf-agent bench MODEL --scenario Server``
takes — with no ``--target-qps`` and no ``--target-latency-ms``, on each engine:

- ``image``: a plain 8-layer CNN on a 224×224×3 image (ResNet-stem-sized convolutions, ~20 ms
  on a 2-core x86 VM with ONNX Runtime's default threads);
- ``kws``: a DS-CNN keyword-spotting network on 49×10 MFCC features (48 channels, 3 depthwise-
  separable blocks, ~50 µs there);
- ``fmnist`` (optional): the zoo's ``fashion-mnist-cnn/int8.onnx``.

For each run it prints the SingleStream median and p99, the derived bound and its rule, every
trial (target and achieved QPS, p99, queries over the bound, verdict and why), the chosen QPS,
the verdict and the wall time of the whole bench run.

    python benchmarks/server_search.py [--models image,kws] [--engines native,loadgen] [--profile quick]
                                       [--repeats 1] [--bound-multiple 4 --bound-floor-ms 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent import bench
from agent.contract import RunLength
from agent.jobs import settings_for
from agent.scenarios import server_search


def _conv(nodes: list, inits: list, rng: np.random.Generator, x: str, cin: int, cout: int, kernel: tuple[int, int],
          stride: int, name: str, group: int = 1) -> str:
    """Conv + ReLU with He-initialised random weights; returns the output's name."""
    import onnx.numpy_helper
    from onnx import helper

    fan_in = cin // group * kernel[0] * kernel[1]
    weight = (rng.standard_normal((cout, cin // group, *kernel)) * (2 / fan_in) ** 0.5).astype(np.float32)
    bias = np.zeros(cout, np.float32)
    inits += [onnx.numpy_helper.from_array(weight, f"{name}_w"), onnx.numpy_helper.from_array(bias, f"{name}_b")]
    pads = [kernel[0] // 2, kernel[1] // 2, (kernel[0] - 1) // 2, (kernel[1] - 1) // 2]
    nodes.append(helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [f"{name}_c"], strides=[stride, stride], pads=pads,
                                  group=group))
    nodes.append(helper.make_node("Relu", [f"{name}_c"], [name]))
    return name


def build(kind: str, path: Path) -> Path:
    """``image`` (~20 ms) or ``kws`` (~50 µs) as an ONNX file at ``path``."""
    import onnx
    import onnx.numpy_helper
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    nodes: list = []
    inits: list = []
    if kind == "image":
        source = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 224, 224])
        x, cin = _conv(nodes, inits, rng, "image", 3, 51, (3, 3), 2, "stem"), 51
        for i, (cout, stride) in enumerate([(102, 2), (102, 1), (204, 2), (204, 1), (409, 2), (409, 1), (819, 2)]):
            x, cin = _conv(nodes, inits, rng, x, cin, cout, (3, 3), stride, f"conv{i}"), cout
        classes = 1000
    else:
        source = helper.make_tensor_value_info("mfcc", TensorProto.FLOAT, [1, 1, 49, 10])
        x, cin = _conv(nodes, inits, rng, "mfcc", 1, 48, (10, 4), 2, "stem"), 48
        for i in range(3):
            x = _conv(nodes, inits, rng, x, 48, 48, (3, 3), 1, f"dw{i}", group=48)
            x = _conv(nodes, inits, rng, x, 48, 48, (1, 1), 1, f"pw{i}")
        classes = 12
    inits.append(onnx.numpy_helper.from_array((rng.standard_normal((cin, classes)) * 0.05).astype(np.float32), "fc_w"))
    nodes += [helper.make_node("GlobalAveragePool", [x], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["flat"]),
              helper.make_node("MatMul", ["flat", "fc_w"], ["logits"])]
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])
    model = helper.make_model(helper.make_graph(nodes, kind, [source], [logits], initializer=inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def run_one(model: str, engine: str, profile: str, log_dir: Path) -> tuple[dict[str, Any], dict[str, float]]:
    """One ``bench`` Server run with no rate and no bound, as the CLI runs it with no options, and
    the seconds it spent on the whole, on the search (first trial to measured run) and on measured runs."""
    settings = settings_for(profile, "Server", "performance", RunLength())
    marks: dict[str, float] = {}

    def progress(phase: str, details: dict[str, Any]) -> None:
        marks.setdefault(phase, time.perf_counter())

    started = time.perf_counter()
    doc = bench.run(bench.BenchRequest(model=model, settings=settings, engine=engine, log_dir=log_dir), progress)
    ended = time.perf_counter()
    return doc, {"total": ended - started, "search": marks["running"] - marks.get("searching", marks["running"]),
                 "measured": marks["scoring"] - marks["running"]}


def show(name: str, engine: str, doc: dict[str, Any], seconds: dict[str, float]) -> None:
    s = doc["settings"]["server"]
    verdict = "VALID" if doc["valid"] else "INVALID: " + "; ".join(doc["invalid_reasons"])
    print(f"\n{name} / {engine}: {verdict}  (bench run {seconds['total']:.1f} s: search {seconds['search']:.1f} s, "
          f"measured runs {seconds['measured']:.1f} s)")
    print(f"  SingleStream median {s['single_stream_median_ms']:.3f} ms, p99 {s['single_stream_p99_ms']:.3f} ms "
          f"({s['single_stream_samples']} samples)")
    print(f"  bound {s['latency_bound_ms']:g} ms: {s['latency_bound_rule']}")
    print(f"  {'':5} {'target':>9} {'achieved':>9} {'p99 ms':>9} {'queries':>8} {'over':>5}  verdict")
    for i, t in enumerate(s["trials"], 1):
        kind = "final" if t["final"] else f"#{i}"
        achieved = f"{t['achieved_qps']:9.1f}" if t["achieved_qps"] is not None else f"{'-':>9}"
        p99 = f"{t['p99_ms']:9.3f}" if t["p99_ms"] is not None else f"{'-':>9}"
        print(f"  {kind:5} {t['target_qps']:9g} {achieved} {p99} {t['queries']:8d} {t['over_latency']:5d}  "
              f"{'pass' if t['valid'] else 'fail'} {t['reason'][:110]}")
    k = doc["kpis"]
    print(f"  chosen {s['target_qps']:g} QPS ({s['target_qps_rule']}); measured {k['throughput_sps']:.1f} samples/s, "
          f"p99 {k['latency_ms']['p99']:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="image,kws", help="comma-separated: image, kws, fmnist")
    parser.add_argument("--engines", default="native,loadgen", help="comma-separated: native, loadgen")
    parser.add_argument("--profile", default="quick", help="the run-length profile (the CLI's default: quick)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per model and engine")
    parser.add_argument("--bound-multiple", type=float, default=server_search.BOUND_P99_MULTIPLE,
                        help="try another derived-bound rule: this many SingleStream p99s ...")
    parser.add_argument("--bound-floor-ms", type=float, default=server_search.BOUND_FLOOR_MS, help="... at least this")
    args = parser.parse_args()
    server_search.BOUND_P99_MULTIPLE, server_search.BOUND_FLOOR_MS = args.bound_multiple, args.bound_floor_ms
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = {name: ("zoo:fashion-mnist-cnn/int8.onnx" if name == "fmnist" else str(build(name, root / f"{name}.onnx")))
                  for name in args.models.split(",")}
        for name, model in models.items():
            for engine in args.engines.split(","):
                for _ in range(args.repeats):
                    doc, seconds = run_one(model, engine, args.profile, root / "logs")
                    show(name, engine, doc, seconds)
                    server = doc["settings"]["server"]
                    summary.append((name, engine, doc["valid"], server["latency_bound_ms"], server["target_qps"],
                                    sum(not t["final"] for t in server["trials"]),
                                    sum(t["final"] for t in server["trials"]), seconds))
    print(f"\n{'model':8} {'engine':8} {'verdict':8} {'bound ms':>9} {'QPS':>9} {'trials':>6} {'runs':>5} "
          f"{'search s':>8} {'runs s':>7} {'total s':>7}")
    for name, engine, valid, bound_ms, qps, trials, runs, seconds in summary:
        verdict = "VALID" if valid else "INVALID"
        print(f"{name:8} {engine:8} {verdict:8} {bound_ms:9g} {qps:9g} {trials:6d} {runs:5d} "
              f"{seconds['search']:8.1f} {seconds['measured']:7.1f} {seconds['total']:7.1f}")


if __name__ == "__main__":
    main()
