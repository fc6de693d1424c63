"""Scorecards, rankings and the regression gate, on stored results of real runs.

The runs' documents are what the agent sends; scorecards read them typed, as the store gives
them (``contract.convert`` is the decode a stored result goes through). Expected values are
taken from the documents themselves, so the typed reading is checked, not assumed.
"""

from __future__ import annotations

import copy
import json
from collections import Counter

import msgspec
import numpy as np
import pytest

from agent import bench, contract, kpi
from agent.contract import Result, RuntimeOptions
from agent.scenarios.settings import Mode, Scenario, for_profile, with_overrides
from agent.stats import LatencyHistogram, latency_summary_ns
from controller.analysis import gate as diff
from controller.analysis import scorecard
from tests.cli_harness import edgeperf
from tests.stored_results import store_campaign


def run(model: str, device: str, scenario=Scenario.SINGLE_STREAM, mode=Mode.PERFORMANCE, dataset="synthetic") -> dict:
    settings = with_overrides(for_profile("smoke", scenario, mode), min_duration_ms=200)
    return bench.run(bench.BenchRequest(model=f"zoo:fashion-mnist-cnn/{model}", settings=settings, engine="native",
                                        options=RuntimeOptions(threads=1), dataset=dataset, warmup_runs=3, device_id=device))


def typed(docs: list[dict]) -> list[Result]:
    return [contract.convert("result", d) for d in docs]


def document(result: Result, docs: list[dict]) -> dict:
    """The document a typed result was read from."""
    return next(d for d in docs if d["run_id"] == result.run_id)


@pytest.fixture(scope="module")
def docs():
    perf = [run("int8.onnx", "pi-a") for _ in range(3)] + [run("int8.onnx", "pi-b")]
    acc = [run(m, "pi-a", mode=Mode.ACCURACY, dataset="fashion-mnist:subset") for m in ("int8.tflite", "fp32.onnx")]
    return perf + acc


@pytest.fixture(scope="module")
def results(docs):
    return typed(docs)


def test_repeats_get_bootstrap_intervals_and_single_runs_get_none(docs, results):
    rows = {(r.device, r.mode, r.model): r for r in scorecard.build(results)}
    repeated = rows[("pi-a", "performance", "zoo:fashion-mnist-cnn/int8.onnx")]
    assert repeated.runs == 3
    p90 = repeated.cells["latency_ms.p90"]
    values = [document(r, docs)["kpis"]["latency_ms"]["p90"] for r in repeated.results]
    assert p90.value == pytest.approx(np.mean(values)) and p90.lo <= p90.value <= p90.hi
    assert min(values) <= p90.lo and p90.hi <= max(values)  # a bootstrap of the mean stays inside the data
    single = rows[("pi-b", "performance", "zoo:fashion-mnist-cnn/int8.onnx")].cells["latency_ms.p90"]
    assert single.lo is None and single.runs == 1


def test_accuracy_is_pooled_and_set_against_fp32(docs, results):
    rows = {(r.mode, r.precision, r.model): r for r in scorecard.build(results) if r.mode == "accuracy"}
    int8 = rows[("accuracy", "int8", "zoo:fashion-mnist-cnn/int8.tflite")]
    fp32 = rows[("accuracy", "fp32", "zoo:fashion-mnist-cnn/fp32.onnx")]
    top1 = int8.cells["accuracy.top1"]
    assert top1.value == document(int8.results[0], docs)["kpis"]["accuracy"]["top1"] and top1.lo < top1.value < top1.hi
    delta = int8.cells["accuracy_delta_pp"]
    assert delta.value == pytest.approx((top1.value - fp32.cells["accuracy.top1"].value) * 100)
    assert delta.lo < delta.value < delta.hi
    assert "accuracy_delta_pp" not in fp32.cells  # the reference has nothing to be compared with


def test_fleet_rows_merge_histograms_instead_of_averaging_percentiles(docs, results):
    perf = [r for r in results if r.mode == "performance"]
    (row,) = scorecard.build(perf, fleet=True)
    assert row.fleet and row.runs == 4 and row.device == scorecard.device_class(perf[0])
    merged = LatencyHistogram()
    for d in docs:
        if d["mode"] == "performance":
            merged.merge(LatencyHistogram(Counter({int(b): n for b, n in d["kpis"]["latency_histogram"]["counts"].items()})))
    assert row.cells["latency_ms.p90"].value == merged.percentile(0.90) / 1e6


def test_every_kpi_key_names_fields_of_the_typed_kpis_block(results):
    """The KPI dictionary's dotted keys are read as attributes of ``contract.Kpis``: each must be declared there."""
    for entry in kpi.KPIS:
        node: msgspec.inspect.Type = msgspec.inspect.type_info(contract.Kpis)
        for part in entry.key.split("."):
            assert isinstance(node, msgspec.inspect.StructType), f"{entry.key}: {part} is inside a value, not a block"
            fields = {f.encode_name: f for f in node.fields}
            assert part in fields, f"{entry.key}: {part} is not a field of {node.cls.__name__}"
            node = _struct_in(fields[part].type)
    perf = next(r for r in results if r.mode == "performance")
    assert scorecard.kpi_value(perf, "latency_ms.p90") == perf.kpis.latency_ms.p90
    assert scorecard.kpi_value(perf, "energy.mlperf.mj_per_query") is None  # no energy block: None, not an error
    cooled = msgspec.structs.replace(perf, kpis=msgspec.structs.replace(perf.kpis, thermals=contract.Thermals(
        cooldown=contract.Cooldown(target_c=50.0, timeout_s=300.0, waited_s=12.5))))
    assert scorecard.kpi_value(cooled, "thermals.cooldown.waited_s") == 12.5


def _struct_in(t: msgspec.inspect.Type) -> msgspec.inspect.Type:
    """The struct an optional or annotated field holds (the field's type itself otherwise)."""
    if isinstance(t, msgspec.inspect.Metadata):
        return _struct_in(t.type)
    if isinstance(t, msgspec.inspect.UnionType):
        return next((m for m in t.types if isinstance(m, msgspec.inspect.StructType)), t)
    return t


def test_ranking_by_kpi_direction_and_by_weights(results):
    rows = [r for r in scorecard.build(results) if r.mode == "performance"]
    by_latency = scorecard.rank(rows, kpi="latency_ms.p90")
    assert [r.value("latency_ms.p90") for r, _ in by_latency] == sorted(r.value("latency_ms.p90") for r in rows)
    by_throughput = scorecard.rank(rows, kpi="throughput_sps")
    assert by_throughput[0][0].value("throughput_sps") == max(r.value("throughput_sps") for r in rows)
    weighted = scorecard.rank(rows, weights={"latency_ms.p90": 1.0, "throughput_sps": 1.0})
    assert all(0 <= score <= 2 for _, score in weighted) and len(weighted) == len(rows)


def slowed(docs: list[dict], factor: float) -> list[dict]:
    """The same runs with every latency ``factor`` times longer (histogram included)."""
    out = []
    for doc in docs:
        doc = copy.deepcopy(doc)
        k = doc["kpis"]
        k["latency_ms"] = {name: v * factor for name, v in k["latency_ms"].items()}
        hist = k["latency_histogram"]
        hist["counts"] = {str(round(int(b) * factor)): n for b, n in hist["counts"].items()}
        out.append(doc)
    return out



def test_diff_fails_only_beyond_threshold_and_noise(docs, tmp_path):
    db = tmp_path / "c.db"
    perf = [d for d in docs if d["mode"] == "performance" and d["device"]["id"] == "pi-b"]
    store_campaign(db, "old", perf)
    store_campaign(db, "slower", slowed(perf, 1.5))
    store_campaign(db, "same", perf)
    gate = edgeperf("diff", "old", "slower", "--fail-on", "p90:+5%", "--db", str(db), "--json")
    assert gate.returncode == 1, gate.stderr
    (finding,) = json.loads(gate.stdout)["findings"]
    assert finding["regression"] and finding["intervals_overlap"] is False
    assert finding["new"] == pytest.approx(finding["old"] * 1.5)
    assert edgeperf("diff", "old", "same", "--fail-on", "p90:+5%", "--db", str(db)).returncode == 0
    lenient = edgeperf("diff", "old", "slower", "--fail-on", "p90:+80%", "--db", str(db))
    assert lenient.returncode == 0 and "no regressions" in lenient.stdout


def with_latencies(doc: dict, latencies_ns: np.ndarray) -> dict:
    """A real run's document carrying these latencies instead of its own: a spread the test controls,
    so the gate's verdict does not depend on how noisy this machine happened to be."""
    out = copy.deepcopy(doc)
    out["kpis"]["latency_ms"] = {k: v / 1e6 for k, v in latency_summary_ns(latencies_ns).items()}
    out["kpis"]["latency_histogram"] = LatencyHistogram.of(latencies_ns).to_dict()
    return out


def test_a_change_inside_the_noise_is_not_a_regression(docs):
    spread = np.random.default_rng(7).lognormal(np.log(60_000), 0.3, 4000).astype(np.int64)  # ~±1.5 % p90 noise
    perf = [with_latencies(d, spread) for d in docs if d["mode"] == "performance" and d["device"]["id"] == "pi-b"]
    rule = diff.parse_rules("p90:+0.5%")
    findings, _ = diff.compare(scorecard.build(typed(perf)), scorecard.build(typed(slowed(perf, 1.01))), rule)
    (f,) = findings
    assert f.beyond_threshold and f.intervals_overlap and not f.regression and f.verdict.startswith("within noise")


def test_accuracy_drop_in_percentage_points(docs):
    acc = [d for d in docs if d["mode"] == "accuracy"]
    worse = copy.deepcopy(acc)
    for doc in worse:
        a = doc["kpis"]["accuracy"]
        a["correct"] -= 100  # ten points lower on 1,000 images: far outside both Wilson intervals
        a["top1"] = a["correct"] / a["n"]
    findings, _ = diff.compare(scorecard.build(typed(acc)), scorecard.build(typed(worse)), diff.parse_rules("top1:-0.5pp"))
    assert findings and all(f.regression for f in findings)


@pytest.mark.parametrize("bad", ["p90", "p90:5%", "p90:+5pp", "latency:+5%", ""])
def test_bad_rules_are_one_clear_error(bad):
    with pytest.raises(diff.DiffError):
        diff.parse_rules(bad)


def test_scorecard_cli_json_and_ranking(docs, tmp_path):
    db = tmp_path / "c.db"
    store_campaign(db, "card", docs)
    weights = tmp_path / "score.yaml"
    weights.write_text("score:\n  latency_ms.p90: 0.7\n  throughput_sps: 0.3\n")
    proc = edgeperf("scorecard", "card", "--db", str(db), "--score", str(weights), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert len(out["rows"]) == 4 and len(out["ranking"]) == 2
    table = edgeperf("scorecard", "card", "--db", str(db), "--fleet")
    assert table.returncode == 0 and "fleet scorecard" in table.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("score:\n  speed: 1\n")
    failed = edgeperf("scorecard", "card", "--db", str(db), "--score", str(bad))
    assert failed.returncode == 2 and "score.speed: unknown KPI" in failed.stderr
