"""How often does ``edgeperf diff`` cry wolf, and how often does it catch a real slowdown?

Real campaigns on this machine: a broker, the controller's artifact server and one agent (as
``edgeperf demo`` starts them), and an ONNX model that is a chain of 1024×1024 MatMuls. Campaign
A runs the chain with ``LAYERS`` layers, campaign B a heavier file under the same name and path
with ``LAYERS + 1`` layers (about 10 % more work), each with ``repeats: 3``. The sequence is
A B A B … A, so that:

- each pair of consecutive A campaigns is an unchanged pair (false alarm if the gate fails it);
- each A followed by its B is a real slowdown (detected if the gate fails it).

The gate is the README's ``edgeperf diff OLD NEW --fail-on RULES``, in process. Goals (issue 11):
false alarms ≤ 5 % over ≥ 20 unchanged pairs; detection ≥ 95 % of a 10 % slowdown.

    python benchmarks/gate_calibration.py [--pairs 20] [--rules 'p90:+5%'] [--layers 10]

Figures quoted in docs/scorecards.md come from one run of this script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from controller.analysis import gate, scorecard
from controller.fleet import campaign as campaign_file
from controller.fleet import session
from controller.fleet.broker import EmbeddedBroker
from controller.fleet.demo import start_agent, stop_agents, wait_online
from controller.fleet.scheduler import Fleet
from controller.store.database import Store

WIDTH = 1024
DEVICE = "calibration-agent"


def chain_model(path: Path, layers: int) -> None:
    """An ONNX model: ``layers`` MatMuls of a 1×1024 vector by fixed 1024×1024 weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [current, f"w{i}"], [f"h{i}"]))
        current = f"h{i}"
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor_value_info(current, TensorProto.FLOAT, [1, WIDTH])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


CAMPAIGN = """name: {name}
profile: smoke
scenarios: [SingleStream]
repeats: 3
retries: 0
timeout_s: 300
devices: {{ids: [{device}]}}
overrides: {{min_duration_s: {seconds}}}
models:
  - name: chain
    variants:
      - artifact: {artifact}
        name: chain
        threads: 1
"""


def run_campaign(fleet: Fleet, folder: Path, name: str, seconds: float) -> str:
    """One campaign of the chain model as it is on disk now; its id."""
    path = folder / f"{name}.yaml"
    path.write_text(CAMPAIGN.format(name=name, device=DEVICE, artifact=folder / "chain.onnx", seconds=seconds))
    campaign_id = fleet.create_campaign(campaign_file.load(path))
    state = fleet.run(campaign_id)
    if len(fleet.store.results(campaign_id)) != 3:
        raise SystemExit(f"campaign {name} ended {state} without its 3 results")
    return campaign_id


def verdict(store: Store, old: str, new: str, rules: list[gate.Rule]) -> gate.Outcome:
    return gate.compare(scorecard.build(store.results(old)), scorecard.build(store.results(new)), rules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=20, help="unchanged pairs and slowdown pairs (each)")
    parser.add_argument("--rules", default="p90:+5%", help="the gate's --fail-on")
    parser.add_argument("--layers", type=int, default=10, help="MatMul layers of the unchanged model")
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum duration of each run")
    args = parser.parse_args()
    rules = gate.parse_rules(args.rules)

    with tempfile.TemporaryDirectory(prefix="edgeperf-gate-") as tmp, EmbeddedBroker() as broker:
        folder = Path(tmp)
        options = session.FleetOptions(broker=broker.url, db=folder / "gate.db", artifact_host="127.0.0.1",
                                       artifact_advertise="127.0.0.1")
        agents = [start_agent(broker.url, DEVICE, 1, folder / DEVICE)]
        started = time.monotonic()
        try:
            with session.fleet(options, artifacts=True) as fleet:
                wait_online(fleet, [DEVICE], agents, folder)
                a_ids, b_ids = [], []
                for i in range(args.pairs + 1):
                    chain_model(folder / "chain.onnx", args.layers)
                    a_ids.append(run_campaign(fleet, folder, f"a{i}", args.seconds))
                    if i < args.pairs:
                        chain_model(folder / "chain.onnx", args.layers + 1)  # heavier, same name and path
                        b_ids.append(run_campaign(fleet, folder, f"b{i}", args.seconds))
                    print(f"  {i + 1}/{args.pairs + 1} rounds, {time.monotonic() - started:.0f} s", flush=True)
                unchanged = [verdict(fleet.store, a_ids[i], a_ids[i + 1], rules) for i in range(args.pairs)]
                slowed = [verdict(fleet.store, a_ids[i], b_ids[i], rules) for i in range(args.pairs)]
                a_p90 = [r.kpis.latency_ms.p90 for c in a_ids for r in fleet.store.results(c)]
                b_p90 = [r.kpis.latency_ms.p90 for c in b_ids for r in fleet.store.results(c)]
        finally:
            stop_agents(agents)

    false_alarms = sum(not o.passed for o in unchanged)
    detected = sum(not o.passed for o in slowed)
    spread = [f.change for o in unchanged for f in o.findings if f.change is not None]
    print(f"machine: {os.cpu_count()} cores; {args.pairs} unchanged pairs and {args.pairs} slowdown pairs, "
          f"repeats: 3, rules {args.rules}, {time.monotonic() - started:.0f} s")
    print(f"model p90: A {statistics.median(a_p90):.3f} ms, B {statistics.median(b_p90):.3f} ms "
          f"(B/A {statistics.median(b_p90) / statistics.median(a_p90):.3f})")
    print(f"unchanged pairs: p90 change median {statistics.median(spread):+.1f} %, "
          f"range {min(spread):+.1f} … {max(spread):+.1f} %")
    print(f"{'':24}{'measured':>12}{'goal':>10}")
    print(f"{'false alarms':24}{f'{false_alarms}/{args.pairs} = {false_alarms / args.pairs:.0%}':>12}{'<= 5 %':>10}")
    print(f"{'slowdowns detected':24}{f'{detected}/{args.pairs} = {detected / args.pairs:.0%}':>12}{'>= 95 %':>10}")


if __name__ == "__main__":
    main()
