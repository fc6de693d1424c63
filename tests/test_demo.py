"""``edgeperf demo``: broker, artifact server, two agent processes, a campaign, a scorecard — offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

from agent import contract
from tests.test_cli import BLOCKER


def test_demo_runs_a_two_agent_campaign_and_writes_every_result(tmp_path):
    out = tmp_path / "demo.json"
    proc = subprocess.run([sys.executable, "-c", "from controller.cli import main; main()", "demo", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=os.environ | {"COLUMNS": "160"})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    docs = json.loads(out.read_text())
    assert Counter(d["device"]["id"] for d in docs) == {"demo-1-thread": 9, "demo-2-threads": 9}
    assert all(contract.convert("result", d).valid for d in docs), [d["invalid_reasons"] for d in docs]
    threads = {(d["device"]["id"], d["runtime"]["threads"]) for d in docs}
    assert threads == {("demo-1-thread", 1), ("demo-2-threads", 2)}
    runs = Counter((d["model"]["name"], d["scenario"], d["mode"]) for d in docs)
    assert runs[("fashion-mnist-cnn/int8.tflite", "Offline", "performance")] == 2
    for doc in (d for d in docs if d["mode"] == "accuracy"):
        assert doc["kpis"]["accuracy"]["top1"] >= 0.86
    assert "scorecard: demo-1-thread" in proc.stdout and "scorecard: demo-2-threads" in proc.stdout


def test_demo_whose_agents_have_no_runtime_exits_1_with_one_line_naming_the_extras(tmp_path):
    # The agents inherit an environment in which LiteRT and ONNX Runtime cannot be imported, as on a fresh
    # machine without the extras: every job fails on its device, and "0 results" must not pass for success.
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = os.environ | {"COLUMNS": "160", "EDGEPERF_TEST_ABSENT": "ai_edge_litert,tflite_runtime,onnxruntime",
                        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    out = tmp_path / "demo.json"
    proc = subprocess.run([sys.executable, "-c", "from controller.cli import main; main()", "demo", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    (error,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert "the demo measured nothing (18 of 18 jobs failed)" in error, error
    assert "LiteRT and ONNX Runtime" in error and "pip install 'edgeperf[litert,onnx]'" in error, error
    assert json.loads(out.read_text()) == []
