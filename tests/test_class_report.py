"""Precision, recall and F1 in the views, the CSV, JSON, Markdown and HTML reports, and the
confusion-matrix heatmap, from real accuracy runs of the zoo's Fashion-MNIST models (as
``tests/test_report.py``, whose headless-Chromium check renders a report with these heatmaps).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from agent import bench, contract
from agent.accuracy import classification_metrics
from agent.contract import Result, RuntimeOptions
from agent.scenarios.settings import Mode, Scenario, for_profile
from controller.analysis import scorecard
from controller.reports import campaign_report as report
from controller.reports import class_report, views

CAMPAIGN = {"id": "c1a55e5", "name": "classes", "state": "done", "kind": "fleet"}


def _accuracy_run(model: str, device: str) -> dict:
    settings = for_profile("smoke", Scenario.SINGLE_STREAM, Mode.ACCURACY)
    doc = bench.run(bench.BenchRequest(model=f"zoo:fashion-mnist-cnn/{model}", settings=settings, engine="native",
                                       options=RuntimeOptions(threads=1), dataset="fashion-mnist:subset", warmup_runs=1,
                                       device_id=device))
    doc["job"] = {"campaign": CAMPAIGN["id"], "key": f"{device}/fashion-mnist-cnn/{model}/SingleStream/accuracy/r0", "attempt": 1}
    return doc


def _many_classes(doc: dict) -> dict:
    """The run's document scored as if over 25 classes (a larger label set than a heatmap or a table shows)."""
    out = copy.deepcopy(doc)
    out["run_id"] = "m" + out["run_id"][1:]
    out["device"]["id"] = "pi-many"
    rng = np.random.default_rng(3)
    labels = np.arange(1000) % 25
    predicted = np.where(rng.random(1000) < 0.8, labels, rng.integers(0, 25, 1000))
    scored = classification_metrics(predicted, labels, 25)
    out["kpis"]["accuracy"] = scored | {"samples_sha256": "a" * 64, "postprocess": doc["kpis"]["accuracy"]["postprocess"]}
    out["job"]["key"] = "pi-many" + out["job"]["key"][out["job"]["key"].index("/"):]
    return out


@pytest.fixture(scope="module")
def results() -> list[Result]:
    docs = [_accuracy_run("int8.tflite", "pi-a"), _accuracy_run("fp32.onnx", "pi-a")]
    docs.append(_many_classes(docs[0]))
    return [contract.convert("result", d) for d in docs]


def test_scorecard_view_shows_macro_columns_in_percent(results):
    rows = scorecard.build(results)
    view = views.scorecard(rows, "t")
    for header in ("P macro", "R macro", "F1 macro"):
        assert header in view.headers and view.headers.index(header) in view.numeric
    by_label = {(r[0], r[1]): r for r in view.rows}
    for row in rows:
        line = by_label[(row.device, f"{row.model.removeprefix('zoo:')} ({row.precision})")]
        f1 = row.cells["accuracy.f1_macro"]
        assert line[view.headers.index("F1 macro")] == views.cell(f1, 100) and "[" in views.cell(f1, 100)


def test_per_class_view_names_classes_and_limits_rows(results):
    rows = scorecard.build(results)
    view = views.per_class(rows)
    assert view.headers[:7] == ("device", "model", "runtime", "run", "n", "verdict", "class")
    lines = [r for r in view.rows if r[0] == "pi-a"]
    assert len(lines) == 20 and {r[6] for r in lines} >= {"7 Sneaker", "9 Ankle boot", "0 T-shirt/top"}
    assert len([r for r in view.rows if r[0] == "pi-many"]) == 25 and "24" in {r[6] for r in view.rows}
    limited = views.per_class(rows, limit=20)
    assert len([r for r in limited.rows if r[0] == "pi-many"]) == 20
    assert any("5 of 25 classes not shown" in n and "JSON" in n for n in limited.notes)
    row = next(r for r in rows if r.device == "pi-a" and r.precision == "int8")
    sneaker = next(f for f in row.per_class if f.cls == 7)
    line = next(r for r in lines if r[6] == "7 Sneaker" and "int8" in r[1])
    assert line[10] == views.cell(scorecard.Cell(sneaker.precision, *sneaker.precision_ci95), 100)
    assert line[7] == str(round(sneaker.support))


def test_csv_carries_macro_columns_and_a_line_per_class(results):
    data = json.loads(report.build_json(CAMPAIGN, results))
    lines = list(csv.DictReader(io.StringIO(report.build_csv(CAMPAIGN, results))))
    rows = [line for line in lines if line["kind"] == "device"]
    assert len(rows) == len(data["rows"]) == 3
    for i, line in enumerate(lines):
        if line["kind"] != "device":
            continue
        row = next(r for r in data["rows"] if r["run_ids"] == line["run_ids"].split())
        for key in ("accuracy.precision_macro", "accuracy.recall_macro", "accuracy.f1_macro"):
            cell = row["kpis"][key]
            assert float(line[key]) == cell["value"] and [float(line[f"{key}.lo"]), float(line[f"{key}.hi"])] == cell["ci95"]
        following = []
        for after in lines[i + 1:]:
            if after["kind"] != "class":
                break
            following.append(after)
        assert len(following) == len(row["per_class"]) > 0
        for after, figures in zip(following, row["per_class"], strict=True):
            assert (after["device"], after["model"], after["run_ids"]) == (line["device"], line["model"], line["run_ids"])
            assert int(after["class"]) == figures["class"] and float(after["class.support"]) == figures["support"]
            assert float(after["class.f1"]) == figures["f1"]
            assert [float(after["class.f1.lo"]), float(after["class.f1.hi"])] == figures["f1_ci95"]
            assert after["accuracy.top1"] == "" and after["accuracy.f1_macro"] == ""
    assert "kind" in report.build_csv.__doc__ and "class" in report.build_csv.__doc__


def test_json_rows_carry_per_class(results):
    data = json.loads(report.build_json(CAMPAIGN, results))
    counts = sorted(len(r["per_class"]) for r in data["rows"])
    assert counts == [10, 10, 25]
    first = data["rows"][0]["per_class"][0]
    assert set(first) == {"class", "support", "predicted", "right", "precision", "precision_ci95", "recall", "recall_ci95",
                          "f1", "f1_ci95"}


def _svg(text: str) -> ET.Element:
    return ET.fromstring(text)


def test_html_and_markdown_per_class_tables_and_heatmaps(results):
    page = report.build_html(CAMPAIGN, results)
    assert page.count("<h3>per class: ") == 3
    assert "5 of 25 classes not shown" in page and "rows[].per_class" in page
    svgs = [s for s in re.findall(r"<svg\b[^>]*>.*?</svg>", page, flags=re.S) if "confusion matrix" in s]
    assert len(svgs) == 2  # the 25-class row's heatmap is omitted, with a reason
    assert "25 classes, more than the 12 a readable heatmap holds" in page
    rows = {r.model: r for r in scorecard.build(results) if r.device == "pi-a"}
    for svg in svgs:
        root = _svg(svg)
        assert root.get("role") == "img" and root.find("title").text == root.get("aria-label")
        assert "rows are the true class" in root.find("desc").text
        model = next(m for m in rows if m.removeprefix("zoo:") in root.get("aria-label"))
        cm = rows[model].classes.confusion
        tips = [t.text for t in root.iter("title")][1:]
        assert len(tips) == 100 and f"true 7 Sneaker, predicted 7 Sneaker: {cm[7, 7]:.0f}" in " ".join(tips)
        numbers = [t.text for t in root.iter("text") if t.text and t.text.isdigit()]
        assert str(int(cm[7, 7])) in numbers  # counts are printed where they fit
        assert "share of the true class" in svg and "100 %" in svg
    markdown = report.build_markdown(CAMPAIGN, results)
    assert markdown.count("### per class: ") == 3 and "| 7 Sneaker |" in markdown and "confusion matrices" in markdown


def test_heatmap_escapes_and_handles_empty_and_fractional_counts():
    evil = "<script>alert(1)</script>"
    svg = class_report.heatmap(np.array([[2.5, 0.5], [0, 3]]), [evil, "1"], f"t {evil}")
    root = _svg(svg)
    assert "<script" not in svg and "&lt;script&gt;" in svg and "2.5" in svg
    assert root.find("title").text == f"t {evil}"
    assert "no samples scored" in class_report.heatmap(np.zeros((2, 2)), ["0", "1"], "empty")
