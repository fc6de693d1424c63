"""Scorecards, rankings and the regression gate, on stored results of real runs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from agent import bench
from agent.contract import RuntimeOptions
from agent.scenarios.settings import Mode, Scenario, for_profile, with_overrides
from agent.stats import LatencyHistogram
from controller.analysis import gate as diff
from controller.analysis import scorecard
from tests.cli_harness import edgeperf
from tests.stored_results import store_campaign


def run(model: str, device: str, scenario=Scenario.SINGLE_STREAM, mode=Mode.PERFORMANCE, dataset="synthetic") -> dict:
    settings = with_overrides(for_profile("smoke", scenario, mode), min_duration_ms=200)
    return bench.run(bench.BenchRequest(model=f"zoo:fashion-mnist-cnn/{model}", settings=settings, engine="native",
                                        options=RuntimeOptions(threads=1), dataset=dataset, warmup_runs=3, device_id=device))


@pytest.fixture(scope="module")
def docs():
    perf = [run("int8.onnx", "pi-a") for _ in range(3)] + [run("int8.onnx", "pi-b")]
    acc = [run(m, "pi-a", mode=Mode.ACCURACY, dataset="fashion-mnist:subset") for m in ("int8.tflite", "fp32.onnx")]
    return perf + acc


def test_repeats_get_bootstrap_intervals_and_single_runs_get_none(docs):
    rows = {(r.device, r.mode, r.model): r for r in scorecard.build(docs)}
    repeated = rows[("pi-a", "performance", "zoo:fashion-mnist-cnn/int8.onnx")]
    assert repeated.runs == 3
    p90 = repeated.cells["latency_ms.p90"]
    values = [d["kpis"]["latency_ms"]["p90"] for d in repeated.docs]
    assert p90.value == pytest.approx(np.mean(values)) and p90.lo <= p90.value <= p90.hi
    assert min(values) <= p90.lo and p90.hi <= max(values)  # a bootstrap of the mean stays inside the data
    single = rows[("pi-b", "performance", "zoo:fashion-mnist-cnn/int8.onnx")].cells["latency_ms.p90"]
    assert single.lo is None and single.runs == 1


def test_accuracy_is_pooled_and_set_against_fp32(docs):
    rows = {(r.mode, r.precision, r.model): r for r in scorecard.build(docs) if r.mode == "accuracy"}
    int8 = rows[("accuracy", "int8", "zoo:fashion-mnist-cnn/int8.tflite")]
    fp32 = rows[("accuracy", "fp32", "zoo:fashion-mnist-cnn/fp32.onnx")]
    top1 = int8.cells["accuracy.top1"]
    assert top1.value == int8.docs[0]["kpis"]["accuracy"]["top1"] and top1.lo < top1.value < top1.hi
    delta = int8.cells["accuracy_delta_pp"]
    assert delta.value == pytest.approx((top1.value - fp32.cells["accuracy.top1"].value) * 100)
    assert delta.lo < delta.value < delta.hi
    assert "accuracy_delta_pp" not in fp32.cells  # the reference has nothing to be compared with


def test_fleet_rows_merge_histograms_instead_of_averaging_percentiles(docs):
    perf = [d for d in docs if d["mode"] == "performance"]
    (row,) = scorecard.build(perf, fleet=True)
    assert row.fleet and row.runs == 4 and row.device == scorecard.device_class(perf[0])
    merged = LatencyHistogram()
    for d in perf:
        merged.merge(LatencyHistogram.from_dict(d["kpis"]["latency_histogram"]))
    assert row.cells["latency_ms.p90"].value == merged.percentile(0.90) / 1e6


def test_ranking_by_kpi_direction_and_by_weights(docs):
    rows = [r for r in scorecard.build(docs) if r.mode == "performance"]
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


def test_a_change_inside_the_noise_is_not_a_regression(docs):
    perf = [d for d in docs if d["mode"] == "performance" and d["device"]["id"] == "pi-b"]
    rule = diff.parse_rules("p90:+0.5%")
    findings, _ = diff.compare(scorecard.build(perf), scorecard.build(slowed(perf, 1.01)), rule)
    (f,) = findings
    assert f.beyond_threshold and f.intervals_overlap and not f.regression and f.verdict.startswith("within noise")


def test_accuracy_drop_in_percentage_points(docs):
    acc = [d for d in docs if d["mode"] == "accuracy"]
    worse = copy.deepcopy(acc)
    for doc in worse:
        a = doc["kpis"]["accuracy"]
        a["correct"] -= 100  # ten points lower on 1,000 images: far outside both Wilson intervals
        a["top1"] = a["correct"] / a["n"]
    findings, _ = diff.compare(scorecard.build(acc), scorecard.build(worse), diff.parse_rules("top1:-0.5pp"))
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
