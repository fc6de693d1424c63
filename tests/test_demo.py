"""``edgeperf demo``: the zoo's models, offline, on this machine, in one command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from agent import result


def test_demo_runs_the_matrix_and_writes_every_result(tmp_path):
    out = tmp_path / "demo.json"
    proc = subprocess.run([sys.executable, "-c", "from controller.cli import main; main()", "demo", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=os.environ | {"COLUMNS": "160"})
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(out.read_text())
    assert len(docs) == 9
    assert all(result.check(d) == [] and d["valid"] for d in docs), [d["invalid_reasons"] for d in docs]
    runs = {(d["model"]["name"], d["scenario"], d["mode"]) for d in docs}
    assert ("zoo:fashion-mnist-cnn/int8.tflite", "Offline", "performance") in runs
    for doc in (d for d in docs if d["mode"] == "accuracy"):
        assert doc["kpis"]["accuracy"]["top1"] >= 0.86
    assert "edgeperf demo" in proc.stdout and "VALID" in proc.stdout
