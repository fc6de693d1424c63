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
from scipy import stats

from agent import bench, contract, kpi
from agent.accuracy import pack_correctness, unpack_correctness
from agent.contract import Result, RuntimeOptions
from agent.scenarios import early_stopping
from agent.scenarios.settings import Mode, Scenario, for_profile, with_overrides
from agent.stats import LatencyHistogram, bucket_ns
from controller.analysis import gate as diff
from controller.analysis import scorecard
from tests.cli_harness import edgeperf_here
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
    perf = [run("int8.onnx", "pi-a") for _ in range(3)] + [run("int8.onnx", "pi-b"), run("int8.onnx", "pi-a", Scenario.OFFLINE)]
    acc = [run(m, "pi-a", mode=Mode.ACCURACY, dataset="fashion-mnist:subset") for m in ("int8.tflite", "fp32.onnx")]
    return perf + acc


@pytest.fixture(scope="module")
def results(docs):
    return typed(docs)


def test_repeats_get_t_intervals_and_single_runs_get_none(docs, results):
    rows = {(r.device, r.scenario, r.mode, r.model): r for r in scorecard.build(results)}
    repeated = rows[("pi-a", "SingleStream", "performance", "zoo:fashion-mnist-cnn/int8.onnx")]
    assert repeated.runs == 3
    p90 = repeated.cells["latency_ms.p90"]
    values = [document(r, docs)["kpis"]["latency_ms"]["p90"] for r in repeated.results]
    half = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3)
    assert p90.method == "t" and p90.value == pytest.approx(np.mean(values))
    assert (p90.lo, p90.hi) == pytest.approx((np.mean(values) - half, np.mean(values) + half))
    single = rows[("pi-b", "SingleStream", "performance", "zoo:fashion-mnist-cnn/int8.onnx")].cells["latency_ms.p90"]
    assert single.lo is None and single.runs == 1 and single.method == "none"
    two = scorecard.build(results[:2])[0].cells["latency_ms.p90"]  # two runs: their range, not a confidence interval
    assert two.lo is None and two.method == "range" and two.spread == (min(values[:2]), max(values[:2]))


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
    perf = [r for r in results if r.mode == "performance" and r.scenario == "SingleStream"]
    (row,) = scorecard.build(perf, fleet=True)
    assert row.fleet and row.runs == 4 and row.device == scorecard.device_class(perf[0])
    merged = LatencyHistogram()
    for d in docs:
        if d["mode"] == "performance" and d["scenario"] == "SingleStream":
            merged.merge(LatencyHistogram(Counter({int(b): n for b, n in d["kpis"]["latency_histogram"]["counts"].items()})))
    assert row.cells["latency_ms.p90"].value == merged.percentile(0.90) / 1e6
    # early stopping as LoadGen computes it, on the merged latencies: sorted[n - t]
    for key, p in (("early_stopping_latency_ms", 0.90), ("early_stopping_p99_latency_ms", 0.99)):
        t = early_stopping.discard_count(merged.n, p)
        assert row.cells[key].value == merged.value_at(merged.n - t) / 1e6 and row.cells[key].method == "merged early stopping"


@pytest.mark.parametrize("engine", ["loadgen", "native"])
def test_table_fleet_row_and_cdf_read_one_latency_source(engine):
    """The table shows the engine's own percentiles (LoadGen's under loadgen); the fleet row, the
    report's CDF and the gate read the stored histogram. Both must be the same latencies."""
    settings = with_overrides(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=300)
    doc = bench.run(bench.BenchRequest(model="zoo:fashion-mnist-cnn/int8.tflite", settings=settings, engine=engine,
                                       options=RuntimeOptions(threads=1), warmup_runs=3, device_id="pi-a"))
    result = contract.convert("result", doc)
    (row,), (fleet,) = scorecard.build([result]), scorecard.build([result], fleet=True)
    for key in ("latency_ms.p50", "latency_ms.p90", "latency_ms.p99", "early_stopping_latency_ms"):
        table_ns = round(row.cells[key].value * 1e6)
        assert fleet.cells[key].value * 1e6 == pytest.approx(bucket_ns(table_ns), abs=1), key  # to the bucket
    hist = scorecard.latency_histogram(result)
    buckets, shares = hist.cdf()
    i, k = buckets.index(bucket_ns(round(row.cells["latency_ms.p90"].value * 1e6))), int(hist.n * 0.90)
    assert shares[i] >= (k + 1) / hist.n and (shares[i - 1] if i else 0.0) <= k / hist.n  # the CDF crosses p90 there


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


def test_ranking_only_among_rows_of_one_scenario_and_mode(docs, results):
    rows = scorecard.build(results)
    by_latency = scorecard.rank(rows, kpi="latency_ms.p90")
    assert set(by_latency.groups) == {("SingleStream", "performance"), ("Offline", "performance")}
    assert ("SingleStream", "accuracy") in by_latency.inapplicable  # accuracy runs have no latency to rank
    for (scenario, mode), group in by_latency.groups.items():
        assert {(r.scenario, r.mode) for r, _ in group} == {(scenario, mode)}
        assert [r.value("latency_ms.p90") for r, _ in group] == sorted(r.value("latency_ms.p90") for r, _ in group)
    weighted = scorecard.rank(rows, weights={"latency_ms.p90": 1.0, "throughput_sps": 1.0})
    assert all(0 <= score <= 2 for group in weighted.groups.values() for _, score in group)
    # a row without a weighted KPI is named, not ranked as best or worst
    lost = copy.deepcopy(next(d for d in docs if d["device"]["id"] == "pi-b"))
    lost["device"]["id"] = "pi-c"
    lost["kpis"]["throughput_sps"] = None
    ranked = scorecard.rank(scorecard.build([*results, contract.convert("result", lost)]), kpi="throughput_sps")
    assert [(r.device, missing) for r, missing in ranked.unscored] == [("pi-c", ["throughput_sps"])]
    assert "pi-c" not in {r.device for group in ranked.groups.values() for r, _ in group}


def scaled(doc: dict, factor: float) -> dict:
    """A real run's document with every latency ``factor`` times its own (histogram included): a
    run-to-run spread the test controls, so the gate's verdict does not depend on how noisy this
    machine happened to be."""
    doc = copy.deepcopy(doc)
    k = doc["kpis"]
    k["latency_ms"] = {name: v * factor for name, v in k["latency_ms"].items()}
    hist = k["latency_histogram"]
    hist["counts"] = {str(round(int(b) * factor)): n for b, n in hist["counts"].items()}
    return doc


def campaign(doc: dict, factors: list[float]) -> list[dict]:
    """One run of ``doc`` per factor: a campaign's repeats of one row."""
    return [scaled(doc, f) for f in factors]


UNCHANGED = ([1.00, 1.02, 0.99], [1.01, 0.98, 1.02])  # repeats of two campaigns of the same code: ±2 % noise


def gate(old: list[dict], new: list[dict], rules: str, strict: bool = False) -> diff.Outcome:
    return diff.compare(scorecard.build(typed(old)), scorecard.build(typed(new)), diff.parse_rules(rules), strict=strict)


@pytest.fixture(scope="module")
def perf_doc(docs):
    return next(d for d in docs if d["mode"] == "performance" and d["device"]["id"] == "pi-b")


def test_unchanged_campaigns_pass_and_a_real_slowdown_fails(perf_doc):
    old = campaign(perf_doc, UNCHANGED[0])
    same = gate(old, campaign(perf_doc, UNCHANGED[1]), "p90:+5%")
    assert same.passed and not same.regressions
    slower = gate(old, campaign(perf_doc, [1.15 * f for f in UNCHANGED[1]]), "p90:+5%")
    (f,) = slower.findings
    assert f.regression and f.test.name == "Student t" and f.test.p_value < 0.05 and f.change == pytest.approx(14.9, abs=0.5)
    assert (f.test.n_old, f.test.n_new) == (3, 3) and not slower.passed


def test_beyond_the_threshold_but_within_the_noise_is_not_a_regression(perf_doc):
    noisy = gate(campaign(perf_doc, [0.80, 1.20, 1.00]), campaign(perf_doc, [0.90, 1.35, 1.05]), "p90:+5%")
    (f,) = noisy.findings
    assert f.beyond_threshold and f.test.significant is False and f.verdict == "within noise" and noisy.passed


def test_without_repeats_the_noise_is_unknown_and_fails_only_when_strict(perf_doc):
    loose = gate([perf_doc], [scaled(perf_doc, 1.5)], "p90:+5%")
    (f,) = loose.findings
    assert f.test.significant is None and f.verdict == "noise unknown" and loose.passed
    strict = gate([perf_doc], [scaled(perf_doc, 1.5)], "p90:+5%", strict=True)
    assert strict.findings[0].verdict == "REGRESSION (noise unknown)" and not strict.passed


def test_the_diff_cli_fits_80_columns_names_the_row_and_exits_by_its_verdict(perf_doc, tmp_path):
    db = tmp_path / "c.db"
    store_campaign(db, "old", campaign(perf_doc, UNCHANGED[0]))
    store_campaign(db, "same", campaign(perf_doc, UNCHANGED[1]))
    store_campaign(db, "slower", campaign(perf_doc, [1.2 * f for f in UNCHANGED[1]]))
    passed = edgeperf_here("diff", "old", "same", "--fail-on", "p90:+5%,throughput:-5%", "--db", str(db))
    assert passed.returncode == 0 and "PASS" in passed.stdout, passed.stdout + passed.stderr
    failed = edgeperf_here("diff", "old", "slower", "--fail-on", "p90:+5%", "--db", str(db))
    assert failed.returncode == 1 and "REGRESSION" in failed.stdout and "pi-b fashion-mnist-cnn/int8.onnx" in failed.stdout
    assert max(len(line) for line in failed.stdout.splitlines()) <= 80
    out = json.loads(edgeperf_here("diff", "old", "slower", "--fail-on", "p90:+5%", "--db", str(db), "--json").stdout)
    (f,) = out["findings"]
    assert f["old"]["ci95"][0] < f["old"]["value"] < f["old"]["ci95"][1] and f["old"]["method"] == "t"
    assert f["test"] == "Student t" and f["p_value"] < 0.05 and f["df"] > 0 and f["statistic"] > 0 and not out["passed"]


def test_a_row_the_new_campaign_did_not_measure_fails_the_gate(docs, perf_doc, tmp_path):
    db = tmp_path / "c.db"
    other = next(d for d in docs if d["mode"] == "performance" and d["device"]["id"] == "pi-a")
    store_campaign(db, "old", [perf_doc, other])
    store_campaign(db, "new", [perf_doc])
    lost = edgeperf_here("diff", "old", "new", "--fail-on", "p90:+5%", "--db", str(db))
    text = " ".join(lost.stdout.split())  # lines are wrapped at 80 columns
    assert lost.returncode == 1 and "not comparable: pi-a" in text and "no result in the new campaign" in text
    nothing = edgeperf_here("diff", "new", "new", "--fail-on", "top1:-1pp", "--db", str(db))
    assert nothing.returncode == 1 and "nothing to compare" in nothing.stdout


def with_wrong(doc: dict, flips: int) -> dict:
    """An accuracy run's document with its first ``flips`` correct samples answered wrong instead."""
    out = copy.deepcopy(doc)
    a = out["kpis"]["accuracy"]
    bits = unpack_correctness(a["correct_bits"], a["n"])
    bits[np.flatnonzero(bits)[:flips]] = False
    a["correct_bits"], a["correct"] = pack_correctness(bits), int(bits.sum())
    a["top1"] = a["correct"] / a["n"]
    return out


def test_top1_is_judged_paired_and_in_percentage_points(docs):
    int8 = [d for d in docs if d["mode"] == "accuracy" and d["model"]["precision"] == "int8"]
    drop = gate(int8, [with_wrong(d, 25) for d in int8], "top1:-0.5pp")  # 2.5 pp on 1,000 images, all one way
    (f,) = drop.findings
    assert f.regression and f.test.name == "McNemar exact" and f.test.p_value < 1e-6
    assert f.change == pytest.approx(-2.5) and f.interval[0] < -2.5 < f.interval[1] < 0
    small = gate(int8, [with_wrong(d, 3) for d in int8], "top1:-0.5pp")  # 0.3 pp: inside the threshold
    assert small.passed and small.findings[0].verdict == "ok"


@pytest.mark.parametrize("bad", ["p90", "p90:5%", "p90:+5pp", "latency:+5%", ""])
def test_bad_rules_are_one_clear_error(bad):
    with pytest.raises(diff.DiffError):
        diff.parse_rules(bad)


def test_scorecard_cli_json_and_ranking(docs, tmp_path):
    db = tmp_path / "c.db"
    store_campaign(db, "card", docs)
    weights = tmp_path / "score.yaml"
    weights.write_text("score:\n  latency_ms.p90: 0.7\n  throughput_sps: 0.3\n")
    proc = edgeperf_here("scorecard", "card", "--db", str(db), "--score", str(weights), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert len(out["rows"]) == 5
    groups = {(g["scenario"], g["mode"]): g["rows"] for g in out["ranking"]["groups"]}
    assert len(groups[("SingleStream", "performance")]) == 2 and len(groups[("Offline", "performance")]) == 1
    table = edgeperf_here("scorecard", "card", "--db", str(db), "--fleet")
    assert table.returncode == 0 and "fleet scorecard" in table.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("score:\n  speed: 1\n")
    failed = edgeperf_here("scorecard", "card", "--db", str(db), "--score", str(bad))
    assert failed.returncode == 2 and "score.speed: unknown KPI" in failed.stderr
    none = edgeperf_here("scorecard", "card", "--db", str(db), "--rank", "energy.energy_per_inference_mj")
    assert none.returncode == 1 and "nothing ranked" in none.stderr


def test_latest_is_the_newest_fleet_campaign_and_compare_warns_when_both_sides_are_one(perf_doc, tmp_path):
    path = tmp_path / "c.db"
    edge = store_campaign(path, "edge", [perf_doc])
    gpu = store_campaign(path, "gpu", [perf_doc], kind="baseline")  # a baseline run after the campaign
    db = str(path)
    assert json.loads(edgeperf_here("scorecard", "latest", "--db", db, "--json").stdout)["campaign"] == edge
    assert json.loads(edgeperf_here("scorecard", "latest", "--kind", "baseline", "--db", db, "--json").stdout)["campaign"] == gpu
    quiet = edgeperf_here("compare", "latest", "--baseline", "latest", "--db", db)
    assert quiet.returncode == 0 and "warning" not in quiet.stderr
    itself = edgeperf_here("compare", "edge", "--baseline", "edge", "--db", db)
    assert "both sides are campaign edge" in " ".join(itself.stderr.split())
    bad = edgeperf_here("scorecard", "latest", "--kind", "gpu", "--db", db)
    assert bad.returncode == 2 and "unknown kind 'gpu'" in bad.stderr
