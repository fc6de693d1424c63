"""``edgeperf export mlflow|mlperf`` from the command line, on a stored campaign."""

from __future__ import annotations

from agent import bench
from agent.contract import RuntimeOptions
from agent.scenarios.settings import Scenario, for_profile, with_overrides
from tests.cli_harness import edgeperf_here
from tests.stored_results import store_campaign


def test_export_commands(tmp_path):
    db = tmp_path / "c.db"
    settings = with_overrides(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=200)
    doc = bench.run(bench.BenchRequest(model="zoo:fashion-mnist-cnn/int8.onnx", settings=settings, engine="native",
                                       options=RuntimeOptions(threads=1), device_id="pi-a", warmup_runs=2))
    store_campaign(db, "exp", [doc])

    uri = f"file:{tmp_path / 'mlruns'}"
    first = edgeperf_here("export", "mlflow", "exp", "--tracking-uri", uri, "--db", str(db))
    assert first.returncode == 0, first.stderr
    assert "1 runs in experiment 'edgeperf/exp'" in first.stdout and "(1 new" in first.stdout
    again = edgeperf_here("export", "mlflow", "exp", "--tracking-uri", uri, "--db", str(db))
    assert "(0 new, 1 already there)" in again.stdout

    out = tmp_path / "submission"
    folder = edgeperf_here("export", "mlperf", "latest", "-o", str(out), "--db", str(db))
    assert folder.returncode == 0, folder.stderr
    summaries = list(out.rglob("mlperf_log_summary.txt"))
    verdict = "VALID" if doc["valid"] else "INVALID"  # the run's own: a real model's verdict depends on the load
    assert len(summaries) == 1 and f"Result is : {verdict}" in summaries[0].read_text()
    refused = edgeperf_here("export", "mlperf", "latest", "-o", str(out), "--db", str(db))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


def test_report_command_writes_each_format(tmp_path):
    db = tmp_path / "c.db"
    settings = with_overrides(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=200)
    doc = bench.run(bench.BenchRequest(model="zoo:fashion-mnist-cnn/int8.tflite", settings=settings, engine="native",
                                       options=RuntimeOptions(threads=1), device_id="pi-r", warmup_runs=2))
    store_campaign(db, "rep", [doc])
    page = tmp_path / "r.html"
    html = edgeperf_here("report", "rep", "--format", "html", "-o", str(page), "--db", str(db))
    assert html.returncode == 0, html.stderr
    text = page.read_text()
    assert "pi-r" in text and "<svg" in text and "http://" not in text
    md = edgeperf_here("report", "rep", "--format", "md", "--db", str(db))
    assert md.returncode == 0 and "pi-r" in md.stdout and "|" in md.stdout
    bad = edgeperf_here("report", "rep", "--format", "pdf", "--db", str(db))
    assert bad.returncode == 2 and "unknown format 'pdf'" in bad.stderr
