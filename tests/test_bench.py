"""A full run per scenario: the result document carries each scenario's KPIs, verdict and facts."""

from __future__ import annotations

import json
import math
import re

import pytest

from agent import bench, contract, result, result_text
from agent.contract import RuntimeOptions
from agent.scenarios.settings import Mode, Scenario, for_profile, with_overrides


def run(model: str, scenario: Scenario, mode: Mode = Mode.PERFORMANCE, engine: str = "native", dataset: str = "synthetic",
        threads: int = 1, **overrides) -> dict:
    settings = with_overrides(for_profile("smoke", scenario, mode), **overrides)
    doc = bench.run(bench.BenchRequest(model=f"zoo:fashion-mnist-cnn/{model}", settings=settings, engine=engine,
                                       options=RuntimeOptions(threads=threads), dataset=dataset, warmup_runs=5))
    assert contract.convert("result", doc).run_id == doc["run_id"]  # it meets the contract
    json.loads(result.dumps(doc))  # serialisable, no NaN
    return doc


@pytest.mark.parametrize("engine", ["native", "loadgen"])
def test_multistream_reports_per_query_latency_of_eight_samples(engine):
    doc = run("fp32.onnx", Scenario.MULTI_STREAM, engine=engine, batch_size=8)
    k = doc["kpis"]
    assert doc["valid"], doc["invalid_reasons"]
    assert k["latency_basis"] == "query"
    assert k["sample_count"] == 8 * k["query_count"] and k["query_count"] >= 662
    assert k["latency_histogram"]["n"] == k["query_count"]
    assert k["early_stopping_latency_ms"] >= k["latency_ms"]["p99"]
    assert doc["settings"]["effective"]["samples_per_query"] == 8
    assert k["throughput_sps"] == pytest.approx(k["sample_count"] / k["duration_s"], rel=0.1)


@pytest.mark.parametrize("engine", ["native", "loadgen"])
def test_server_at_a_given_rate_runs_that_rate_without_a_search(engine):
    """The settings path on a real model; its verdict depends on how busy the machine is, so it is not asserted
    here (Server decisions are tested on fixed-delay SUTs in tests/test_engines.py)."""
    doc = run("int8.tflite", Scenario.SERVER, engine=engine, server_target_qps=500.0)
    k = doc["kpis"]
    assert k["query_count"] == k["sample_count"] >= doc["settings"]["effective"]["min_query_count"]
    assert k["throughput_sps"] > 0 and k["latency_histogram"]["n"] == k["query_count"]
    assert {c["name"] for c in doc["checks"]} == {"min_duration", "min_queries", "latency_bound", "early_stopping"}
    server = doc["settings"]["server"]
    assert server["target_qps"] == doc["settings"]["effective"]["server_target_qps"] == 500.0
    assert (server["searched"], server["trials"], server["target_qps_rule"]) == (False, [], "given")
    assert server["latency_bound_rule"].startswith("derived")  # no bound was given


def test_server_without_a_rate_searches_one_and_records_it():
    doc = run("int8.tflite", Scenario.SERVER, engine="native", min_duration_ms=200)
    settings, server = doc["settings"], doc["settings"]["server"]
    assert settings["requested"]["server_target_qps"] == settings["requested"]["server_target_latency_ms"] == 0  # not given
    assert server["searched"] and server["target_qps_rule"].startswith("searched")
    assert settings["effective"]["server_target_qps"] == server["target_qps"] == server["trials"][-1]["target_qps"] > 0
    assert settings["effective"]["server_target_latency_ms"] == server["latency_bound_ms"] > 0
    assert server["single_stream_p99_ms"] >= server["single_stream_median_ms"] > 0
    assert server["trials"][0]["final"] is False and server["trials"][-1]["final"] is True
    assert doc["kpis"]["query_count"] == server["trials"][-1]["queries"]  # the result is the last measured run
    text = result_text.render(doc)  # the agent's terminal says how the bound and the rate were set
    assert f"bound {server['latency_bound_ms']:g} ms (derived" in text and f"rate {server['target_qps']:g} queries/s" in text
    assert text.count("  trial ") == sum(not t["final"] for t in server["trials"])


@pytest.mark.parametrize("engine", ["native", "loadgen"])
def test_offline_batches_and_runs_past_the_minimum(engine):
    doc = run("fp32.onnx", Scenario.OFFLINE, engine=engine, batch_size=32)
    k = doc["kpis"]
    assert doc["valid"], doc["invalid_reasons"]
    assert k["query_count"] == 1 and k["sample_count"] >= 512
    assert k["duration_s"] >= 1.0
    assert k["early_stopping_latency_ms"] is None


def test_accuracy_in_multistream_uses_every_image_once():
    doc = run("int8.tflite", Scenario.MULTI_STREAM, Mode.ACCURACY, dataset="fashion-mnist:subset")
    acc = doc["kpis"]["accuracy"]
    assert doc["valid"] and acc["n"] == 1000 and sum(map(sum, acc["confusion_matrix"])) == 1000
    assert acc["ci95"][0] < acc["top1"] < acc["ci95"][1]
    source = "zoo:data/fashion-mnist-t10k-first1000.npz"
    inputs = [{"name": "serving_default_args_0", "shape": [1, 1, 28, 28], "dtype": "int8", "source": "dataset"}]
    assert doc["dataset"] == {"name": "fashion-mnist:subset", "source": source, "samples": 1000, "inputs": inputs}


def test_the_contract_names_a_missing_or_wrong_field_of_a_result():
    doc = run("int8.onnx", Scenario.SINGLE_STREAM)
    del doc["model"]["sha256"]
    with pytest.raises(contract.ProtocolError, match=re.escape("missing required field sha256 - at $.model")):
        contract.convert("result", doc)
    with pytest.raises(contract.ProtocolError, match=re.escape("Expected bool, got str - at $.valid")):
        contract.convert("result", run("int8.onnx", Scenario.SINGLE_STREAM) | {"valid": "no"})
    with pytest.raises(contract.ProtocolError, match=re.escape("edgeperf.result/1")):
        contract.convert("result", {"schema": "edgeperf.result/0"})


def test_non_finite_numbers_are_written_as_null(tmp_path):
    path = tmp_path / "r.json"
    result.write({"schema": contract.RESULT_SCHEMA, "x": math.nan, "y": [math.inf, 1.0]}, path)
    assert json.loads(path.read_text()) == {"schema": contract.RESULT_SCHEMA, "x": None, "y": [None, 1.0]}


def test_runs_are_sized_from_the_fastest_warmup_sample():
    """A warm-up slowed by a busy machine must not leave LoadGen short of queries (a steady state
    faster than the guess runs out before the minimum duration), so the guess is the fastest sample."""
    single = run("int8.tflite", Scenario.SINGLE_STREAM, engine="loadgen")
    derived, effective = single["settings"]["derived"], single["settings"]["effective"]
    assert effective["expected_latency_ns"] == round(derived["warmup_min_latency_ms"] * 1e6)
    assert derived["warmup_min_latency_ms"] < derived["warmup_median_latency_ms"]
    assert single["valid"], single["invalid_reasons"]
    offline = run("int8.tflite", Scenario.OFFLINE, engine="loadgen")
    derived, effective = offline["settings"]["derived"], offline["settings"]["effective"]
    assert effective["offline_expected_qps"] == pytest.approx(bench.OFFLINE_QPS_SLACK * 1e3 / derived["warmup_min_latency_ms"])
    assert offline["valid"], offline["invalid_reasons"]
