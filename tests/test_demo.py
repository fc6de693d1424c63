"""``edgeperf demo``: broker, artifact server, two agent processes, a campaign, a scorecard — offline."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from agent import contract
from controller.store.database import Store
from tests.cli_harness import edgeperf_here, one_error_line
from tests.test_cli import BLOCKER

DEMO = [sys.executable, "-c", "from controller.cli import main; main()", "demo"]


@pytest.mark.slow  # kept in CI: the one run of the whole system as a newcomer starts it
def test_demo_runs_a_two_agent_campaign_and_writes_every_result(tmp_path):
    out, db = tmp_path / "demo.json", tmp_path / "kept.db"
    proc = subprocess.run([*DEMO, "--json", str(out), "--db", str(db)], capture_output=True, text=True, timeout=300,
                          env=os.environ | {"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    lines = proc.stdout.splitlines()
    steps = lines.index("next (every column: scorecard; plots: report):")
    assert max(len(line) for line in lines[:steps]) <= 80, proc.stdout  # the 14-column tables fit 80 columns
    table = next(i for i, line in enumerate(lines) if line.strip() == "scorecard: demo-1-thread, fashion-mnist-cnn")
    header = lines[table + 2].split("┃")
    assert [h.strip() for h in header[1:-1]] == ["model", "run", "p50 ms", "p99 ms", "samples/s", "top-1", "verdict"]
    assert "│ int8.tflite │" in proc.stdout  # no word is split
    assert "left out at 80 columns: device, n, runtime, P macro, R macro, F1 macro" in " ".join(proc.stdout.split())
    docs = json.loads(out.read_text())
    (campaign,) = Store(db).campaigns()  # --db keeps the database the demo ran on
    assert len(Store(db).results(campaign["id"])) == len(docs) == 18
    steps = lines[steps + 1:]
    assert steps[0].strip() == f"edgeperf scorecard latest --db {db}"
    shown = edgeperf_here(*shlex.split(steps[0])[1:], "--json")  # the first next step runs as printed, on the kept database
    assert shown.returncode == 0, shown.stderr
    card = json.loads(shown.stdout)
    assert card["campaign"] == campaign["id"] and len(card["rows"]) == 18
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
    proc = subprocess.run([*DEMO, "--json", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    (error,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert "the demo measured nothing (18 of 18 jobs failed)" in error, error
    assert "LiteRT and ONNX Runtime" in error and "pip install 'edgeperf[litert,onnx]'" in error, error
    assert json.loads(out.read_text()) == []


@pytest.mark.parametrize(("flag", "name", "fragment"), [
    ("--json", "missing/demo.json", "folder {tmp}/missing does not exist; create it (mkdir -p {tmp}/missing)"),
    ("--json", ".", "is a folder; give a file name in it, e.g. {tmp}/demo.json"),
    ("--db", "a-file/kept.db", "{tmp}/a-file is a file, not a folder; write elsewhere"),
])
def test_an_unwritable_output_is_refused_before_the_demo_runs(tmp_path, flag, name, fragment):
    # The demo runs for minutes; a --json or --db it cannot write must be said before anything starts (it
    # used to end, after the whole run, in a FileNotFoundError traceback). Nothing may run: no broker, no
    # agents, nothing on stdout, in well under the time a demo takes.
    (tmp_path / "a-file").write_text("")
    path = tmp_path / name
    started = time.monotonic()
    proc = subprocess.run([*DEMO, flag, str(path)], capture_output=True, text=True, timeout=60,
                          env=os.environ | {"COLUMNS": "250"})
    one_error_line(proc, 2, f"{flag} {path}", fragment.format(tmp=tmp_path))
    assert proc.stdout == ""
    assert time.monotonic() - started < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended while we looked
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_stops_both_agents_and_removes_the_temporary_folder(tmp_path, signum):
    env = os.environ | {"COLUMNS": "80", "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    demo = subprocess.Popen(DEMO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    agents: set[int] = set()
    try:
        first = demo.stdout.readline()  # printed once the agents are started and the controller is up
        assert first.startswith("broker "), first + demo.stderr.read()
        agents = children(demo.pid)
        assert len(agents) == 2 and len(list(tmp_path.glob("edgeperf-demo-*"))) == 1
        demo.send_signal(signum)
        _, err = demo.communicate(timeout=60)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in agents) and time.monotonic() < deadline:
            time.sleep(0.1)  # stopped and reaped by the demo
        left = {pid for pid in agents if Path(f"/proc/{pid}").exists()}
    finally:
        for pid in (p for p in agents if Path(f"/proc/{p}").exists()):  # a failed run leaves nothing behind
            os.kill(pid, signal.SIGKILL)
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 128 + signum, err
    assert err.strip() == f"stopped by {signum.name}: demo agents stopped, temporary folder removed"
    assert not left, left
    assert list(tmp_path.iterdir()) == []


def test_a_wide_scorecard_folds_to_the_terminal_leaving_out_the_least_telling_columns():
    """The demo's table layout on its own, drawn by rich: 80 columns drop columns in DROP_ORDER and split no word;
    a wide terminal keeps every column."""
    import io

    from rich.console import Console

    from controller.fleet import demo
    from controller.reports.views import View

    headers = ("device", "model", "runtime", "run", "n", "p50 ms", "p90 ms", "p99 ms", "ES ms", "samples/s", "top-1",
               "Δ fp32 pp", "RSS MB", "verdict")
    rows = [("demo-1-thread", "int8.tflite (int8)", "litert 2.3 cpu/xnnpack ×1", "SS acc", "1", "–", "–", "–", "–", "–",
             "88.70 [86.59, 90.52]", "0.20 [-0.61, 1.01]", "–", "VALID"),
            ("demo-1-thread", "fp32.onnx (fp32)", "onnxruntime 1.32 CPU ×1", "Offline perf", "1", "0.0736", "0.0863",
             "6.16", "0.0907", "3,422", "–", "–", "105.8", "VALID")]
    view = View("scorecard: demo-1-thread, fashion-mnist-cnn", headers, rows, frozenset(range(4, 13)), ("a note",))
    for width in (80, 200):
        out = io.StringIO()
        Console(file=out, width=width, soft_wrap=True).print(demo.table(demo.fit(view, width), width), soft_wrap=False)
        text = out.getvalue()
        assert max(len(line) for line in text.splitlines()) <= width, text
        assert "int8.tflite" in text and "Offline" in text and "[86.59," in text, text  # no word split
        if width == 80:
            dropped = " ".join(text.split()).split("left out at 80 columns: ")[1].split(" (")[0].split(", ")
            assert dropped == [h for h in demo.DROP_ORDER if h in headers][:len(dropped)], text
            assert "verdict" in text and "p50 ms" in text, text
        else:
            assert "left out" not in text and all(h in text for h in ("device", "RSS MB", "Δ fp32 pp")), text
