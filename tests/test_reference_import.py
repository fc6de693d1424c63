"""Published MLPerf results as reference rows: a results tree whose summaries are real LoadGen output
is imported, re-imported, broken, and shown beside local runs in scorecards, compare and reports.

The tree is built here in MLCommons' published layout (github.com/mlcommons/inference_results_vX.Y):
its ``mlperf_log_summary.txt`` and ``mlperf_log_detail.txt`` are what LoadGen itself wrote for a
trivial in-process system under test (``tests.suts.FixedDelaySut``) driven by ``agent.scenarios.loadgen``;
the system descriptions and ``accuracy.txt`` files are written in the published formats. Expected
numbers come from LoadGen's own detail log, never from the parser under test.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import sqlite3
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from agent import bench
from agent.contract import RuntimeOptions
from agent.scenarios import loadgen
from agent.scenarios.settings import Mode, Scenario, for_profile, with_overrides
from controller.analysis import scorecard
from controller.reference import matching, stored
from controller.reference.accuracy import AccuracyError, parse_accuracy
from controller.reference.rows import headline
from controller.reference.summary import SummaryError, parse_summary
from controller.reports import campaign_report, reference_rows
from controller.store.database import SCHEMA_VERSION, Store
from tests.cli_harness import edgeperf, edgeperf_in_process, one_error_line
from tests.stored_results import store_campaign
from tests.suts import FixedDelaySut

SYSTEM = {  # the fields a published systems/<system>.json carries (closed/NVIDIA/systems/Orin_TRT.json, v4.1)
    "accelerator_model_name": "Acme EdgeNPU 8G", "accelerators_per_node": 1, "division": "closed",
    "framework": "TensorRT 10.1, CUDA 12.2", "host_processor_core_count": 12,
    "host_processor_model_name": "12-core ARM Cortex-A78AE CPU", "number_of_nodes": 1, "operating_system": "L4T r36",
    "status": "available", "submitter": "Acme", "system_name": "Acme EdgeBox 8G (TensorRT)", "system_type": "edge",
}
RESNET_ACCURACY = "accuracy=76.096%, good=38048, total=50000\nhash=4fe04ce535753215caab10c6ec2cb924a41ef238008d3710c3292f21\n"
RETINANET_ACCURACY = """loading annotations into memory...
Done (t=2.19s)
Evaluate annotation type *bbox*
 Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.374
 Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.523
mAP=37.373%
hash=3220e3f08ede898174dc7a621e9f051e58f501bc7fea4b820d756b81d2beb7e6
"""
BERT_ACCURACY = '{"exact_match": 82.952, "f1": 90.344}\nhash=c9c8b70b90fd844107305afb869fa9fbf53198b1bb42eef930c5dcd7a3ea683c\n'
UNET_ACCURACY = "Accuracy: mean = 0.86170, kidney = 0.9347, tumor = 0.7887\nhash=0a1b\n"
# the published Orin SingleStream summary (closed/NVIDIA/results/Orin_TRT/resnet50, v3.1): the older
# "90th percentile" spelling that today's LoadGen writes as "90.0th"
PUBLISHED_SUMMARY = """================================================
MLPerf Results Summary
================================================
SUT name : LWIS_Server
Scenario : SingleStream
Mode     : PerformanceOnly
90th percentile latency (ns) : 640258
Result is : VALID
  Min duration satisfied : Yes
  Min queries satisfied : Yes
  Early stopping satisfied: Yes
Early Stopping Result:
 * Processed at least 64 queries (935541).
 * Would discard 92878 highest latency queries.
 * Early stopping 90th percentile estimate: 640259
 * Early stopping 99th percentile estimate: 643875

================================================
Additional Stats
================================================
QPS w/ loadgen overhead         : 1559.23
QPS w/o loadgen overhead        : 1571.40

Min latency (ns)                : 623363
Max latency (ns)                : 1078501
Mean latency (ns)               : 636375
50.00 percentile latency (ns)   : 636227
90.00 percentile latency (ns)   : 640258
99.00 percentile latency (ns)   : 643843
99.90 percentile latency (ns)   : 649539

================================================
Test Parameters Used
================================================
samples_per_query : 1
target_latency (ns): 0
min_duration (ms): 600000
min_query_count : 100
performance_sample_count : 2048

No warnings encountered during test.
"""


# ---- real LoadGen output ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loadgen_logs(tmp_path_factory) -> dict[str, Path]:
    """LoadGen's logs of real runs, one in each scenario, and a SingleStream stopped by its maximum
    duration before its minimum (INVALID). Every sample sleeps at least 0.1 ms, so SingleStream's
    pool (2 × 100 ms / 0.1 ms) outlasts its 100 ms and Offline's query (1.1 × 20,000/s × 100 ms =
    2,200 samples) takes longer than 100 ms however fast the machine: both are VALID by construction."""
    root = tmp_path_factory.mktemp("loadgen")
    plans = {
        "SingleStream": (Scenario.SINGLE_STREAM, {}),
        "Offline": (Scenario.OFFLINE, {"offline_expected_qps": 20_000.0}),
        "MultiStream": (Scenario.MULTI_STREAM, {}),
        "Server": (Scenario.SERVER, {"server_target_qps": 2000.0, "server_target_latency_ms": 50.0}),
        "invalid": (Scenario.SINGLE_STREAM, {"min_duration_ms": 5_000, "max_duration_ms": 100}),
    }
    for name, (scenario, length) in plans.items():
        # replace, not with_overrides: the INVALID run's maximum below its minimum is the point, not a mistake
        settings = replace(for_profile("smoke", scenario, Mode.PERFORMANCE), expected_latency_ns=100_000,
                           **({"min_duration_ms": 100} | length))
        loadgen.run(FixedDelaySut(0.0001, 16), settings, root / name)
    return {name: root / name for name in plans}


def _result(root: Path, division: str, submitter: str, system: str, benchmark: str, scenario: str, logs: Path,
            accuracy: str | None) -> Path:
    """One published result folder: LoadGen's logs under performance/run_1, accuracy.txt beside."""
    folder = root / division / submitter / "results" / system / benchmark / scenario
    run = folder / "performance" / "run_1"
    run.mkdir(parents=True)
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt"):
        shutil.copy(logs / name, run / name)
    if accuracy is not None:
        (folder / "accuracy").mkdir()
        (folder / "accuracy" / "accuracy.txt").write_text(accuracy)
    return folder


def _system(root: Path, division: str, submitter: str, system: str, **fields) -> None:
    path = root / division / submitter / "systems" / f"{system}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(SYSTEM | {"division": division, "submitter": submitter} | fields, indent=4))


def _verify(root: Path, submitter: str, system: str, benchmark: str, scenario: str, test: str, passed: bool) -> None:
    folder = root / "closed" / submitter / "compliance" / system / benchmark / scenario / test
    folder.mkdir(parents=True)
    (folder / "verify_performance.txt").write_text(f"Verifying performance.\nTEST {'PASS' if passed else 'FAIL'}\n")


@pytest.fixture(scope="module")
def tree(tmp_path_factory, loadgen_logs) -> Path:
    """A v4.1 results tree: a closed edge system with resnet50 SingleStream and Offline (compliance
    passed on one, failed on the other), and an open one with retinanet and an INVALID bert-99 run."""
    root = tmp_path_factory.mktemp("published") / "inference_results_v4.1"
    _system(root, "closed", "Acme", "EdgeBox_TRT")
    _result(root, "closed", "Acme", "EdgeBox_TRT", "resnet50", "SingleStream", loadgen_logs["SingleStream"], RESNET_ACCURACY)
    _result(root, "closed", "Acme", "EdgeBox_TRT", "resnet50", "Offline", loadgen_logs["Offline"], RESNET_ACCURACY)
    _verify(root, "Acme", "EdgeBox_TRT", "resnet50", "SingleStream", "TEST01", True)
    _verify(root, "Acme", "EdgeBox_TRT", "resnet50", "SingleStream", "TEST04", True)
    _verify(root, "Acme", "EdgeBox_TRT", "resnet50", "Offline", "TEST04", False)
    _system(root, "open", "Beta", "pi5", status="preview", framework="onnxruntime 1.18", system_name="Beta Pi 5",
            accelerator_model_name="")
    _result(root, "open", "Beta", "pi5", "retinanet", "SingleStream", loadgen_logs["SingleStream"], RETINANET_ACCURACY)
    _result(root, "open", "Beta", "pi5", "bert-99", "SingleStream", loadgen_logs["invalid"], BERT_ACCURACY)
    (root / "closed" / "Acme" / "results" / "EdgeBox_TRT" / "README.md").write_text("how to run\n")  # files are not results
    return root


@pytest.fixture(scope="module")
def local_docs() -> list[dict]:
    """A device's own runs, as a campaign stores them: SingleStream and Offline performance, an accuracy run."""
    def one(scenario: Scenario, mode: Mode = Mode.PERFORMANCE, dataset: str = "synthetic") -> dict:
        settings = with_overrides(for_profile("smoke", scenario, mode), min_duration_ms=200)
        return bench.run(bench.BenchRequest(model="zoo:fashion-mnist-cnn/int8.onnx", settings=settings, engine="native",
                                            options=RuntimeOptions(threads=1), dataset=dataset, warmup_runs=3,
                                            device_id="pi-a"))
    return [one(Scenario.SINGLE_STREAM), one(Scenario.OFFLINE),
            one(Scenario.SINGLE_STREAM, Mode.ACCURACY, "fashion-mnist:subset")]


@pytest.fixture(scope="module")
def imported_db(tmp_path_factory, tree, local_docs) -> Path:
    """A database holding the local campaign ``edge`` and the imported tree."""
    db = tmp_path_factory.mktemp("db") / "controller.db"
    store_campaign(db, "edge", local_docs)
    done = edgeperf_in_process("reference", "import", str(tree), "--db", str(db))
    assert done.returncode == 0, done.stderr + done.stdout
    return db


def _stored(db: Path) -> list[dict]:
    listed = edgeperf_in_process("reference", "list", "--db", str(db), "--json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def _by(rows: list[dict], benchmark: str, scenario: str) -> dict:
    return next(r for r in rows if r["benchmark"] == benchmark and r["scenario"] == scenario)


# ---- parsing ----------------------------------------------------------------------------------------
def test_summary_reads_what_loadgen_logged(loadgen_logs):
    for name, logs in loadgen_logs.items():
        summary = parse_summary((logs / "mlperf_log_summary.txt").read_text())
        detail = loadgen.parse_detail(logs / "mlperf_log_detail.txt")
        assert summary.scenario == detail["effective_scenario"] and summary.mode == "performance"
        assert summary.valid == (detail["result_validity"] == "VALID")
        if name in ("SingleStream", "Offline", "invalid"):  # valid or not by construction (the fixture says why)
            assert summary.valid == (name != "invalid")
        metric, value, unit = headline(summary)
        if summary.scenario == "Offline":
            assert (metric, unit) == ("Samples per second", "samples/s")
            assert value == pytest.approx(detail["result_samples_per_second"], rel=1e-5)
        elif summary.scenario == "Server":
            assert (metric, unit) == ("Completed samples per second", "samples/s")
            assert value == pytest.approx(detail["result_completed_samples_per_sec"], rel=1e-5)
            assert summary.constraints["Performance constraints satisfied"] == bool(detail["result_perf_constraints_met"])
        elif summary.scenario == "MultiStream":  # its metric is per query (8 samples), as are its stats
            assert (metric, unit) == ("99th percentile latency", "ms")
            assert value == pytest.approx(detail["result_99.00_percentile_per_query_latency_ns"] / 1e6)
        else:
            assert (metric, unit) == ("90th percentile latency", "ms")
            assert value == pytest.approx(detail["result_90.00_percentile_latency_ns"] / 1e6)
        per_query = "per_query_" if summary.scenario == "MultiStream" else ""
        for key, p in (("p50", "50.00"), ("p90", "90.00"), ("p99", "99.00"), ("p999", "99.90")):
            assert summary.latency_ns[key] == detail[f"result_{p}_percentile_{per_query}latency_ns"]
        assert summary.latency_ns["min"] == detail[f"result_min_{'query_' if per_query else ''}latency_ns"]
        assert summary.parameter("performance_sample_count") == detail["effective_performance_sample_count"]
        assert summary.parameter("min_duration (ms)") == detail["effective_min_duration_ms"]
        assert summary.parameter("min_query_count") == detail["effective_min_query_count"]
        assert summary.constraints["Min duration satisfied"] == bool(detail["result_min_duration_met"])


def test_summary_reads_the_published_spelling_and_refuses_what_is_not_one():
    summary = parse_summary(PUBLISHED_SUMMARY)
    assert (summary.sut_name, summary.scenario, summary.result_field) == ("LWIS_Server", "SingleStream",
                                                                         "90th percentile latency (ns)")
    assert summary.result_value == 640258 and summary.valid
    assert summary.early_stopping_ns == {"90": 640259, "99": 643875}
    assert summary.stats["QPS w/ loadgen overhead"] == 1559.23 and summary.parameter("performance_sample_count") == 2048
    with pytest.raises(SummaryError, match="not a LoadGen summary"):
        parse_summary("accuracy=76.1%\n")
    with pytest.raises(SummaryError, match="no 'Result is :' line"):
        parse_summary(PUBLISHED_SUMMARY.split("Result is")[0])
    with pytest.raises(SummaryError, match="no result line"):
        parse_summary(PUBLISHED_SUMMARY.replace("90th percentile latency (ns) : 640258\n", ""))


def test_accuracy_in_each_benchmarks_published_format():
    top1 = parse_accuracy(RESNET_ACCURACY, "resnet50")
    assert (top1.metric, top1.value, top1.unit, top1.samples, top1.extra) == ("top1", 76.096, "%", 50000, {"good": 38048})
    assert parse_accuracy("Accuracy: 76.078%\n", "resnet50").value == 76.078
    assert parse_accuracy(RETINANET_ACCURACY, "retinanet").to_dict() == {
        "metric": "mAP", "value": 37.373, "unit": "%", "samples": None, "extra": {}}
    bert = parse_accuracy(BERT_ACCURACY, "bert-99.9")
    assert (bert.metric, bert.value, bert.extra) == ("F1", 90.344, {"exact_match": 82.952})
    dice = parse_accuracy(UNET_ACCURACY, "3d-unet-99")
    assert (dice.metric, dice.value, dice.unit, dice.extra) == ("DICE", 0.8617, "", {"kidney": 0.9347, "tumor": 0.7887})
    assert parse_accuracy(RETINANET_ACCURACY, "my-open-detector").metric == "mAP"  # an open benchmark: any format
    with pytest.raises(AccuracyError, match=r"no mAP=NN\.NNN% line"):
        parse_accuracy(RESNET_ACCURACY, "retinanet")


# ---- import -----------------------------------------------------------------------------------------
def test_import_makes_one_row_per_published_result(tree, loadgen_logs, imported_db):
    rows = _stored(imported_db)
    assert sorted((r["division"], r["benchmark"], r["scenario"]) for r in rows) == [
        ("closed", "resnet50", "Offline"), ("closed", "resnet50", "SingleStream"),
        ("open", "bert-99", "SingleStream"), ("open", "retinanet", "SingleStream")]
    ss = _by(rows, "resnet50", "SingleStream")
    detail = loadgen.parse_detail(loadgen_logs["SingleStream"] / "mlperf_log_detail.txt")
    assert (ss["suite"], ss["version"], ss["submitter"], ss["system"], ss["system_name"]) == (
        "Inference", "v4.1", "Acme", "EdgeBox_TRT", "Acme EdgeBox 8G (TensorRT)")
    assert (ss["metric"], ss["unit"], ss["valid"], ss["status"]) == ("90th percentile latency", "ms", True, "available")
    assert ss["value"] == pytest.approx(detail["result_90.00_percentile_latency_ns"] / 1e6)
    assert ss["early_stopping_ms"]["90"] == pytest.approx(detail["early_stopping_latency_ss"] / 1e6)
    assert ss["performance_sample_count"] == detail["effective_performance_sample_count"]
    assert ss["accuracy"] == {"metric": "top1", "value": 76.096, "unit": "%", "samples": 50000, "extra": {"good": 38048}}
    assert ss["compliance"] == {"TEST01": True, "TEST04": True}
    assert ss["framework"] == SYSTEM["framework"] and ss["system_type"] == "edge" and ss["accelerators"] == 1
    offline = _by(rows, "resnet50", "Offline")
    offline_detail = loadgen.parse_detail(loadgen_logs["Offline"] / "mlperf_log_detail.txt")
    assert (offline["metric"], offline["unit"]) == ("Samples per second", "samples/s")
    assert offline["value"] == pytest.approx(offline_detail["result_samples_per_second"], rel=1e-5)
    assert offline["compliance"] == {"TEST04": False}
    bert = _by(rows, "bert-99", "SingleStream")
    assert bert["valid"] is False and bert["division"] == "open" and bert["status"] == "preview"
    assert bert["accuracy"]["metric"] == "F1"
    assert _by(rows, "retinanet", "SingleStream")["accuracy"]["value"] == 37.373


def test_import_says_the_version_and_reimport_adds_nothing(tree, tmp_path):
    db = tmp_path / "c.db"
    first = edgeperf_in_process("reference", "import", str(tree), "--db", str(db))
    assert first.returncode == 0, first.stderr
    assert "4 published rows" in first.stdout and "4 new" in first.stdout
    assert "as MLPerf Inference v4.1 (version from the folder name inference_results_v4.1)" in first.stdout
    again = edgeperf_in_process("reference", "import", str(tree), "--db", str(db), "--json")
    assert json.loads(again.stdout) == {
        "path": str(tree), "version": "v4.1", "version_from": "the folder name inference_results_v4.1", "rows": 4,
        "new": 0, "changed": 0, "unchanged": 4, "problems": []}
    assert len(_stored(db)) == 4
    # a tree that now says something else replaces its row, still one row
    corrected = tmp_path / "again" / tree.name
    shutil.copytree(tree, corrected)
    accuracy = corrected / "closed/Acme/results/EdgeBox_TRT/resnet50/Offline/accuracy/accuracy.txt"
    accuracy.write_text(accuracy.read_text().replace("76.096", "76.100"))
    changed = json.loads(edgeperf_in_process("reference", "import", str(corrected), "--db", str(db), "--json").stdout)
    assert (changed["new"], changed["changed"], changed["unchanged"]) == (0, 1, 3)
    rows = _stored(db)
    assert len(rows) == 4 and _by(rows, "resnet50", "Offline")["accuracy"]["value"] == 76.1


def test_version_from_the_flag_and_contradictions(tree, tmp_path):
    plain = tmp_path / "results-copy"
    shutil.copytree(tree / "closed", plain / "closed")
    db = tmp_path / "c.db"
    one_error_line(edgeperf_in_process("reference", "import", str(plain), "--db", str(db)), 2,
                   "cannot tell the MLPerf version", "--version v4.1")
    assert not db.exists()  # nothing was imported, so nothing was created
    done = edgeperf_in_process("reference", "import", str(plain / "closed" / "Acme"), "--version", "4.0", "--db", str(db))
    assert done.returncode == 0 and "as MLPerf Inference v4.0 (version from --version)" in done.stdout
    assert {r["version"] for r in _stored(db)} == {"v4.0"} and len(_stored(db)) == 2  # one submitter's folder
    one_error_line(edgeperf_in_process("reference", "import", str(tree), "--version", "v4.0", "--db", str(db)), 2,
                   "--version v4.0 contradicts the folder name inference_results_v4.1")
    one_error_line(edgeperf_in_process("reference", "import", str(tmp_path / "nowhere_v4.1"), "--db", str(db)), 2,
                   "is not a folder")
    loose = tmp_path / "Acme"  # a submitter's folder taken out of its division
    shutil.copytree(tree / "closed" / "Acme", loose)
    one_error_line(edgeperf_in_process("reference", "import", str(loose), "--version", "v4.1", "--db", str(db)), 2,
                   "cannot tell the division")


def test_a_broken_tree_is_imported_in_part_with_one_line_per_problem(tree, tmp_path):
    root = tmp_path / "inference_results_v4.1"
    shutil.copytree(tree, root)
    acme = root / "closed" / "Acme"
    (acme / "results/EdgeBox_TRT/resnet50/Offline/performance/run_1/mlperf_log_summary.txt").write_text(
        "================================================\nMLPerf Results Summary\nSUT name : PySUT\n")  # cut short
    (acme / "results/EdgeBox_TRT/resnet50/SingleStream/accuracy/accuracy.txt").write_text("hash=00\n")
    shutil.copytree(acme / "results/EdgeBox_TRT", acme / "results/Ghost")  # no systems/Ghost.json
    shutil.copytree(acme / "results/EdgeBox_TRT", acme / "results/Garbled")
    (acme / "systems/Garbled.json").write_text('{"system_name": ')
    (acme / "results/EdgeBox_TRT/resnet50/MultiStream/performance/run_1").mkdir(parents=True)  # nothing in it
    tiny = root / "closed/Acme/results/EdgeBox_TRT/kws/performance"  # an MLPerf Tiny folder whose log stops early
    tiny.mkdir(parents=True)
    (tiny / "results.txt").write_text("00126.156 ulp-mlperf: Performance results for window 2:\n")
    db = tmp_path / "c.db"
    done = edgeperf_in_process("reference", "import", str(root), "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    expected = [
        r"^skipped closed/Acme/results/EdgeBox_TRT/kws: MLPerf Tiny result without 'Median throughput is",
        r"^skipped closed/Acme/results/EdgeBox_TRT/resnet50/MultiStream: no performance/run_1/mlperf_log_summary\.txt$",
        r"^skipped closed/Acme/results/EdgeBox_TRT/resnet50/Offline: performance/run_1/mlperf_log_summary\.txt: "
        r"no 'Scenario :' line$",
        r"^partial closed/Acme/results/EdgeBox_TRT/resnet50/SingleStream: accuracy/accuracy\.txt: no accuracy=NN\.NNN% line",
        r"^skipped closed/Acme/results/Garbled: system description closed/Acme/systems/Garbled\.json does not read as JSON",
        r"^skipped closed/Acme/results/Ghost: no system description closed/Acme/systems/Ghost\.json$",
    ]
    for pattern in expected:
        assert sum(bool(re.search(pattern, line)) for line in lines) == 1, (pattern, lines)
    assert len(lines) == len(expected), lines
    rows = _stored(db)
    assert len(rows) == 3 and _by(rows, "resnet50", "SingleStream")["accuracy"] is None  # imported without accuracy
    assert "3 published rows" in done.stdout and "5 skipped" in done.stdout


def test_nothing_importable_exits_non_zero(tmp_path):
    root = tmp_path / "inference_results_v4.1"
    (root / "closed" / "Nobody" / "results" / "box" / "resnet50" / "Offline").mkdir(parents=True)
    done = edgeperf_in_process("reference", "import", str(root), "--db", str(tmp_path / "c.db"))
    assert done.returncode == 1
    assert "skipped closed/Nobody/results/box: no system description" in done.stderr
    assert "nothing imported" in done.stderr and "Traceback" not in done.stderr
    empty = tmp_path / "empty_v4.1"
    empty.mkdir()
    done = edgeperf_in_process("reference", "import", str(empty), "--db", str(tmp_path / "c.db"))
    assert done.returncode == 1 and "no closed/, open/ or network/ division" in done.stderr


def test_an_older_database_gains_the_table_and_keeps_its_results(tree, local_docs, tmp_path):
    db = tmp_path / "old.db"
    campaign = store_campaign(db, "edge", local_docs)
    with sqlite3.connect(db) as raw:  # as edgeperf before reference rows left it: schema 3, no such table
        raw.execute("DROP TABLE reference_rows")
        raw.execute("PRAGMA user_version = 3")
    done = edgeperf_in_process("reference", "import", str(tree), "--db", str(db))
    assert done.returncode == 0, done.stderr
    with Store(db, create=False) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [r.run_id for r in store.results(campaign)] == [d["run_id"] for d in store.documents(campaign)]
        assert len(store.results(campaign)) == len(local_docs) and len(store.reference_rows()) == 4


# ---- beside local rows ------------------------------------------------------------------------------
def test_scorecard_sets_local_rows_beside_published_ones(imported_db, local_docs):
    shown = edgeperf_in_process("scorecard", "edge", "--db", str(imported_db), "--reference", "resnet50", "--json")
    assert shown.returncode == 0, shown.stderr
    pairs = json.loads(shown.stdout)["reference"]["pairs"]
    # three local rows, each beside the published row of its scenario (accuracy mode: the SingleStream one)
    assert sorted((p["local"]["scenario"], p["local"]["mode"]) for p in pairs) == [
        ("Offline", "performance"), ("SingleStream", "accuracy"), ("SingleStream", "performance")]
    for p in pairs:
        assert p["published"]["scenario"] == p["local"]["scenario"] and p["benchmark"] == "resnet50"
        assert p["label"] == "published, MLPerf Inference v4.1, Acme, Acme EdgeBox 8G (TensorRT)"
        assert p["differences"].startswith("published: closed division, full dataset ImageNet 2012 validation 50,000 images, "
                                           "TensorRT 10.1, CUDA 12.2, 1× Acme EdgeNPU 8G, available, compliance ")
        assert "; local: " in p["differences"] and "edgeperf's native engine (not LoadGen)" in p["differences"]
        # --reference resnet50 on a model that is not a resnet50 zoo entry: said first
        assert "; local: model zoo:fashion-mnist-cnn/int8.onnx, not a zoo entry of resnet50 (another model" in p["differences"]
    ss = next(p for p in pairs if p["local"]["mode"] == "performance" and p["local"]["scenario"] == "SingleStream")
    local_p90 = ss["local"]["kpis"]["latency_ms.p90"]["value"]
    assert ss["local_value"] == local_p90 and ss["published_value"] == ss["published"]["value"]
    assert ss["ratio_local_over_published"] == pytest.approx(local_p90 / ss["published"]["value"])
    assert "compliance TEST01, TEST04 passed" in ss["differences"] and ", synthetic inputs (no dataset)" in ss["differences"]
    offline = next(p for p in pairs if p["local"]["scenario"] == "Offline")
    assert offline["local_value"] == offline["local"]["kpis"]["throughput_sps"]["value"]
    assert "compliance TEST04 failed" in offline["differences"]
    accuracy = next(p for p in pairs if p["local"]["mode"] == "accuracy")
    assert accuracy["metric"] == "top1" and accuracy["published_value"] == 76.096
    assert accuracy["local_value"] == pytest.approx(local_docs[2]["kpis"]["accuracy"]["top1"] * 100)
    assert accuracy["ratio_local_over_published"] is None  # accuracies differ in points, they are not ratios
    assert accuracy["difference_pp"] == pytest.approx(accuracy["local_value"] - 76.096)
    assert ", 1,000 samples of fashion-mnist" in accuracy["differences"]

    table = edgeperf("scorecard", "edge", "--db", str(imported_db), "--reference", "resnet50", "--reference-system", "edgebox")
    assert table.returncode == 0, table.stderr
    assert "beside published MLPerf results" in table.stdout and "EdgeBox" in table.stdout


def test_a_reference_that_fits_nothing_is_one_line(imported_db, tmp_path):
    one_error_line(edgeperf_in_process("scorecard", "edge", "--db", str(imported_db), "--reference", "ssd-mobilenet"), 2,
                   "no published 'ssd-mobilenet' rows are stored", "bert-99, resnet50, retinanet")
    one_error_line(edgeperf_in_process("scorecard", "edge", "--db", str(imported_db), "--reference", "resnet50",
                                       "--reference-system", "jetson"), 2, "contains 'jetson'")
    one_error_line(edgeperf_in_process("report", "edge", "--db", str(imported_db), "--format", "csv", "--reference",
                                       "resnet50"), 2, "not in the CSV report")
    one_error_line(edgeperf_in_process("compare", "edge", "--db", str(imported_db)), 2, "--baseline", "--reference")
    fresh = tmp_path / "fresh.db"
    store_campaign(fresh, "edge", [])
    one_error_line(edgeperf_in_process("scorecard", "edge", "--db", str(fresh), "--reference", "auto"), 2,
                   "no published rows are stored", "edgeperf reference import")


def test_bert_means_its_accuracy_targets(imported_db):
    shown = edgeperf_in_process("compare", "edge", "--db", str(imported_db), "--reference", "bert", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    pairs = json.loads(shown.stdout)["reference"]["pairs"]
    assert {p["benchmark"] for p in pairs} == {"bert-99"} and all(p["local"]["scenario"] == "SingleStream" for p in pairs)
    assert all("open division (the model may differ" in p["differences"] and "INVALID" in p["differences"] for p in pairs)
    # an open result's dataset size is not assumed: only what its accuracy.txt says (bert's says none)
    assert not any("dataset" in p["differences"].split("; local:")[0] for p in pairs)


def test_auto_reads_the_benchmark_from_the_zoo_entry(imported_db):
    with Store(imported_db, create=False) as store:
        rows = scorecard.build(store.results(store.campaign("edge")["id"]))
        references = stored(store)
    named = {"models": {"fashion-mnist-cnn": {"benchmark": "resnet50"}}}
    pairs, notes = matching.pair(rows, references, matching.AUTO, manifest=named)
    assert len(pairs) == 3 and not notes and {p.reference.benchmark for p in pairs} == {"resnet50"}
    pairs, notes = matching.pair(rows, references, matching.AUTO, manifest={"models": {"fashion-mnist-cnn": {}}})
    assert not pairs and len(notes) == 3 and all("names no MLPerf benchmark" in n for n in notes)
    pairs, notes = matching.pair(rows, references, matching.AUTO, manifest={"models": {"fashion-mnist-cnn": {"benchmark":
                                                                                                          "retinanet"}}})
    assert len(pairs) == 2 and "no published retinanet Offline row is stored" in " ".join(notes)
    assert matching.benchmark_for("/models/resnet.onnx", named) is None


class _Tables(HTMLParser):
    """Each table's title and rows of cell text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._title: str | None = None
        self._in: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in ("h3", "td", "th"):
            self._in, self._text = tag, []
        if tag == "tr" and self._title is not None:
            self.tables[self._title].append([])

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "h3" and self._in == "h3":
            self._title = "".join(self._text)
            self.tables[self._title] = []
        elif tag in ("td", "th") and self._in == tag and self._title is not None:
            self.tables[self._title][-1].append("".join(self._text))
        if tag == self._in:
            self._in = None


def test_html_report_shows_the_published_row_beside_the_device(imported_db, tmp_path):
    out = tmp_path / "report.html"
    done = edgeperf_in_process("report", "edge", "--db", str(imported_db), "--reference", "resnet50", "-o", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    parser = _Tables()
    parser.feed(page)
    table = parser.tables["beside published MLPerf results"]
    header, lines = table[0], table[1:]
    assert "published" in header and "local vs published" in header and "differences" in header
    assert len(lines) == 3
    for line in lines:
        cells = dict(zip(header, line, strict=True))
        assert cells["device"] == "pi-a" and cells["benchmark"] == "resnet50"
        assert cells["published system"] == "published, MLPerf Inference v4.1, Acme, Acme EdgeBox 8G (TensorRT)"
        assert re.fullmatch(r"\[\d\]", cells["differences"])
    # each line's differences are said once, in a numbered note under the table
    text = html.unescape(page)
    assert reference_rows.NOTE in text and "<script" not in page
    for mark in {dict(zip(header, line, strict=True))["differences"] for line in lines}:
        said = re.findall(re.escape(mark) + r" published: closed division, full dataset ImageNet 2012 validation 50,000 "
                          r"images, TensorRT 10\.1, CUDA 12\.2, [^<]*; local: [^<]*", text)
        assert len(said) == 1, mark
    # the same rows in the JSON report, the campaign's own tables untouched
    with Store(imported_db, create=False) as store:
        campaign = store.campaign("edge")
        results = store.results(campaign["id"])
        choice = reference_rows.choice(stored(store), "resnet50")
    doc = json.loads(campaign_report.build("json", campaign, results, reference=choice))
    assert len(doc["reference"]["pairs"]) == 3 and len(doc["rows"]) == 3
    assert "beside published" not in campaign_report.build_html(campaign, results)


def test_compare_html_with_reference_only(imported_db, tmp_path):
    out = tmp_path / "compare.html"
    done = edgeperf_in_process("compare", "edge", "--db", str(imported_db), "--reference", "retinanet", "--format", "html",
                               "-o", str(out))
    assert done.returncode == 0, done.stderr
    parser = _Tables()
    parser.feed(out.read_text())
    lines = parser.tables["beside published MLPerf results"][1:]
    assert len(lines) == 2  # the two SingleStream rows; Offline has no published retinanet row
    assert all("published, MLPerf Inference v4.1, Beta, Beta Pi 5" in line for line in lines)


def test_stored_rows_are_read_by_benchmark_and_scenario(imported_db):
    with Store(imported_db, create=False) as store:
        assert {(r["benchmark"], r["scenario"]) for r in store.reference_rows("resnet50")} == {
            ("resnet50", "SingleStream"), ("resnet50", "Offline")}
        assert [r["benchmark"] for r in store.reference_rows(scenario="Offline")] == ["resnet50"]
        assert store.reference_rows("resnet50", "MultiStream") == []


def test_compare_with_a_baseline_and_the_reference(imported_db, local_docs, tmp_path):
    db = tmp_path / "both.db"
    shutil.copy(imported_db, db)
    base = [json.loads(json.dumps(d)) | {"run_id": "b" + d["run_id"][1:], "baseline": {"kind": "host-cpu"}} for d in local_docs]
    for doc in base:
        doc["device"]["id"] = "dc-host"
    store_campaign(db, "base", base, kind="baseline")
    shown = edgeperf_in_process("compare", "edge", "--baseline", "base", "--reference", "resnet50", "--db", str(db),
                                "--format", "json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert len(doc["baseline"]) == 3 and all(c["baseline"]["device"] == "dc-host" for c in doc["baseline"])
    assert len(doc["reference"]["pairs"]) == 3
    page = tmp_path / "both.html"
    assert edgeperf_in_process("compare", "edge", "--baseline", "base", "--reference", "resnet50", "--db", str(db),
                               "--format", "html", "-o", str(page)).returncode == 0
    parser = _Tables()
    parser.feed(page.read_text())
    with Store(db, create=False) as store:
        base_id = store.campaign("base")["id"]
    assert list(parser.tables) == [f"edge vs baseline base ({base_id})", "beside published MLPerf results"]


# ---- MLPerf Tiny ---------------------------------------------------------------------------------------
TINY_SYSTEM = {  # the keys a published MLPerf Tiny system description uses (closed/STMicroelectronics, v1.1)
    "Submitter": "ST", "Division": "Closed", "Status": "Available", "Board Name": "NUCLEO-L4R5ZI",
    "Processor(s) Name": "32-bit Arm Cortex-M4 (DSP + FPU)", "Accelerator": "", "Inference Framework": "X-CUBE-AI v8.1.0",
}


def _windows(throughput: float, met: bool = True) -> str:
    """The EEMBC runner's performance log: five windows, then their median."""
    lines = []
    for window in (2, 4, 6, 8, 10):
        lines += [f"00126.156 ulp-mlperf: Performance results for window {window}:",
                  "00126.158 ulp-mlperf:   # Inferences :          100",
                  f"00126.159 ulp-mlperf:   Throughput   :        {throughput:.3f} inf./sec.",
                  f"00126.159 ulp-mlperf: Runtime requirements have {'' if met or window < 10 else 'not '}been met."]
    lines += ["00126.165 ulp-mlperf: ---------------------------------------------------------",
              f"00126.167 ulp-mlperf: Median throughput is {throughput:.3f} inf./sec."]
    return "\n".join(lines) + "\n"


def test_an_mlperf_tiny_tree_is_read_from_the_runner_logs(tmp_path, imported_db):
    root = tmp_path / "tiny_results_v1.1"
    (root / "closed/ST/systems").mkdir(parents=True)
    (root / "closed/ST/systems/NUCLEO_L4R5ZI.json").write_text(json.dumps(TINY_SYSTEM, indent="\t"))
    results = root / "closed/ST/results/NUCLEO_L4R5ZI"
    for benchmark, mode, text in (
        ("kws", "performance", _windows(8.425)),
        ("kws", "accuracy", "07610.329 ulp-mlperf: Top-1: 85.3%\n07610.352 ulp-mlperf: AUC: 0.94\n"),
        ("kws", "energy", "00126.103 ulp-ml: Median energy cost is 2833.138 uJ/inf.\n" + _windows(15.884)),
        ("ad", "energy", _windows(20.5, met=False)),  # no performance run: the energy run's throughput
        ("ad", "accuracy", "36348.892 ulp-mlperf: Top-1: 77.0%\n36348.898 ulp-mlperf: AUC: 0.85\n"),
    ):
        (results / benchmark / mode).mkdir(parents=True, exist_ok=True)
        (results / benchmark / mode / "results.txt").write_text(text)
    db = tmp_path / "tiny.db"
    shutil.copy(imported_db, db)
    done = edgeperf_in_process("reference", "import", str(root), "--db", str(db))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "2 published rows" in done.stdout and "as MLPerf Tiny v1.1 (version from the folder name tiny_results_v1.1)" \
        in done.stdout
    rows = [r for r in _stored(db) if r["suite"] == "Tiny"]
    kws, ad = _by(rows, "kws", "SingleStream"), _by(rows, "ad", "SingleStream")
    assert (kws["version"], kws["division"], kws["system_name"], kws["status"], kws["framework"]) == (
        "v1.1", "closed", "NUCLEO-L4R5ZI", "available", "X-CUBE-AI v8.1.0")
    assert (kws["metric"], kws["value"], kws["unit"], kws["valid"]) == ("Median throughput", 8.425, "inferences/s", True)
    assert kws["accuracy"]["metric"] == "top1" and kws["accuracy"]["value"] == 85.3
    assert kws["energy_mj_per_inference"] == pytest.approx(2.833138)
    assert (ad["value"], ad["valid"], ad["accuracy"]["metric"], ad["accuracy"]["value"]) == (20.5, False, "AUC", 0.85)
    assert ad["energy_mj_per_inference"] is None
    # a Tiny row beside the local SingleStream rows, said to be Tiny's runner and not LoadGen
    shown = json.loads(edgeperf_in_process("scorecard", "edge", "--db", str(db), "--reference", "kws", "--json").stdout)
    pairs = shown["reference"]["pairs"]
    assert len(pairs) == 2 and all(p["label"] == "published, MLPerf Tiny v1.1, ST, NUCLEO-L4R5ZI" for p in pairs)
    perf = next(p for p in pairs if p["local"]["mode"] == "performance")
    assert perf["local_value"] == perf["local"]["kpis"]["throughput_sps"]["value"] and perf["published_value"] == 8.425
    assert "MLPerf Tiny (EEMBC runner, not LoadGen" in perf["differences"]
    assert "energy 2.833 mJ/inference" in perf["differences"]


def test_a_detection_runs_map_sits_beside_the_published_map(tmp_path, tree):
    """A local COCO accuracy run (mAP 51/101, tests/test_scoring.py) in the scorecard's mAP / AUC column, and beside
    the published retinanet row's mAP in points: the same metric, never a top-1."""
    from tests.test_scoring import detection_fixture

    model, root = detection_fixture(tmp_path)
    settings = for_profile("smoke", Scenario.SINGLE_STREAM, Mode.ACCURACY)
    doc = bench.run(bench.BenchRequest(model=str(model), settings=settings, engine="native", dataset=f"coco:{root}",
                                       options=RuntimeOptions(threads=1), warmup_runs=1, device_id="pi-a"))
    db = tmp_path / "controller.db"
    store_campaign(db, "coco", [doc])
    assert edgeperf_in_process("reference", "import", str(tree), "--db", str(db)).returncode == 0
    card = edgeperf_in_process("scorecard", "coco", "--db", str(db), "--reference", "retinanet", "--json")
    assert card.returncode == 0, card.stderr
    shown = json.loads(card.stdout)
    (row,) = shown["rows"]
    assert row["kpis"][scorecard.TASK_KPI]["value"] == pytest.approx(51 / 101, abs=1e-6)
    assert row["kpis"][scorecard.TASK_KPI]["method"].startswith("mAP: none")
    (pair,) = shown["reference"]["pairs"]
    assert pair["metric"] == "mAP" and pair["published_value"] == pytest.approx(37.373)
    assert pair["local_value"] == pytest.approx(100 * 51 / 101, abs=1e-4)
    assert pair["difference_pp"] == pytest.approx(100 * 51 / 101 - 37.373, abs=1e-4)
    table = edgeperf_in_process("scorecard", "coco", "--db", str(db))
    assert "mAP 0.505" in table.stdout
