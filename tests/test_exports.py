"""Exports of a stored campaign: MLflow runs read back through MlflowClient, and MLPerf-style folders.

The documents are real: the agent's bench runs the zoo's int8 model under both engines (a
LoadGen and a native SingleStream run, a native run with an energy estimate, a native Offline
run, native and LoadGen accuracy runs on the committed Fashion-MNIST subset), and a real Store
keeps them as a campaign's results, so the exporters read exactly what the controller stores:
the typed results, and for MLflow's artifact the documents as stored. Expected values come from
the stored documents.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

from agent import __version__, bench, contract, result
from agent.contract import Result, checked_result
from agent.energy_meter import PowerPlan
from agent.errors import EdgeperfError
from agent.scenarios.loadgen import parse_detail
from agent.scenarios.settings import Mode, Scenario, for_profile, with_overrides
from controller.reports.exports import ExportError, campaign_results, mlperf, safe_name
from controller.reports.exports import mlflow as mlflow_export
from controller.store.database import Store

MODEL = "zoo:fashion-mnist-cnn/int8.tflite"
MODEL_DIR = "fashion-mnist-cnn_int8.tflite"
SUBSET = "fashion-mnist:subset"
# (job key, device, engine, mode, scenario, dataset, energy estimate)
PLAN = (
    ("edge-a/ss/performance/loadgen", "edge-a", "loadgen", Mode.PERFORMANCE, Scenario.SINGLE_STREAM, "synthetic", False),
    ("edge-a/ss/performance/native", "edge-a", "native", Mode.PERFORMANCE, Scenario.SINGLE_STREAM, "synthetic", True),
    ("edge-a/offline/performance/native", "edge-a", "native", Mode.PERFORMANCE, Scenario.OFFLINE, "synthetic", False),
    ("edge-a/ss/accuracy/native", "edge-a", "native", Mode.ACCURACY, Scenario.SINGLE_STREAM, SUBSET, False),
    # ':' is allowed in a device id but not in a path component everywhere: the export's folder is lab_pi_5
    ("lab:pi:5/ss/accuracy/loadgen", "lab:pi:5", "loadgen", Mode.ACCURACY, Scenario.SINGLE_STREAM, SUBSET, False),
)
LG_PERF, NATIVE_ENERGY, NATIVE_OFFLINE, NATIVE_ACC, LG_ACC = range(len(PLAN))


@dataclass
class Stored:
    store: Store
    campaign: dict[str, Any]
    results: list[Result]  # what the exporters read
    docs: list[dict[str, Any]]  # the same results as stored (Store.documents): what the tests check against


def typed(doc: dict[str, Any]) -> Result:
    """A (changed) document as the controller reads it: decoded through the contract."""
    return contract.convert("result", doc)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Stored:
    """One campaign of five real runs, each stored under the run id of its job's attempt."""
    root = tmp_path_factory.mktemp("exports")
    store = Store(root / "controller.db")
    jobs = [(key, device, {"engine": engine, "mode": mode.value, "scenario": scenario.value})
            for key, device, engine, mode, scenario, _, _ in PLAN]
    campaign_id = store.create_campaign("exports-test", "tests/test_exports.py", {"name": "exports-test"}, jobs)
    for job, (_, device, engine, mode, scenario, dataset, energy) in zip(store.jobs(campaign_id), PLAN, strict=True):
        run_id = store.start_attempt(job)
        settings = with_overrides(for_profile("smoke", scenario, mode), min_duration_ms=200)
        doc = bench.run(bench.BenchRequest(
            model=MODEL, settings=settings, engine=engine, dataset=dataset, device_id=device, run_id=run_id,
            power=PowerPlan("estimate", idle_s=0.2) if energy else None, log_dir=root / "loadgen-logs", warmup_runs=5))
        assert store.add_result(*checked_result(doc), device)
    campaign, results, docs = campaign_results(store, "exports-test")
    assert [d["engine"] for d in docs] == [p[2] for p in PLAN]
    assert [r.run_id for r in results] == [d["run_id"] for d in docs]  # the same rows, in the same order
    assert docs[NATIVE_ENERGY]["kpis"]["energy"]["energy_per_inference_mj"] > 0
    assert docs[NATIVE_ACC]["kpis"]["accuracy"]["n"] == 1000
    return Stored(store, campaign, results, docs)


def test_campaign_results_refuses_a_campaign_without_results(tmp_path: Path) -> None:
    store = Store(tmp_path / "controller.db")
    store.create_campaign("empty", "x.yaml", {}, [("d/m/SingleStream/performance/r0", "d", {})])
    with pytest.raises(ExportError, match="no results"):
        campaign_results(store, "empty")


# ---- MLflow --------------------------------------------------------------------------------------
def _client(uri: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A reader of the file store; the exporter itself must work without this variable."""
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return mlflow.MlflowClient(tracking_uri=uri)


def _runs(client: Any, experiment: str) -> dict[str, Any]:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment}"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    keyed = {r.data.tags[mlflow_export.RUN_ID_TAG]: r for r in runs}
    assert len(keyed) == len(runs), "two MLflow runs for one edgeperf result"
    return keyed


def test_mlflow_export_logs_one_run_per_result_with_params_metrics_and_artifacts(
        stored: Stored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    uri = (tmp_path / "mlruns").as_uri()
    ids = mlflow_export.export_campaign(stored.results, stored.docs, stored.campaign, uri)
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ, "the exporter must put the environment back"

    client = _client(uri, monkeypatch)
    runs = _runs(client, "edgeperf/exports-test")
    assert set(runs) == {d["run_id"] for d in stored.docs}
    assert ids == [runs[d["run_id"]].info.run_id for d in stored.docs]
    for doc in stored.docs:
        run = runs[doc["run_id"]]
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"{doc['device']['id']}/{MODEL}/{doc['scenario']}/{doc['mode']}"
        assert tags["edgeperf.campaign_id"] == stored.campaign["id"]
        assert tags["edgeperf.device_id"] == doc["device"]["id"]
        assert tags["edgeperf.valid"] == str(doc["valid"]).lower() and tags["edgeperf.engine"] == doc["engine"]
        assert tags["edgeperf.profile"] == "smoke" and "edgeperf.baseline_kind" not in tags
        assert params["settings.min_duration_ms"] == "200"
        assert params["settings.expected_latency_ns"] == str(doc["settings"]["effective"]["expected_latency_ns"])
        assert params["runtime.name"] == "litert" and params["runtime.version"] == doc["runtime"]["version"]
        assert params["model.sha256"] == doc["model"]["sha256"] and params["model.precision"] == "int8"
        tensor = doc["model"]["inputs"][0]
        assert (params["model.inputs.0.name"], params["model.inputs.0.dtype"]) == (tensor["name"], tensor["dtype"])
        assert params["model.inputs.0.shape"] == json.dumps(tensor["shape"])
        assert params["settings.schedule_seed"] == str(doc["settings"]["effective"]["schedule_seed"])  # a uint64
        assert params["dataset.name"] == doc["dataset"]["name"]
        facts = doc["device"]["facts"]
        assert params["device.cpu_model"] == facts["cpu_model"]
        assert params["device.memory_total_mb"] == str(facts["memory_total_mb"])
        assert params["device.kernel"] == facts["kernel"] and params["device.python"] == facts["python"]
        k = doc["kpis"]
        assert metrics["latency_ms.p90"] == k["latency_ms"]["p90"]
        assert metrics["latency_ms.p999"] == k["latency_ms"]["p999"]
        assert metrics["throughput_sps"] == k["throughput_sps"]
        assert metrics["memory.peak_rss_mb"] == k["memory"]["peak_rss_mb"]
        assert metrics["load_time_ms"] == k["load_time_ms"] and metrics["model_size_mb"] == k["model_size_mb"]
        if k["energy"] is None:
            assert not any(name.startswith("energy.") for name in metrics), "a missing energy block is not zero energy"
        if k["accuracy"] is None:
            assert not any(name.startswith("accuracy.") for name in metrics)

    energy = stored.docs[NATIVE_ENERGY]["kpis"]["energy"]
    run = runs[stored.docs[NATIVE_ENERGY]["run_id"]]
    for key in ("energy_per_inference_mj", "energy_per_inference_above_idle_mj", "inferences_per_joule", "avg_power_w",
                "idle_power_w", "gco2e_per_1000_inferences"):
        assert run.data.metrics[f"energy.{key}"] == energy[key]
    assert run.data.metrics["energy.mlperf.mj_per_query"] == energy["mlperf"]["mj_per_query"]
    assert run.data.params["energy.source"] == "estimate" and run.data.params["energy.measured"] == "false"
    for key in ("method", "nominal_rate_hz", "grid_intensity_g_per_kwh"):
        assert run.data.params[f"energy.{key}"] == (energy[key] if isinstance(energy[key], str) else json.dumps(energy[key]))
    assert run.data.metrics["early_stopping_latency_ms"] == stored.docs[NATIVE_ENERGY]["kpis"]["early_stopping_latency_ms"]

    accuracy = stored.docs[NATIVE_ACC]["kpis"]["accuracy"]
    metrics = runs[stored.docs[NATIVE_ACC]["run_id"]].data.metrics
    assert metrics["accuracy.top1"] == accuracy["top1"] and metrics["accuracy.n"] == 1000
    assert (metrics["accuracy.ci95.lo"], metrics["accuracy.ci95.hi"]) == tuple(accuracy["ci95"])
    assert metrics["accuracy.f1_macro"] == accuracy["f1_macro"]


def test_mlflow_artifacts_are_the_result_and_the_mlperf_logs(
        stored: Stored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = (tmp_path / "mlruns").as_uri()
    ids = dict(zip((d["run_id"] for d in stored.docs),
                   mlflow_export.export_campaign(stored.results, stored.docs, stored.campaign, uri), strict=True))
    client = _client(uri, monkeypatch)

    def fetch(doc: dict[str, Any], path: str) -> bytes:
        return Path(client.download_artifacts(ids[doc["run_id"]], path, str(tmp_path / uuid.uuid4().hex))).read_bytes()

    for doc in stored.docs:
        assert json.loads(fetch(doc, mlflow_export.RESULT_ARTIFACT)) == json.loads(result.dumps(doc))
    loadgen = stored.docs[LG_PERF]
    own = Path(loadgen["logs"]["dir"])
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt"):
        assert fetch(loadgen, f"mlperf_logs/{name}") == (own / name).read_bytes()
    native = fetch(stored.docs[NATIVE_ENERGY], "mlperf_logs/mlperf_log_summary.txt").decode()
    verdict = "VALID" if stored.docs[NATIVE_ENERGY]["valid"] else "INVALID"
    assert "SUT name : edgeperf-native" in native and f"Result is : {verdict}" in native
    listed = {f.path for f in client.list_artifacts(ids[stored.docs[NATIVE_ACC]["run_id"]])}
    assert listed == {mlflow_export.RESULT_ARTIFACT}, "a native accuracy run has no MLPerf logs to attach"


def test_mlflow_export_is_idempotent_and_redoes_a_run_an_interrupted_export_left(
        stored: Stored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = str(tmp_path / "mlruns")  # a plain path is a file store too
    first = mlflow_export.export_runs(stored.results, stored.docs, stored.campaign, uri, experiment="bench/edge")
    assert all(r.created for r in first)
    again = mlflow_export.export_runs(stored.results, stored.docs, stored.campaign, uri, experiment="bench/edge")
    assert [r.mlflow_run_id for r in again] == [r.mlflow_run_id for r in first]
    assert not any(r.created for r in again)
    client = _client(uri, monkeypatch)
    assert len(_runs(client, "bench/edge")) == len(stored.docs)

    client.update_run(first[0].mlflow_run_id, status="RUNNING")  # what a crash between create and finish leaves
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    third = mlflow_export.export_runs(stored.results, stored.docs, stored.campaign, uri, experiment="bench/edge")
    assert [r.created for r in third] == [True] + [False] * (len(stored.docs) - 1)
    assert third[0].mlflow_run_id != first[0].mlflow_run_id
    client = _client(uri, monkeypatch)
    runs = _runs(client, "bench/edge")
    assert len(runs) == len(stored.docs) and runs[stored.docs[0]["run_id"]].info.status == "FINISHED"
    assert client.get_run(first[0].mlflow_run_id).info.lifecycle_stage == "deleted"


def test_mlflow_keys_are_sanitised_and_long_values_cut(stored: Stored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = copy.deepcopy(stored.docs[LG_PERF])
    doc["run_id"] = uuid.uuid4().hex
    doc["device"]["facts"]["odd key/ü:x"] = "x" * 10_000
    doc["device"]["facts"]["gpus"] = [{"name": "NVIDIA H200", "driver_version": "580.1", "clocks_mhz": {"sm_max": 1980}}]
    doc["baseline"] = {"kind": "gpu"}
    params = mlflow_export.run_params(typed(doc))
    cut = params["device.odd_key___x"]
    assert len(cut) == mlflow_export.MAX_PARAM_VALUE and cut.endswith(mlflow_export.TRUNCATED)
    assert params["device.gpus.0.name"] == "NVIDIA H200" and params["device.gpus.0.clocks_mhz.sm_max"] == "1980"
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]{1,250}", key) for key in params)

    uri = (tmp_path / "mlruns").as_uri()
    [run_id] = mlflow_export.export_campaign([typed(doc)], [doc], stored.campaign, uri)  # MLflow's validation accepts it
    run = _client(uri, monkeypatch).get_run(run_id)
    assert run.data.params["device.odd_key___x"] == cut
    assert run.data.tags["edgeperf.baseline_kind"] == "gpu"


def test_mlflow_refuses_a_deleted_experiment(stored: Stored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = (tmp_path / "mlruns").as_uri()
    client = _client(uri, monkeypatch)
    client.delete_experiment(client.create_experiment("edgeperf/exports-test"))
    with pytest.raises(ExportError, match="deleted; restore it"):
        mlflow_export.export_campaign(stored.results[:1], stored.docs[:1], stored.campaign, uri)


def test_mlflow_missing_names_the_extra(stored: Stored, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what Python does when mlflow is not installed
    with pytest.raises(mlflow_export.MlflowMissing) as caught:
        mlflow_export.export_campaign(stored.results, stored.docs, stored.campaign, (tmp_path / "mlruns").as_uri())
    assert str(caught.value) == "MLflow export needs mlflow: pip install 'edgeperf[mlflow]'"
    assert isinstance(caught.value, EdgeperfError) and caught.value.exit_code == 2


# ---- MLPerf folders ------------------------------------------------------------------------------
@pytest.fixture
def exported(stored: Stored, tmp_path: Path) -> tuple[Path, list[Path]]:
    out = tmp_path / "mlperf"
    return out, mlperf.export_campaign(stored.results, stored.campaign, out)


def test_mlperf_export_writes_the_results_tree(exported: tuple[Path, list[Path]]) -> None:
    out, files = exported
    single = Path("edge-a", MODEL_DIR, "SingleStream")
    expected = {
        single / "performance/run_1/mlperf_log_summary.txt", single / "performance/run_1/mlperf_log_detail.txt",
        single / "performance/run_1/mlperf_log_accuracy.json",  # LoadGen writes one in performance mode too
        single / "performance/run_2/mlperf_log_summary.txt", single / "performance/run_2/mlperf_log_detail.txt",
        Path("edge-a", MODEL_DIR, "Offline/performance/run_1/mlperf_log_summary.txt"),
        Path("edge-a", MODEL_DIR, "Offline/performance/run_1/mlperf_log_detail.txt"),
        single / "accuracy/accuracy.txt",
        Path("edge-a/systems/edge-a.json"),
        Path("lab_pi_5", MODEL_DIR, "SingleStream/accuracy/accuracy.txt"),
        Path("lab_pi_5", MODEL_DIR, "SingleStream/accuracy/mlperf_log_accuracy.json"),
        Path("lab_pi_5", MODEL_DIR, "SingleStream/accuracy/mlperf_log_summary.txt"),
        Path("lab_pi_5", MODEL_DIR, "SingleStream/accuracy/mlperf_log_detail.txt"),
        Path("lab_pi_5/systems/lab_pi_5.json"),
    }
    assert {f.relative_to(out) for f in files} == expected
    assert {p.relative_to(out) for p in out.rglob("*") if p.is_file()} == expected


def test_loadgen_runs_keep_loadgen_own_files_byte_for_byte(stored: Stored, exported: tuple[Path, list[Path]]) -> None:
    out, _ = exported
    for index, folder in ((LG_PERF, Path("edge-a", MODEL_DIR, "SingleStream/performance/run_1")),
                          (LG_ACC, Path("lab_pi_5", MODEL_DIR, "SingleStream/accuracy"))):
        own = Path(stored.docs[index]["logs"]["dir"])
        for name in stored.docs[index]["logs"]["files"]:
            assert (out / folder / name).read_bytes() == (own / name).read_bytes(), name
    assert (out / "edge-a" / MODEL_DIR / "SingleStream/performance/run_1/mlperf_log_summary.txt").read_text() == \
        stored.docs[LG_PERF]["logs"]["summary"]


def test_native_summary_is_loadgen_format_with_the_document_numbers(stored: Stored, exported: tuple[Path, list[Path]]) -> None:
    out, _ = exported
    doc = stored.docs[NATIVE_ENERGY]
    text = (out / "edge-a" / MODEL_DIR / "SingleStream/performance/run_2/mlperf_log_summary.txt").read_text()
    lat = doc["kpis"]["latency_ms"]
    p90_ns = round(lat["p90"] * 1e6)
    assert "SUT name : edgeperf-native\nScenario : SingleStream\nMode     : PerformanceOnly\n" in text
    verdict = "VALID" if doc["valid"] else "INVALID"  # the run's own: a real model's verdict depends on the machine's load
    assert f"\n90.0th percentile latency (ns) : {p90_ns}\nResult is : {verdict}\n" in text
    assert f"\n90.00 percentile latency (ns)   : {p90_ns}\n" in text
    assert f"\n99.90 percentile latency (ns)   : {round(lat['p999'] * 1e6)}\n" in text
    es_ns = round(doc["kpis"]["early_stopping_latency_ms"] * 1e6)
    assert f" * Early stopping 90.0th percentile estimate: {es_ns}\n" in text
    assert f" * Processed at least 64 queries ({doc['kpis']['query_count']}).\n" in text
    assert "min_duration (ms): 200\n" in text and "schedule_rng_seed : 16159082839903944936\n" in text

    tiny = copy.deepcopy(doc)
    tiny["kpis"]["latency_ms"]["p90"] = 249 / 1e6  # 249 ns, which is 248.99999999999997 once multiplied back
    assert "\n90.0th percentile latency (ns) : 249\n" in mlperf.summary_log(typed(tiny))

    offline = stored.docs[NATIVE_OFFLINE]
    text = (out / "edge-a" / MODEL_DIR / "Offline/performance/run_1/mlperf_log_summary.txt").read_text()
    verdict = "VALID" if offline["valid"] else "INVALID"
    assert f"\nSamples per second: {offline['kpis']['throughput_sps']:g}\nResult is : {verdict}\n" in text
    assert "Early Stopping Result" not in text
    assert f"\nsamples_per_query : {offline['kpis']['sample_count']}\n" in text


def test_detail_logs_are_mllog_json_lines_with_loadgen_keys(stored: Stored, exported: tuple[Path, list[Path]]) -> None:
    out, _ = exported
    energy_run = out / "edge-a" / MODEL_DIR / "SingleStream/performance/run_2/mlperf_log_detail.txt"
    offline_run = out / "edge-a" / MODEL_DIR / "Offline/performance/run_1/mlperf_log_detail.txt"
    for path in (energy_run, offline_run):
        lines = path.read_text().splitlines()
        assert lines and all(line.startswith(":::MLLOG ") for line in lines)
        events = [json.loads(line[len(":::MLLOG "):]) for line in lines]
        assert all({"key", "value", "time_ms", "namespace", "event_type", "metadata"} <= set(e) for e in events)
        assert "native engine produced this run" in events[0]["value"] and events[0]["key"] == "generic_message"

    doc = stored.docs[NATIVE_ENERGY]
    log = parse_detail(energy_run)  # the parser the loadgen engine reads LoadGen's own logs with
    k = doc["kpis"]
    assert log["result_validity"] == "VALID" and log["early_stopping_met"] is True
    assert log["result_query_count"] == k["query_count"]
    assert log["result_90.00_percentile_latency_ns"] == round(k["latency_ms"]["p90"] * 1e6)
    assert log["early_stopping_latency_ss"] == round(k["early_stopping_latency_ms"] * 1e6)
    assert log["effective_min_duration_ms"] == 200 and log["requested_scenario"] == "SingleStream"
    for key, unix_ns in (("power_begin", doc["window"]["begin_unix_ns"]), ("power_end", doc["window"]["end_unix_ns"])):
        stamp = datetime.strptime(log[key], "%m-%d-%Y %H:%M:%S.%f").replace(tzinfo=timezone.utc)
        assert abs(stamp.timestamp() * 1e9 - unix_ns) < 1e6
    offline = parse_detail(offline_run)
    assert "power_begin" not in offline, "no energy block, no power window"
    assert offline["result_samples_per_second"] == stored.docs[NATIVE_OFFLINE]["kpis"]["throughput_sps"]


def _same(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, float) or isinstance(theirs, float):
        return math.isclose(ours, theirs, rel_tol=1e-4)  # LoadGen logs doubles to about six digits
    return ours == theirs


def test_generated_logs_of_a_loadgen_run_match_loadgen_own(stored: Stored, tmp_path: Path) -> None:
    """The generator checked against LoadGen itself: from the numbers a LoadGen run's document
    keeps, the generated summary is LoadGen's but for the SUT name (and a rate LoadGen's detail
    log rounded), and every key both detail logs have holds the same value."""
    doc = stored.docs[LG_PERF]
    own = Path(doc["logs"]["dir"])
    theirs = (own / "mlperf_log_summary.txt").read_text().splitlines()
    ours = mlperf.summary_log(typed(doc)).splitlines()
    assert len(ours) == len(theirs)
    for mine, real in zip(ours, theirs, strict=True):
        if real.startswith("SUT name"):
            assert mine == "SUT name : edgeperf-native"
        elif real.startswith("QPS w/ loadgen overhead"):
            assert math.isclose(float(mine.split(":")[1]), float(real.split(":")[1]), rel_tol=1e-5)
        else:
            assert mine == real

    (tmp_path / "detail.txt").write_text(mlperf.detail_log(typed(doc), "generated for a test"))
    generated, loadgen = parse_detail(tmp_path / "detail.txt"), parse_detail(own / "mlperf_log_detail.txt")
    shared = set(generated) & set(loadgen) - {"generic_message", "test_datetime", "_errors", "_ending"}
    assert {"result_validity", "result_90.00_percentile_latency_ns", "effective_target_qps", "early_stopping_latency_ss",
            "requested_single_stream_expected_latency_ns", "effective_min_sample_count"} <= shared
    assert {key: generated[key] for key in shared if not _same(generated[key], loadgen[key])} == {}


def test_loadgen_run_whose_logs_stayed_on_the_device_gets_its_inline_summary(stored: Stored, tmp_path: Path) -> None:
    doc = copy.deepcopy(stored.docs[LG_PERF])
    doc["logs"]["dir"] = str(tmp_path / "on-the-device")  # not readable here
    out = tmp_path / "mlperf"
    mlperf.export_campaign([typed(doc)], stored.campaign, out)
    run = out / "edge-a" / MODEL_DIR / "SingleStream/performance/run_1"
    assert sorted(p.name for p in run.iterdir()) == ["mlperf_log_detail.txt", "mlperf_log_summary.txt"]
    assert (run / "mlperf_log_summary.txt").read_text() == doc["logs"]["summary"]
    log = parse_detail(run / "mlperf_log_detail.txt")
    first = json.loads((run / "mlperf_log_detail.txt").read_text().splitlines()[0][len(":::MLLOG "):])
    assert "its own detail log stayed there" in first["value"]
    assert log["result_90.00_percentile_latency_ns"] == round(doc["kpis"]["latency_ms"]["p90"] * 1e6)


def test_accuracy_txt_has_top1_wilson_interval_and_n(stored: Stored, exported: tuple[Path, list[Path]]) -> None:
    out, _ = exported
    acc = stored.docs[NATIVE_ACC]["kpis"]["accuracy"]
    text = (out / "edge-a" / MODEL_DIR / "SingleStream/accuracy/accuracy.txt").read_text()
    lines = text.splitlines()
    assert lines[0] == f"accuracy={acc['top1'] * 100:.3f}%, good={acc['correct']}, total=1000"
    assert lines[1] == f"top1={acc['top1']:.6f} ci95_wilson=[{acc['ci95'][0]:.6f}, {acc['ci95'][1]:.6f}] n=1000"
    assert f"run_id={stored.docs[NATIVE_ACC]['run_id']} engine=native" in text
    assert 0.8 < acc["top1"] < 0.95 and acc["ci95"][0] < acc["top1"] < acc["ci95"][1]


def test_systems_json_describes_the_device(stored: Stored, exported: tuple[Path, list[Path]]) -> None:
    out, _ = exported
    system = json.loads((out / "edge-a/systems/edge-a.json").read_text())
    facts = stored.docs[LG_PERF]["device"]["facts"]
    assert system["submitter"] == "edgeperf" and system["division"] == "open" and system["number_of_nodes"] == 1
    assert system["system_name"] == "edge-a" and system["system_type"] == "edge"
    assert system["host_processor_model_name"] == facts["cpu_model"]
    assert system["host_processor_core_count"] == (facts.get("cpu_count_physical") or facts["cpu_count_logical"])
    assert system["host_memory_capacity"] == f"{facts['memory_total_mb'] / 1024:.1f} GB"
    assert system["framework"] == f"litert {stored.docs[LG_PERF]['runtime']['version']}"
    assert system["operating_system"] == facts.get("os_release", system["operating_system"])
    assert "device id edge-a" in system["sw_notes"] and f"edgeperf {__version__}" in system["sw_notes"]
    assert "engines: loadgen, native" in system["sw_notes"]
    assert system["host_storage_capacity"] == "N/A" and system["accelerators_per_node"] == 0


def test_refuses_a_non_empty_folder_unless_told_to_overwrite(stored: Stored, exported: tuple[Path, list[Path]]) -> None:
    out, _ = exported
    stale = out / "edge-a" / MODEL_DIR / "SingleStream/performance/run_9"
    stale.mkdir()
    (out / "notes.md").write_text("someone else's file\n")
    with pytest.raises(ExportError, match="not empty"):
        mlperf.export_campaign(stored.results, stored.campaign, out)
    assert stale.exists()

    mlperf.export_campaign(stored.results, stored.campaign, out, overwrite=True)
    assert not stale.exists(), "an overwrite replaces the earlier export of a system whole"
    assert (out / "notes.md").read_text() == "someone else's file\n"

    foreign = out / "lab_pi_5"
    (foreign / "systems" / "lab_pi_5.json").write_text('{"submitter": "someone else"}')
    with pytest.raises(ExportError, match="no edgeperf export wrote it"):
        mlperf.export_campaign(stored.results, stored.campaign, out, overwrite=True)


def test_device_ids_that_sanitise_alike_get_their_own_folders(stored: Stored, tmp_path: Path) -> None:
    # the export does not lean on the contract's alphabet: ids it refuses today (older stores had "pi 5") stay
    # apart, so they go in after decoding (replace does not re-check bounds)
    run = stored.results[NATIVE_ENERGY]
    results = [msgspec.structs.replace(run, device=msgspec.structs.replace(run.device, id=device)) for device in ("pi/5", "pi 5")]
    files = mlperf.export_campaign(results, stored.campaign, tmp_path / "mlperf")
    systems = sorted({f.relative_to(tmp_path / "mlperf").parts[0] for f in files})
    assert len(systems) == 2 and all(s.startswith("pi_5-") for s in systems)
    assert safe_name("../..") == "unnamed" and safe_name("a/../b") == "a_.._b"


def test_generated_summary_keeps_loadgen_own_warning_count(stored: Stored) -> None:
    """LoadGen counts warnings the document does not keep; the generated summary repeats its count."""
    doc = copy.deepcopy(stored.docs[LG_PERF])
    doc["logs"]["summary"] = doc["logs"]["summary"].replace(
        "No warnings encountered during test.", "1 warning encountered. See detailed log.")
    assert mlperf.summary_log(typed(doc)).splitlines()[-3:] == ["1 warning encountered. See detailed log.", "",
                                                        "No errors encountered during test."]
