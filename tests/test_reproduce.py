"""A result records what it needs to be run again, and ``bench --from`` runs it again."""

from __future__ import annotations

import json
import shlex
import shutil

import msgspec
import pytest

from agent import bench, contract, threads
from agent.contract import RuntimeOptions
from agent.jobs import request_from_job, settings_for
from controller.fleet import campaign, scheduler
from tests.conftest import multi_input_onnx
from tests.test_cli import agent, assert_one_line_error
from tests.test_inputs import vad_like_onnx

FAST = ("--profile", "smoke", "--engine", "native", "--warmup", "2")


@pytest.fixture
def recorded(tmp_path):
    """A run of a two-input model with sized dimensions, a fixed input, overrides and default threads."""
    model = multi_input_onnx(tmp_path / "two.onnx")
    out = tmp_path / "first.json"
    proc = agent("bench", str(model), *FAST, "--shape", "features=1x5x4", "--shape", "ids=1x5", "--input", "ids=3",
                 "--input", "features=-1:1", "--min-duration", "0.25", "--max-queries", "500", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    return model, out, json.loads(out.read_text())


def test_a_result_records_shapes_inputs_threads_and_its_command_line(recorded):
    model, _, doc = recorded
    contract.convert("result", doc)
    assert {i["name"]: i["shape"] for i in doc["dataset"]["inputs"]} == {"features": [1, 5, 4], "ids": [1, 5]}
    assert doc["runtime"]["threads"] == threads.default_threads() and doc["runtime"]["threads_rule"].startswith("default")
    argv = doc["reproduce"]["argv"]
    assert shlex.split(doc["reproduce"]["command"]) == ["edgeperf-agent", "bench", *argv]
    line = " ".join(argv)
    for part in (str(model), "--shape features=1x5x4", "--input ids=3", "--input features=-1:1", "--min-duration 0.25",
                 "--max-queries 500", f"--threads {threads.default_threads()}", "--engine native", "--profile smoke"):
        assert part in line


def test_from_runs_the_same_workload_again(recorded, tmp_path):
    _, first, doc = recorded
    again = tmp_path / "again.json"
    proc = agent("bench", "--from", str(first), "--json", str(again))
    assert proc.returncode == 0, proc.stderr
    redo = json.loads(again.read_text())
    assert redo["run_id"] != doc["run_id"]
    for key in ("reproduce", "dataset"):
        assert redo[key] == doc[key]
    assert redo["settings"]["requested"] == doc["settings"]["requested"]
    assert redo["model"]["sha256"] == doc["model"]["sha256"] and redo["runtime"]["threads"] == doc["runtime"]["threads"]


def test_from_refuses_a_model_file_that_changed(recorded):
    model, first, _ = recorded
    model.write_bytes(model.read_bytes() + b"\0")
    assert_one_line_error(agent("bench", "--from", str(first)), "has sha256", "the result measured")


def test_from_refuses_flags_that_would_change_the_workload(recorded):
    _, first, _ = recorded
    assert_one_line_error(agent("bench", "--from", str(first), "--threads", "1"), "--threads cannot be given with it")
    assert_one_line_error(agent("bench", "zoo:fashion-mnist-cnn/int8.onnx", "--from", str(first)), "a model cannot be given")


def test_from_needs_a_result_with_a_reproduce_line(tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema": "edgeperf.result/1", "model": {"sha256": "0" * 64}}))
    assert_one_line_error(agent("bench", "--from", str(old)), "not a result document with a reproduce line")
    assert_one_line_error(agent("bench"), "bench needs a model")


@pytest.mark.parametrize("model", ["int8.tflite", "int8.onnx"])
def test_default_threads_mean_the_same_number_for_every_runtime(model):
    settings = settings_for("smoke", "SingleStream", "performance", contract.RunLength(max_queries=64))
    doc = bench.run(bench.BenchRequest(model=f"zoo:fashion-mnist-cnn/{model}", settings=settings, engine="native",
                                       warmup_runs=1))
    assert doc["runtime"]["threads"] == threads.default_threads()
    assert f"--threads {threads.default_threads()}" in doc["reproduce"]["command"]


def test_a_campaign_variant_inputs_reach_the_agent_run(tmp_path):
    """``inputs:`` in a campaign travels in the job and decides the branch the agent's run takes."""
    model = vad_like_onnx(tmp_path / "vad.onnx")
    text = (f"name: vad\nprofile: smoke\nengine: native\noverrides: {{max_queries: 64}}\nmodels:\n  - name: vad\n"
            f"    variants:\n      - artifact: {model}\n        threads: 1\n        inputs: {{sr: 16000, x: '-1:1'}}\n")
    c = campaign.loads(text, "vad.yaml", tmp_path)
    assert c.models[0].variants[0].options.inputs == {"sr": "16000", "x": "-1:1"}
    spec = campaign.expand(c, [("pi-01", [])])[0]
    artifact = {"url": "http://lab/vad.onnx", "sha256": "0" * 64, "size": 1, "name": "vad.onnx"}
    sent = scheduler.job_message(spec, "r1", 1, "c1", artifact, "ctl")
    job = contract.decode_body("job", msgspec.json.encode(sent))  # as the agent reads it off the wire
    cached = tmp_path / "cache" / "vad.onnx"
    cached.parent.mkdir()
    shutil.copy(model, cached)
    doc = bench.run(request_from_job(job, cached, tmp_path / "logs", "pi-01"))
    assert {i["name"]: i["source"] for i in doc["dataset"]["inputs"]} == {"x": "range", "sr": "constant"}
    assert "--input sr=16000" in doc["reproduce"]["command"]


@pytest.mark.parametrize("yaml_value, fragment", [("fast", "not a finite number"), ("'2:1'", "LOW 2 is above HIGH 1"),
                                                  ("[1, 2]", "expected VALUE, LOW:HIGH or PATH.npy")])
def test_campaign_inputs_mistakes_name_file_line_and_key(tmp_path, yaml_value, fragment):
    text = (f"name: c\nmodels:\n  - name: m\n    variants:\n      - artifact: zoo:fashion-mnist-cnn/int8.onnx\n"
            f"        inputs: {{x: {yaml_value}}}\n")
    with pytest.raises(campaign.CampaignError, match=r"c\.yaml:6:.*inputs\.x") as info:
        campaign.loads(text, "c.yaml", tmp_path)
    assert fragment in str(info.value)


def test_runtime_options_carry_inputs_through_the_contract():
    options = contract.build(RuntimeOptions, {"inputs": {"sr": "16000"}})
    job = contract.convert("job", {"run_id": "r", "artifact": {"url": "u", "sha256": "0" * 64, "size": 1, "name": "m"},
                                   "scenario": "SingleStream", "mode": "performance", "profile": "smoke",
                                   "dataset": "synthetic", "controller": "c", "options": options})
    assert job.options.inputs == {"sr": "16000"}


@pytest.mark.parametrize("run", [contract.RunLength(min_duration_s=1.001, max_duration_s=7.001, target_qps=33.3),
                                 contract.RunLength(min_queries=10, max_queries=999, target_latency_ms=12.5, batch_size=4)])
def test_the_recorded_run_length_flags_rebuild_the_same_settings(run):
    """Seconds become milliseconds and back without drifting a millisecond (int(1.001 * 1000) is 1000)."""
    from agent import cli, reproduce

    settings = settings_for("quick", "Server", "performance", run)
    args = reproduce.argv("m.onnx", "onnxruntime", "native", "synthetic", 20, settings, RuntimeOptions(threads=1), (), [])
    parsed = cli.build_parser().parse_args(["bench", *args])
    again = contract.build(contract.RunLength, {
        "min_duration_s": parsed.min_duration, "max_duration_s": parsed.max_duration, "min_queries": parsed.min_queries,
        "max_queries": parsed.max_queries, "target_qps": parsed.target_qps, "target_latency_ms": parsed.target_latency_ms,
        "batch_size": parsed.batch_size})
    assert settings_for(parsed.profile, parsed.scenario, parsed.mode, again) == settings
