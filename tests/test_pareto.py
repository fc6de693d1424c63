"""Accuracy against latency and energy across a model's variants, with each device's Pareto front.

``pareto_front`` is checked on hand-made points. The report is checked on a campaign stored the
way a campaign stores it: real benchmark runs of the zoo models (``test_report``'s document
builder) on two "devices", with ``edgeperf quantize`` provenance added to the int8 files and
their latencies and accuracies set by construction (``test_scorecard``'s ``scaled`` scales a
whole run, histogram included), so which variants are on each device's front is known before the
report is built.
"""

from __future__ import annotations

import copy
import html
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from agent.contract import Result
from agent.energy_meter import PowerPlan
from agent.scenarios.settings import Mode, Scenario
from controller.analysis.scorecard import build as scorecard_rows
from controller.reports import campaign_report as report
from controller.reports import plots
from controller.store.database import Store
from tests.stored_results import store_campaign
from tests.test_report import _run
from tests.test_report import typed as _typed
from tests.test_scorecard import scaled

SS = Scenario.SINGLE_STREAM
VARIANTS = ("fp32.onnx", "int8.onnx", "int8.tflite")  # fp32.onnx is the source of both int8 files
# p90 latency (ms) per device and variant, by construction
P90 = {"edge-a": {"fp32.onnx": 3.0, "int8.onnx": 1.0, "int8.tflite": 2.0},
       "edge-b": {"fp32.onnx": 0.9, "int8.onnx": 0.5, "int8.tflite": 0.4}}
# what edgeperf quantize measured on the host, paired on the same samples: (source top-1, variant top-1)
HOST = {"int8.onnx": (0.91, 0.88), "int8.tflite": (0.91, 0.87)}
# accuracy runs on edge-a only (correct of 1000), not of int8.tflite: its top-1 and all of edge-b's come from the host
DEVICE_CORRECT = {"fp32.onnx": 900, "int8.onnx": 885}
# edge-a: fp32 (3.0, 90.0), int8.onnx (1.0, 88.5), int8.tflite (2.0, 87.0 host): tflite is slower and less accurate than
# int8.onnx. edge-b: fp32 (0.9, 91.0 host), int8.onnx (0.5, 88.0 host), int8.tflite (0.4, 87.0 host): each faster one is
# less accurate, all on the front. Pooled, edge-b's fp32 would beat every edge-a point, so edge-a's front shows per device.
FRONT = {("edge-a", "fp32.onnx"), ("edge-a", "int8.onnx"),
         ("edge-b", "fp32.onnx"), ("edge-b", "int8.onnx [INVALID]"), ("edge-b", "int8.tflite")}
HOST_MARKED = {("edge-a", "int8.tflite"), ("edge-b", "fp32.onnx"), ("edge-b", "int8.onnx [INVALID]"), ("edge-b", "int8.tflite")}
LATENCY_TITLE = "top-1 accuracy vs p90 latency — fashion-mnist-cnn/fp32.onnx"
ENERGY_TITLE = "top-1 accuracy vs energy per inference — fashion-mnist-cnn/fp32.onnx"


# ---- pareto_front on hand-made points -------------------------------------------------------------------
def test_dominated_points_are_off_the_front():
    # (latency, accuracy): (3, 92) is slower and less accurate than (2, 95); (2, 80) than (1, 90)
    assert plots.pareto_front([(1.0, 90.0), (2.0, 95.0), (3.0, 92.0), (2.0, 80.0)]) == [0, 1]
    assert plots.pareto_front([(1.0, 90.0), (1.0, 85.0)]) == [0]  # as fast, less accurate
    assert plots.pareto_front([(1.0, 90.0), (2.0, 90.0)]) == [0]  # as accurate, slower


def test_ties_single_points_and_all_on_the_front():
    assert plots.pareto_front([(1.0, 90.0), (2.0, 80.0), (1.0, 90.0)]) == [0, 2]  # equal points are both on it
    assert plots.pareto_front([(5.0, 5.0), (5.0, 5.0), (5.0, 5.0)]) == [0, 1, 2]
    assert plots.pareto_front([(4.2, 0.5)]) == [0]
    assert plots.pareto_front([]) == []
    assert plots.pareto_front([(1.0, 80.0), (2.0, 85.0), (3.0, 90.0)]) == [0, 1, 2]  # each faster one less accurate


def test_directions_and_non_finite_points():
    pts = [(1.0, 1.0), (2.0, 2.0)]
    assert plots.pareto_front(pts) == [0, 1]
    assert plots.pareto_front(pts, minimise_x=False) == [1]
    assert plots.pareto_front(pts, maximise_y=False) == [0]
    assert plots.pareto_front(pts, minimise_x=False, maximise_y=False) == [0, 1]
    # a NaN or infinite point is never on the front and hides nothing behind it
    assert plots.pareto_front([(math.nan, 99.0), (0.5, math.inf), (1.0, 80.0)]) == [2]


# ---- the plot on its own ------------------------------------------------------------------------------------
def _points(svg: str) -> dict[tuple[str, str], ET.Element]:
    """(series, label) -> each point's <g> of a Pareto scatter."""
    root = ET.fromstring(svg)
    out = {}
    for g in root.iter("g"):
        if g.get("data-series") is not None:
            out[(g.get("data-series"), g.find("title").text.split(": ")[0])] = g
    return out


def _xy(point: ET.Element) -> tuple[float, float, str]:
    """(x, y, note) from a point's tooltip: ``label: x, y (note)``."""
    x, y, note = re.fullmatch(r"[^:]+: ([\d.,]+), ([\d.,]+) \(([^)]*)\).*", point.find("title").text).groups()
    return float(x.replace(",", "")), float(y.replace(",", "")), note


def _front(svg: str) -> set[tuple[str, str]]:
    return {key for key, g in _points(svg).items() if g.get("class") == "front"}


def test_scatter_draws_a_front_per_series_never_pooled():
    pts = [("a", 1.0, 80.0, "slow"), ("b", 2.0, 85.0, "slow"), ("c", 3.0, 84.0, "slow"),
           ("a", 0.1, 90.0, "fast"), ("b", 0.2, 95.0, "fast"), ("lone", 9.0, 50.0, "one")]
    svg = plots.scatter(pts, "p90 (ms)", "top-1 (%)", "<front & back>", pareto=True, pareto_label="front <legend>")
    root = ET.fromstring(svg)
    assert root.get("aria-label") == "<front & back>" and "&lt;front &amp; back&gt;" in svg and "xmlns" not in svg
    assert _front(svg) == {("slow", "a"), ("slow", "b"), ("fast", "a"), ("fast", "b"), ("one", "lone")}
    paths = [p for g in root.iter("g") if g.get("class") == "pareto" for p in g.iter("path")]
    assert len(paths) == 2  # a front of one point draws no line
    slow = next(p for p in paths if p.find("title").text == "slow: Pareto front")
    assert re.fullmatch(r"M[\d.]+ [\d.]+ H[\d.]+ V[\d.]+", slow.get("d"))  # a step: across to the next point, then up
    assert "front <legend>" in ["".join(t.itertext()) for t in root.iter("text")]
    plain = plots.scatter(pts, "x", "y", "no front asked")
    assert "data-series" not in plain and 'class="pareto"' not in plain and 'class="front"' not in plain


def test_dashed_points_are_marked_and_explained():
    svg = plots.scatter([("m", 1.0, 2.0, "d"), ("h", 2.0, 3.0, "d", False, True, "host")], "x", "y", "t", pareto=True,
                        dashed_label="dashed: from the host")
    points = _points(svg)
    assert points[("d", "h")].find("circle").get("stroke-dasharray") and "(host)" in points[("d", "h")].find("title").text
    assert points[("d", "m")].find("circle").get("stroke-dasharray") is None
    assert "dashed: from the host" in svg


# ---- a report from a stored campaign ------------------------------------------------------------------------
def _provenance(source: dict[str, Any], variant: str) -> dict[str, Any]:
    source_top1, variant_top1 = HOST[variant]
    delta = (variant_top1 - source_top1) * 100
    return {"schema": "edgeperf.quantize/1", "source_name": source["model"]["name"],
            "source_sha256": source["model"]["sha256"], "source_format": "onnx", "format": variant.rsplit(".", 1)[1],
            "precision": "int8", "method": "static", "float_operators": ["Softmax"],
            "accuracy": {"dataset": "fashion-mnist:subset", "n": 1000, "samples_sha256": "a" * 64,
                         "source_top1": source_top1, "variant_top1": variant_top1, "delta_pp": delta,
                         "ci95_pp": [delta - 1.5, delta + 1.5], "method": "paired Newcombe", "source_only": 40,
                         "variant_only": 10}}


def _top1(doc: dict[str, Any], correct: int) -> dict[str, Any]:
    """An accuracy run's document with ``correct`` of its samples right (no per-sample record)."""
    out = copy.deepcopy(doc)
    acc = out["kpis"]["accuracy"]
    acc.update(top1=correct / acc["n"], correct=correct, correct_bits=None, samples_sha256=None,
               ci95=[correct / acc["n"] - 0.02, correct / acc["n"] + 0.02])
    return out


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> dict[str, Any]:
    """Performance runs of the three variants on both devices (edge-a's with estimated energy),
    accuracy runs of two of them on edge-a; latencies, accuracies and provenance by construction."""
    logs = tmp_path_factory.mktemp("logs")
    perf, acc = [], []
    for device, p90 in P90.items():
        for variant in VARIANTS:
            power = PowerPlan("estimate", idle_s=0.2) if device == "edge-a" else None
            doc = _run(logs, device, variant, SS, power=power)
            perf.append(scaled(doc, p90[variant] / doc["kpis"]["latency_ms"]["p90"]))
    for variant, correct in DEVICE_CORRECT.items():
        acc.append(_top1(_run(logs, "edge-a", variant, SS, Mode.ACCURACY, dataset="fashion-mnist:subset"), correct))
    source = perf[0]
    for doc in perf + acc:
        variant = doc["model"]["name"].rsplit("/", 1)[1]
        if variant in HOST:
            doc["model"]["provenance"] = _provenance(source, variant)
    bad = next(d for d in perf if d["device"]["id"] == "edge-b" and d["model"]["name"].endswith("int8.onnx"))
    bad["valid"], bad["invalid_reasons"] = False, ["min_duration: ran 0.2 s of the required 60 s"]
    return {"perf": perf, "acc": acc}


def _stored(tmp_path: Path, docs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Result]]:
    """The documents as a stored campaign, read back as a report reads it."""
    db = tmp_path / "c.db"
    ref = store_campaign(db, "pareto", docs)
    with Store(db) as store:
        return store.campaign(ref), store.results(ref)


def _svg_titled(page: str, title: str) -> str:
    (svg,) = [s for s in re.findall(r"<svg\b[^>]*>.*?</svg>", page, flags=re.S) if f'aria-label="{title}"' in s]
    return svg


def test_each_devices_front_is_marked_and_host_accuracy_is_dashed(docs, tmp_path):
    campaign, results = _stored(tmp_path, docs["perf"] + docs["acc"])
    assert sum(r.model.provenance is not None for r in results) == 5  # the int8 runs carry provenance, fp32 none
    page = report.build_html(campaign, results)
    svg = _svg_titled(page, html.escape(LATENCY_TITLE))
    points = _points(svg)
    expected = {(d, v) for d in P90 for v in VARIANTS} - {("edge-b", "int8.onnx")} | {("edge-b", "int8.onnx [INVALID]")}
    assert set(points) == expected
    assert _front(svg) == FRONT
    dashed = {key for key, g in points.items() if next(iter(g.iter("circle")), None) is not None
              and next(g.iter("circle")).get("stroke-dasharray")}
    assert dashed == HOST_MARKED
    # the source's top-1 on edge-b is the host's, from a variant's paired measurement; edge-a's are the device's own
    assert _xy(points[("edge-b", "fp32.onnx")]) == (pytest.approx(0.9), 91.0,
                                                     "top-1 on the host: fashion-mnist:subset, n=1000, paired with a variant")
    assert _xy(points[("edge-a", "int8.onnx")]) == (pytest.approx(1.0), 88.5, "top-1 on edge-a")
    assert _xy(points[("edge-a", "int8.tflite")]) == (pytest.approx(2.0), 87.0, "top-1 on the host: fashion-mnist:subset, n=1000")
    assert report.PARETO_LATENCY in svg and report.HOST_ACCURACY in svg
    assert ("4 of 6 point(s) use the top-1 that edgeperf quantize measured on the host (fashion-mnist:subset, n=1000; "
            "fashion-mnist:subset, n=1000, paired with a variant) because the device has no accuracy run") in page
    assert "http://" not in page and "https://" not in page


def test_energy_figure_marks_estimates_and_its_own_front(docs, tmp_path):
    campaign, results = _stored(tmp_path, docs["perf"] + docs["acc"])
    page = report.build_html(campaign, results)
    svg = _svg_titled(page, html.escape(ENERGY_TITLE))
    points = _points(svg)
    assert {d for d, _ in points} == {"edge-a"}  # only edge-a's runs measured (estimated) energy
    assert all(next(g.iter("circle")).get("fill") == "#ffffff" for g in points.values())  # estimated: hollow
    rows = {r.model.rsplit("/", 1)[1]: r for r in scorecard_rows(results) if r.device == "edge-a" and r.mode == "performance"}
    energy = {v: rows[v].value("energy.energy_per_inference_mj") for v in VARIANTS}
    top1 = {"fp32.onnx": 90.0, "int8.onnx": 88.5, "int8.tflite": 87.0}
    on = plots.pareto_front([(energy[v], top1[v]) for v in VARIANTS])
    assert _front(svg) == {("edge-a", VARIANTS[i]) for i in on}
    assert report.PARETO_ENERGY in svg and "3 point(s) use estimated energy (hollow markers)" in page


def test_figures_are_omitted_with_their_reason_without_accuracy(docs, tmp_path):
    bare = copy.deepcopy(docs["perf"])
    for doc in bare:
        if prov := doc["model"].get("provenance"):
            prov["accuracy"], prov["accuracy_note"] = None, "no labelled dataset given to edgeperf quantize"
    campaign, results = _stored(tmp_path, bare)
    page = report.build_html(campaign, results)
    assert "top-1 accuracy vs" not in "".join(re.findall(r'aria-label="[^"]*"', page))
    assert ("top-1 accuracy vs p90 latency omitted: no variant has a top-1 accuracy: none of the 6 row(s) with a p90 "
            "latency has an accuracy run of its variant on its device, nor an accuracy measured by edgeperf quantize") in page
    assert '<p class="omitted">top-1 accuracy vs energy per inference omitted: no variant has a top-1 accuracy' in page
    no_energy = report.build_html(campaign, [r for r in results if r.kpis.energy is None])
    assert "top-1 accuracy vs energy per inference omitted: no run measured energy" in no_energy


def test_a_left_out_variant_is_counted(docs, tmp_path):
    """edge-b's int8.tflite without any accuracy (no device run, provenance without one) is left out and counted."""
    perf = copy.deepcopy(docs["perf"])
    for doc in perf:
        if doc["model"]["name"].endswith("int8.tflite"):
            doc["model"]["provenance"]["accuracy"] = None
    campaign, results = _stored(tmp_path, perf + docs["acc"])
    page = report.build_html(campaign, results)
    svg = _svg_titled(page, html.escape(LATENCY_TITLE))
    assert ("edge-b", "int8.tflite") not in _points(svg) and ("edge-a", "int8.tflite") not in _points(svg)
    assert "2 row(s) without any top-1 accuracy left out" in page


def test_variants_group_by_source_or_by_family(docs):
    typed = [_typed(d) for d in docs["perf"] + docs["acc"]]
    groups = report.variant_groups(scorecard_rows(typed))
    assert list(groups) == ["fashion-mnist-cnn/fp32.onnx"] and len(groups["fashion-mnist-cnn/fp32.onnx"]) == 8
    plain = [_typed({**d, "model": {k: v for k, v in d["model"].items() if k != "provenance"}}) for d in docs["perf"]]
    assert list(report.variant_groups(scorecard_rows(plain))) == ["fashion-mnist-cnn"]  # no provenance: by family
    # a chain: the fp32 file exported from a PyTorch source (provenance, precision fp32), the int8 files made from it
    chained = copy.deepcopy(docs["perf"])
    torch_sha = "b" * 64
    for doc in chained:
        if doc["model"]["name"].endswith("fp32.onnx"):
            doc["model"]["provenance"] = {"schema": "edgeperf.quantize/1", "source_name": "cnn.pt", "source_sha256": torch_sha,
                                          "source_format": "pytorch", "format": "onnx", "precision": "fp32",
                                          "method": "torch.onnx.export"}
    groups = report.variant_groups(scorecard_rows([_typed(d) for d in chained]))
    assert list(groups) == ["cnn.pt"] and len(groups["cnn.pt"]) == 6
