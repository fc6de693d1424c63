"""``edgeperf-agent`` as a user runs it: one clear error line and exit 2 for each mistake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent import contract, zoo

BLOCKER = textwrap.dedent(
    """
    # Makes the packages named in EDGEPERF_TEST_ABSENT unimportable, as on a device without them.
    import os, sys
    ABSENT = set(filter(None, os.environ.get("EDGEPERF_TEST_ABSENT", "").split(",")))
    class _Absent:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ABSENT:
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None
    sys.meta_path.insert(0, _Absent())
    """
)


def agent(*args: str, absent: tuple[str, ...] = (), tmp_path: Path | None = None, timeout: float = 120):
    env = dict(os.environ)
    if absent:
        assert tmp_path is not None
        (tmp_path / "sitecustomize.py").write_text(BLOCKER)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
        env["EDGEPERF_TEST_ABSENT"] = ",".join(absent)
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, env=env, timeout=timeout)


def assert_one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0]


def test_missing_model_file():
    assert_one_line_error(agent("bench", "/nonexistent/model.tflite"), "not found")


@pytest.mark.parametrize(("name", "kind"), [("int8.tflite", "TFLite"), ("fp32.onnx", "ONNX")])
def test_truncated_model(tmp_path, zoo_dir, name, kind):
    cut = tmp_path / name
    cut.write_bytes((zoo_dir / name).read_bytes()[:3000])
    assert_one_line_error(agent("bench", str(cut)), f"not a loadable {kind} model", "re-copy")


def test_unknown_extension(tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(b"\x80\x02not really torch")
    assert_one_line_error(agent("bench", str(model)), "unknown model type '.pt'", ".tflite")


@pytest.mark.parametrize(
    ("model", "absent", "extra"),
    [
        ("zoo:fashion-mnist-cnn/int8.tflite", ("ai_edge_litert", "tflite_runtime"), "edgeperf[litert]"),
        ("zoo:fashion-mnist-cnn/int8.onnx", ("onnxruntime",), "edgeperf[onnx]"),
    ],
)
def test_runtime_extra_not_installed_names_the_extra(tmp_path, model, absent, extra):
    assert_one_line_error(agent("bench", model, absent=absent, tmp_path=tmp_path), extra)


def test_loadgen_engine_without_loadgen_names_the_extra(tmp_path):
    proc = agent("bench", "zoo:fashion-mnist-cnn/int8.onnx", "--engine", "loadgen", "--profile", "smoke",
                 absent=("mlperf_loadgen",), tmp_path=tmp_path)
    assert_one_line_error(proc, "edgeperf[loadgen]", "--engine native")


def test_auto_engine_falls_back_to_native_without_loadgen(tmp_path):
    out = tmp_path / "r.json"
    proc = agent("bench", "zoo:fashion-mnist-cnn/int8.onnx", "--profile", "smoke", "--threads", "1", "--json", str(out),
                 absent=("mlperf_loadgen",), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["engine"] == "native"


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (("--scenario", "Batch"), "unknown scenario 'Batch'"),
        (("--profile", "fast"), "unknown profile 'fast'"),
        (("--mode", "fastest"), "unknown mode"),
        (("--engine", "tensorrt"), "unknown engine"),
        (("--threads", "two"), "invalid int value"),
        (("--shape", "image=1xAx28"), "bad --shape"),
        # job options go through the contract's bounds, reported under the flag that set them
        (("--threads", "0"), "--threads: expected int >= 1"),
        (("--threads", "100000"), "--threads: expected int <= 1024"),
        (("--target-qps", "-5"), "--target-qps: expected float > 0.0"),
        (("--batch-size", "0"), "--batch-size: expected int >= 1"),
        (("--optimization", "fast"), "--optimization: invalid enum value 'fast'"),
        (("--min-queries", "100", "--max-queries", "10"), "--max-queries (10) is below --min-queries (100)"),
    ],
)
def test_bad_settings(flags, fragment):
    assert_one_line_error(agent("bench", "zoo:fashion-mnist-cnn/int8.onnx", *flags), fragment)


@pytest.mark.parametrize(("argv", "flag"), [
    (("bench", "zoo:fashion-mnist-cnn/int8.onnx", "--profile", "smoke", "--log-dir"), "--log-dir"),
    (("run", "--broker", "mqtt://127.0.0.1:1", "--device-id", "pi-01", "--data-dir"), "--data-dir"),
])
def test_a_folder_that_cannot_be_made_is_one_line_before_the_agent_starts(tmp_path, argv, flag):
    # Both folders are made when missing; a file on the way used to surface as a NotADirectoryError
    # traceback once the run (or the agent) had started. Now nothing runs: no result text on stdout.
    (tmp_path / "a-file").write_text("kept")
    under = tmp_path / "a-file" / "logs"
    proc = agent(*argv, str(under))
    assert_one_line_error(proc, f"{flag} {under} is under {tmp_path / 'a-file'}, which is a file; give a folder")
    assert proc.stdout == ""
    assert_one_line_error(agent(*argv, str(tmp_path / "a-file")), f"{flag} {tmp_path / 'a-file'} is a file; give a folder")
    assert (tmp_path / "a-file").read_text() == "kept"


def test_dataset_that_does_not_fit_the_model(two_input_model):
    shapes = ("--shape", "features=1x8x4", "--shape", "ids=1x8")
    proc = agent("bench", str(two_input_model), "--dataset", "fashion-mnist:subset", *shapes)
    assert_one_line_error(proc, "model has 2 inputs", "--dataset synthetic")


def test_accuracy_mode_on_unlabelled_data():
    proc = agent("bench", "zoo:fashion-mnist-cnn/int8.onnx", "--mode", "accuracy", "--dataset", "synthetic")
    assert_one_line_error(proc, "needs a labelled dataset")


@pytest.mark.skipif(sys.platform == "darwin", reason="platform: on macOS Core ML predicts; this is the Linux error")
def test_coreml_on_linux():
    assert_one_line_error(agent("bench", "zoo:fashion-mnist-cnn/int8.mlpackage"), "Core ML needs macOS")


def test_bench_writes_a_complete_result_document(tmp_path):
    out = tmp_path / "result.json"
    proc = agent("bench", "zoo:fashion-mnist-cnn/int8.tflite", "--scenario", "SingleStream", "--profile", "smoke",
                 "--threads", "1", "--json", str(out), "--log-dir", str(tmp_path / "logs"), "--device-id", "bench-01")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert contract.convert("result", doc).run_id == doc["run_id"]  # it meets the contract
    assert doc["device"]["id"] == "bench-01" and doc["device"]["facts"]["os"]
    assert doc["model"]["sha256"] == zoo.resolve("zoo:fashion-mnist-cnn/int8.tflite").facts["sha256"]
    assert doc["model"]["precision"] == "int8" and doc["runtime"]["name"] == "litert"
    k = doc["kpis"]
    assert k["latency_histogram"]["n"] == k["sample_count"] == k["query_count"] >= 64
    assert k["latency_ms"]["min"] <= k["latency_ms"]["p50"] <= k["latency_ms"]["p90"] <= k["latency_ms"]["max"]
    assert k["early_stopping_latency_ms"] >= k["latency_ms"]["p90"]
    assert k["load_time_ms"] > 0 and k["first_inference_ms"] > 0 and k["memory"]["peak_rss_mb"] > 10
    assert k["model_size_mb"] == pytest.approx(doc["model"]["size_bytes"] / 2**20)
    assert "VALID" in proc.stdout and "p90" in proc.stdout
    if doc["engine"] == "loadgen":
        assert (Path(doc["logs"]["dir"]) / "mlperf_log_summary.txt").exists()


def test_strict_exits_4_on_an_invalid_run(tmp_path):
    proc = agent("bench", "zoo:fashion-mnist-cnn/int8.onnx", "--profile", "smoke", "--min-queries", "10",
                 "--max-queries", "10", "--strict", "--engine", "native")
    assert proc.returncode == 4, proc.stderr
    assert "INVALID" in proc.stdout and "early_stopping" in proc.stdout


def test_info_reports_facts_and_installed_runtimes():
    proc = agent("info", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["facts"]["os"] and info["facts"]["cpu_count_logical"] >= 1
    assert info["installed"]["litert"].startswith("ai-edge-litert")
    assert info["installed"]["onnxruntime"].startswith("onnxruntime")


def test_zoo_lists_every_manifest_file():
    proc = agent("zoo")
    assert proc.returncode == 0
    for entry in zoo.entries():
        assert f"zoo:{entry.name}" in proc.stdout
