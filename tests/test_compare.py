"""Edge against the datacenter baseline, through the CLI: the baseline runs for real (host CPU here)."""

from __future__ import annotations

import json

import pytest

from agent import bench, zoo
from agent.contract import RuntimeOptions, checked_result
from agent.scenarios.settings import Mode, Scenario, for_profile, with_overrides
from controller.analysis import scorecard
from controller.store.database import Store
from tests.cli_harness import edgeperf, edgeperf_here
from tests.fleet_harness import campaign_file
from tests.test_zoo import reproduces

pytestmark = pytest.mark.slow



def edge_run(variant: str, mode: Mode) -> dict:
    settings = with_overrides(for_profile("smoke", Scenario.SINGLE_STREAM, mode), min_duration_ms=200)
    dataset = "fashion-mnist:subset" if mode == Mode.ACCURACY else "synthetic"
    doc = bench.run(bench.BenchRequest(model=f"zoo:fashion-mnist-cnn/{variant}", settings=settings, engine="native",
                                       options=RuntimeOptions(threads=1), dataset=dataset, device_id="pi-a", warmup_runs=3))
    return doc | {"job": {"key": f"pi-a/fmnist/{variant}/SingleStream/{mode.value}/r0"}}


def test_baseline_run_then_compare(tmp_path):
    db = tmp_path / "c.db"
    spec = campaign_file(tmp_path / "fmnist.yaml", variants=["int8.tflite", "int8.onnx"], scenarios=["SingleStream"],
                         modes=["performance", "accuracy"])
    dry = edgeperf_here("baseline", "run", str(spec), "--db", str(db), "--dry-run")
    assert dry.returncode == 0 and "NOTE: not a GPU baseline" in dry.stdout
    base = edgeperf("baseline", "run", str(spec), "--db", str(db), "--power", "none", "--json")
    assert base.returncode == 0, base.stderr
    assert "NOTE: not a GPU baseline" in base.stderr  # never silently a CPU run
    summary = json.loads(base.stdout)
    assert summary["name"] == "fmnist-baseline" and summary["jobs"] == {"done": 4}

    edge = [edge_run(v, m) for v in ("int8.tflite", "int8.onnx") for m in (Mode.PERFORMANCE, Mode.ACCURACY)]
    store = Store(db)
    campaign = store.create_campaign("fmnist", str(spec), {"retries": 0, "cooldown_s": 0},
                                     [(d["job"]["key"], "pi-a", {}) for d in edge])
    for job, doc in zip(store.jobs(campaign), edge, strict=True):
        store.add_result(*checked_result(doc | {"run_id": store.start_attempt(job)}), "pi-a")
    base_results = store.results(store.campaign("fmnist-baseline")["id"])
    store.close()

    proc = edgeperf_here("compare", campaign, "--baseline", "fmnist-baseline", "--format", "json", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    comps = json.loads(proc.stdout)
    assert len(comps) == 4 and all(c["baseline"] for c in comps)
    base_rows = {r.match_key: r for r in scorecard.build(base_results)}
    for c in comps:
        if c["edge"]["mode"] == "performance":
            key = ("fmnist", c["edge"]["model"].rsplit("/", 1)[1], "SingleStream", "performance")
            expected = c["edge"]["kpis"]["latency_ms.p90"]["value"] / base_rows[key].value("latency_ms.p90")
            assert c["ratios"]["p90 latency ×"] == pytest.approx(expected)
        else:  # the baseline ran int8.onnx for the TFLite variant (its ONNX sibling): the gap is the runtime's
            edge_top1 = c["edge"]["kpis"]["accuracy.top1"]["value"]
            base_top1 = c["baseline"]["kpis"]["accuracy.top1"]["value"]
            assert c["accuracy_delta_pp"] == pytest.approx((edge_top1 - base_top1) * 100)
            assert reproduces(zoo.resolve("zoo:fashion-mnist-cnn/int8.onnx"), base_top1)  # int8.onnx, both variants
    md = edgeperf_here("compare", campaign, "--baseline", "fmnist-baseline", "--format", "md", "--db", str(db))
    assert "| model | run | device |" in md.stdout and "p90 latency ×" in md.stdout
    page = tmp_path / "compare.html"
    html = edgeperf_here("compare", campaign, "--baseline", "fmnist-baseline", "--format", "html", "-o", str(page),
                         "--db", str(db))
    assert html.returncode == 0 and "<table>" in page.read_text() and "http" not in page.read_text()
