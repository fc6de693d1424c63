"""How often does ``edgeperf diff`` cry wolf, and how often does it catch a real slowdown?

Real campaigns on this machine: a broker, the controller's artifact server and one agent (as
``edgeperf demo`` starts them), and an ONNX model that is a chain of 256×256 MatMuls (small
enough to stay in cache: a chain of 1024×1024 ones streams 40 MB of weights per inference and
its p90 moved by 12 % from run to run here, against 4 %). Campaign A runs the chain with
``--layers`` layers, campaign B a heavier file under the same name and path with
``--heavier`` layers (about 10 % slower: the script prints the measured ratio), each with
``--repeats`` runs. Every campaign is run by a controller session of its own, as each
``edgeperf campaign run`` is. The sequence is A B A B … A, so that:

- each pair of consecutive A campaigns is an unchanged pair (false alarm if the gate fails it);
- each A followed by its B is a real slowdown (detected if the gate fails it).

The gate is the README's ``edgeperf diff OLD NEW --fail-on RULES``, in process. Goals (issue 11):
false alarms ≤ 5 % over ≥ 20 unchanged pairs; detection ≥ 95 % of a 10 % slowdown.

    python benchmarks/gate_calibration.py [--pairs 20] [--repeats 3] [--rules 'p90:+5%' ...] [--layers 40 --heavier 44]
                                          [--seconds 1] [--db KEEP.db | --evaluate KEPT.db]

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
from controller.store.database import Store

WIDTH = 256
DEVICE = "calibration-agent"


def chain_model(path: Path, layers: int) -> None:
    """An ONNX model: ``layers`` MatMuls of a 1×256 vector by fixed 256×256 weights."""
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
repeats: {repeats}
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


def run_campaign(options: session.FleetOptions, agents: list, folder: Path, name: str, seconds: float, repeats: int) -> str:
    """One campaign of the chain model as it is on disk now, by a controller session of its own
    (as each ``edgeperf campaign run`` is a process of its own); its id."""
    path = folder / f"{name}.yaml"
    path.write_text(CAMPAIGN.format(name=name, device=DEVICE, artifact=folder / "chain.onnx", seconds=seconds, repeats=repeats))
    with session.fleet(options, artifacts=True, owner=True) as fleet:
        wait_online(fleet, [DEVICE], agents, folder)
        campaign_id = fleet.create_campaign(campaign_file.load(path))
        state = fleet.run(campaign_id)
        if len(fleet.store.results(campaign_id)) != repeats:
            raise SystemExit(f"campaign {name} ended {state} without its {repeats} results")
    return campaign_id


def first_runs(store: Store, campaign_id: str, k: int) -> list:
    """The campaign's first ``k`` repeats (by job key ``…/r0``, ``…/r1``, …): a campaign of ``k`` repeats."""
    return sorted(store.results(campaign_id), key=lambda r: r.job.key)[:k]


def verdict(store: Store, old: str, new: str, rules: list[gate.Rule], k: int) -> gate.Outcome:
    return gate.compare(scorecard.build(first_runs(store, old, k)), scorecard.build(first_runs(store, new, k)), rules)


def report(db: Path, pairs: int, rules_texts: list[str], repeats: int) -> None:
    """The gate's verdicts on every pair, for each rule set, at 3 repeats and at all of them."""
    with Store(db) as store:
        ids = {row["name"]: row["id"] for row in store.db.execute("SELECT id, name FROM campaigns")}
        a_ids, b_ids = [ids[f"a{i}"] for i in range(pairs + 1)], [ids[f"b{i}"] for i in range(pairs)]
        a_p90 = [r.kpis.latency_ms.p90 for c in a_ids for r in store.results(c)]
        b_p90 = [r.kpis.latency_ms.p90 for c in b_ids for r in store.results(c)]
        print(f"machine: {os.cpu_count()} cores; {pairs} unchanged pairs and {pairs} slowdown pairs; database {db}")
        print(f"model p90: A {statistics.median(a_p90):.3f} ms, B {statistics.median(b_p90):.3f} ms "
              f"(B/A {statistics.median(b_p90) / statistics.median(a_p90):.3f})")
        print(f"{'rules':<16}{'repeats':>8}{'false alarms':>15}{'detected':>14}   Δ unchanged      Δ slowdown")
        for text in rules_texts:
            rules = gate.parse_rules(text)
            for k in sorted({min(3, repeats), repeats}):
                unchanged = [verdict(store, a_ids[i], a_ids[i + 1], rules, k) for i in range(pairs)]
                slowed = [verdict(store, a_ids[i], b_ids[i], rules, k) for i in range(pairs)]
                alarms, detected = sum(not o.passed for o in unchanged), sum(not o.passed for o in slowed)
                spread = [f.change for o in unchanged for f in o.findings if f.change is not None]
                caught = [f.change for o in slowed for f in o.findings if f.change is not None]
                print(f"{text:<16}{k:>8}{f'{alarms}/{pairs} = {alarms / pairs:.0%}':>15}"
                      f"{f'{detected}/{pairs} = {detected / pairs:.0%}':>14}   "
                      f"{min(spread):+.1f}…{max(spread):+.1f} %   {min(caught):+.1f}…{max(caught):+.1f} %")
        print("goals: false alarms <= 5 %, detected >= 95 %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=20, help="unchanged pairs and slowdown pairs (each)")
    parser.add_argument("--rules", action="append", help="a --fail-on to judge by (repeatable; default: "
                                                         "p90:+5%%, p50:+5%% and throughput:-5%%, each alone)")
    parser.add_argument("--layers", type=int, default=40, help="MatMul layers of the unchanged model")
    parser.add_argument("--heavier", type=int, default=44, help="MatMul layers of the slower model")
    parser.add_argument("--repeats", type=int, default=3, help="runs per campaign")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum duration of each run")
    parser.add_argument("--db", type=Path, help="keep the campaigns in this database (default: a temporary one)")
    parser.add_argument("--evaluate", type=Path, help="judge the campaigns of a database an earlier run kept; run nothing")
    args = parser.parse_args()
    rules = args.rules or ["p90:+5%", "p50:+5%", "throughput:-5%"]
    for text in rules:
        gate.parse_rules(text)  # a bad rule fails before anything runs
    if args.evaluate:
        report(args.evaluate, args.pairs, rules, args.repeats)
        return

    with tempfile.TemporaryDirectory(prefix="edgeperf-gate-") as tmp, EmbeddedBroker() as broker:
        folder = Path(tmp)
        options = session.FleetOptions(broker=broker.url, db=args.db or folder / "gate.db", artifact_host="127.0.0.1",
                                       artifact_advertise="127.0.0.1")
        agents = [start_agent(broker.url, DEVICE, 1, folder / DEVICE)]
        started = time.monotonic()
        try:
            for i in range(args.pairs + 1):
                chain_model(folder / "chain.onnx", args.layers)
                run_campaign(options, agents, folder, f"a{i}", args.seconds, args.repeats)
                if i < args.pairs:
                    chain_model(folder / "chain.onnx", args.heavier)  # heavier, same name and path
                    run_campaign(options, agents, folder, f"b{i}", args.seconds, args.repeats)
                print(f"  {i + 1}/{args.pairs + 1} rounds, {time.monotonic() - started:.0f} s", flush=True)
        finally:
            stop_agents(agents)
        report(options.db_path, args.pairs, rules, args.repeats)


if __name__ == "__main__":
    main()
