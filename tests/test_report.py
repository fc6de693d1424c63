"""Reports from real results: the HTML page is complete, self-contained, escaped and renders in a
real browser without errors; Markdown, CSV and JSON carry the same numbers; the plots survive
empty, constant and hostile data.

The result documents come from real benchmark runs of the zoo models (two "devices" on this
machine, repeats, accuracy, estimated energy), with copies marked as a host-CPU baseline, so the
report is tested on what a campaign actually stores; reports read them typed, decoded through
the contract as the store decodes them, and expected values come from the documents.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import math
import re
import shutil
import struct
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import msgspec
import pytest

from agent import bench, contract
from agent.contract import Result, RuntimeOptions
from agent.energy_meter import PowerPlan
from agent.scenarios.settings import Mode, Scenario, for_profile, with_overrides
from agent.stats import LatencyHistogram
from controller.analysis.compare import compare
from controller.analysis.scorecard import build as scorecard_rows
from controller.reports import campaign_report as report
from controller.reports import plots, views

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless flags for a machine without network (background services would try to call out).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
EVIL = "<script>alert(1)</script>"
EVIL_BOARD = '<img src=x onerror="alert(2)">'
CAMPAIGN = {"id": "c0ffee123456", "name": "report-test <&>", "state": "done", "kind": "fleet", "created_at": 1_790_000_000.0,
            "finished_at": 1_790_000_100.0, "source": "campaigns/report.yaml"}


# ---- real documents -------------------------------------------------------------------------------
def _run(log_dir: Path, device: str, model: str, scenario: Scenario, mode: Mode = Mode.PERFORMANCE, repeat: int = 0,
         dataset: str = "synthetic", power: PowerPlan | None = None) -> dict[str, Any]:
    settings = with_overrides(for_profile("smoke", scenario, mode), min_duration_ms=200)
    doc = bench.run(bench.BenchRequest(model=f"zoo:fashion-mnist-cnn/{model}", settings=settings, engine="native",
                                       options=RuntimeOptions(threads=1), dataset=dataset, warmup_runs=5, device_id=device,
                                       log_dir=log_dir, power=power))
    assert contract.convert("result", doc).run_id == doc["run_id"]  # it meets the contract
    # what the controller adds when it stores a campaign's result: the job it answered
    key = f"{device}/fashion-mnist-cnn/{model}/{scenario.value}/{mode.value}/r{repeat}"
    doc["job"] = {"campaign": CAMPAIGN["id"], "key": key, "attempt": 1}
    return doc


def _as_baseline(doc: dict[str, Any], device: str = "dc-host") -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["run_id"] = "b" + out["run_id"][1:]
    out["device"]["id"] = device
    out["baseline"] = {"kind": "host-cpu"}
    out["job"]["key"] = device + out["job"]["key"][out["job"]["key"].index("/"):]
    return out


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> dict[str, Any]:
    logs = tmp_path_factory.mktemp("logs")
    ss, off, acc = Scenario.SINGLE_STREAM, Scenario.OFFLINE, Mode.ACCURACY
    edge_a = [_run(logs, "edge-a", "int8.tflite", ss, repeat=r) for r in range(3)]  # repeats: intervals
    edge_a += [
        _run(logs, "edge-a", "int8.tflite", off),
        _run(logs, "edge-a", "int8.tflite", ss, acc, dataset="fashion-mnist:subset"),
        _run(logs, "edge-a", "fp32.onnx", ss),
        _run(logs, "edge-a", "fp32.onnx", ss, acc, dataset="fashion-mnist:subset"),
    ]
    powered = _run(logs, "edge-b", "int8.tflite", ss, power=PowerPlan("estimate", idle_s=0.2))
    edge_b = [powered, _run(logs, "edge-b", "fp32.onnx", ss)]
    evil = copy.deepcopy(edge_b[1])
    evil["run_id"] = "e" + evil["run_id"][1:]
    evil["device"]["id"] = EVIL
    evil["device"]["facts"] = dict(evil["device"]["facts"], board=EVIL_BOARD)
    baseline = [_as_baseline(edge_a[0]), _as_baseline(edge_a[5]), _as_baseline(edge_a[4])]
    return {"edge": edge_a + edge_b, "evil": evil, "baseline": baseline, "powered": powered, "repeats": edge_a[:3]}


def typed(doc: dict[str, Any]) -> Result:
    """A document as the controller reads it: decoded through the contract."""
    return contract.convert("result", doc)


@pytest.fixture(scope="module")
def results(docs) -> dict[str, Any]:
    """``docs`` typed, the same runs under the same names (``powered`` is one of ``edge``)."""
    of = {id(d): typed(d) for d in docs["edge"] + docs["baseline"]}
    # the contract refuses a device id like EVIL on the wire; the report must still escape whatever a
    # result holds, so the hostile id goes in after decoding (replace does not re-check bounds)
    evil = typed(docs["evil"] | {"device": docs["evil"]["device"] | {"id": "evil"}})
    evil = msgspec.structs.replace(evil, device=msgspec.structs.replace(evil.device, id=EVIL))
    return {"edge": [of[id(d)] for d in docs["edge"]], "baseline": [of[id(d)] for d in docs["baseline"]], "evil": evil,
            "powered": of[id(docs["powered"])], "repeats": [of[id(d)] for d in docs["repeats"]]}


@pytest.fixture(scope="module")
def page(results) -> str:
    return report.build_html(CAMPAIGN, [*results["edge"], results["evil"]], results["baseline"])


@pytest.fixture(scope="module")
def page_file(page, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


class _Tables(HTMLParser):
    """Tables of a page as lists of rows of cell text (with each cell's class), and all tag names."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[tuple[str, str]]]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None
        self._class = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._class = [], dict(attrs).get("class") or tag

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(("".join(self._cell), self._class))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parse(page: str) -> _Tables:
    parser = _Tables()
    parser.feed(page)
    return parser


# ---- the HTML page ----------------------------------------------------------------------------------
def test_html_has_the_scorecard_fleet_and_comparison_tables(results, page):
    parsed = _parse(page)
    titles = re.findall(r"<h3>(.*?)</h3>", page)
    assert {"scorecard", "fleet rows: device classes with more than one device", "datacenter baseline",
            "edge vs datacenter baseline"} <= set(titles)
    scorecard_table = parsed.tables[0]
    devices = {row[0][0] for row in scorecard_table[1:]}
    assert devices == {"edge-a", "edge-b", EVIL}
    models = {row[1][0] for row in scorecard_table[1:]}
    assert models == {"fashion-mnist-cnn/int8.tflite (int8)", "fashion-mnist-cnn/fp32.onnx (fp32)"}
    header = [c for c, _ in scorecard_table[0]]
    assert header[:6] == ["device", "model", "runtime", "run", "n", "verdict"]  # the verdict before any number
    assert all(row[5] == ("VALID", "txt ok") for row in scorecard_table[1:])
    # the three repeats are one row with an interval
    repeated = [row for row in scorecard_table[1:] if row[0][0] == "edge-a" and row[1][0].startswith("fashion-mnist-cnn/int8")
                and row[3][0] == "SS perf"]
    assert len(repeated) == 1 and repeated[0][4][0] == "3" and "[" in repeated[0][header.index("p90 ms")][0]
    # the comparison: the same ratios views.comparison formats, each next to both verdicts
    rows = scorecard_rows(results["edge"] + [results["evil"]])
    expected = report.verdict_first(report.comparison_view(compare(rows, scorecard_rows(results["baseline"])), "x"))
    comparison = parsed.tables[3]
    assert [c for c, _ in comparison[0]] == list(expected.headers)
    assert [tuple(c for c, _ in row) for row in comparison[1:]] == expected.rows
    assert expected.headers[:5] == ("model", "run", "device", "verdict", "baseline verdict")
    paired = [row for row in expected.rows if row[-1] != "no baseline run"]
    assert paired and all(row[3] == "VALID" and row[4] == "VALID" for row in paired)
    assert any(re.fullmatch(r"[\d.]+×", cell) for row in paired for cell in row[7:11])
    p90 = [expected.headers.index(h) for h in ("p90 ms", "baseline p90 ms", "p90 latency ×")]
    for row in expected.rows:  # latency only where it is the metric, as in the scorecard
        assert all((row[i] == "–") == (row[1] != "SS perf") for i in p90[:1]), row
        assert row[1] == "SS perf" or all(row[i] == "–" for i in p90)


def test_every_number_row_carries_its_verdict(page):
    for table in _parse(page).tables:
        header = [c for c, _ in table[0]]
        if "n" in header or "p90 ms" in header:  # a table of numbers
            assert "verdict" in header, header
            where = header.index("verdict")
            assert all(row[where][0].startswith(("VALID", "INVALID")) for row in table[1:])


def test_html_holds_every_plot_and_fetches_nothing(docs, page):
    svgs = re.findall(r"<svg\b[^>]*>.*?</svg>", page, flags=re.S)
    # CDF (SingleStream), energy scatter, accuracy vs latency, throughput SS and Offline, power trace, and a confusion
    # matrix per accuracy row: edge-a int8 and fp32, the baseline's int8
    assert len(svgs) == 9
    for svg in svgs:
        root = ET.fromstring(svg)  # each plot is well-formed XML
        assert root.get("role") == "img" and root.get("aria-label") and root.find("title").text == root.get("aria-label")
    assert "latency CDF, SingleStream" in page and "throughput per device, Offline" in page
    assert "hollow: estimated energy (a model, not measured)" in page
    assert f"power trace of run {docs['powered']['run_id']}" in page and "power (estimated, not measured)" in page
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page, flags=re.I)
    assert re.search(r"<[^>]*\b(src|href)=", page) is None  # no attribute loads anything
    assert "default-src 'none'" in page  # the page forbids scripts and loads even if escaping ever failed
    # with energy and a baseline, nothing is left out but accuracy vs energy (the one run with energy has no accuracy)
    assert re.findall(r'<p class="omitted">top-1 accuracy vs energy per inference omitted: no variant has a top-1 accuracy',
                      page) and page.count('class="omitted"') == 1


def test_html_escapes_hostile_text(page):
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page and "<img" not in page
    assert "report-test &lt;&amp;&gt;" in page


def test_header_environment_and_notes(docs, page):
    facts = docs["edge"][0]["device"]["facts"]
    for text in ("c0ffee123456", "done", "2026-09-21 14:13:20 UTC", "<dt>devices</dt><dd>3: &lt;script&gt;",
                 "edge-a, edge-b", "<dt>baseline results</dt><dd>3 (host-cpu)", facts["kernel"], facts["python"], "runtimes",
                 "10 of 10 runs valid"):
        assert text in page, text
    installed = [v for v in facts["installed"].values() if v]
    assert all(v in page for v in installed)
    for device in ("edge-a", "edge-b", "dc-host"):
        assert f'<section class="device"><h3>{device}</h3>' in page
    for phrase in ("t interval of the mean", "edge ÷ baseline", "Estimated energy", "merged histograms"):
        assert phrase in page


def test_plots_are_omitted_with_a_reason(results):
    plain = [r for r in results["edge"] if r is not results["powered"]]
    page = report.build_html(CAMPAIGN, plain)
    assert "energy per inference vs p90 latency omitted: no run measured energy" in page
    assert "power trace omitted: no run recorded one" in page
    assert "edge vs datacenter comparison omitted: no baseline results were given" in page
    assert page.count("<svg") == 6  # accuracy vs latency: edge-a ran fp32 and int8 with accuracy runs; their confusion matrices
    assert "Estimated energy" not in page  # the note appears only where estimated energy does
    empty = report.build_html({"id": "x"}, [])
    assert "no results in this campaign yet" in empty and "<svg" not in empty
    assert "latency CDF omitted" in empty and "throughput per device omitted" in empty


def test_an_invalid_run_is_marked_everywhere(docs, results):
    bad = copy.deepcopy(docs["edge"][5])
    bad["device"]["id"], bad["valid"] = "edge-c", False
    bad["invalid_reasons"] = ["min_duration: ran 0.2 s of the required 60 s"]
    page = report.build_html(CAMPAIGN, [*results["edge"], typed(bad)])
    rows = [r for r in _parse(page).tables[0][1:] if r[0][0] == "edge-c"]
    assert rows and rows[0][5] == ("INVALID 1/1: min_duration", "txt bad")
    assert "runs that are not valid" in page and "ran 0.2 s of the required 60 s" in page
    assert "edge-c · fashion-mnist-cnn/fp32.onnx · onnxruntime CPU ×1 [INVALID]" in page  # the CDF legend
    assert "9 of 10 runs valid" in page


def test_latency_cdf_reads_the_merged_histograms(docs, results):
    xs, ys = report.latency_cdf(results["repeats"])
    merged = LatencyHistogram()
    for doc in docs["repeats"]:
        merged.merge(LatencyHistogram(Counter({int(b): n for b, n in doc["kpis"]["latency_histogram"]["counts"].items()})))
    assert len(xs) == len(merged.counts) and xs == sorted(xs) and ys == sorted(ys) and ys[-1] == pytest.approx(100)
    for p in (0.5, 0.9, 0.99):  # the first bucket past rank floor(n p) is the histogram's percentile
        rank = int(merged.n * p)
        first = next(x for x, y in zip(xs, ys, strict=True) if y * merged.n / 100 > rank + 1e-9)
        assert first == pytest.approx(merged.percentile(p) / 1e6)
    assert report.latency_cdf([]) == ([], [])


def test_trace_run_is_the_one_with_most_samples(docs, results):
    other = copy.deepcopy(docs["powered"])
    other["run_id"] = "longer"
    trace = other["kpis"]["energy"]["trace"]
    trace["t_s"], trace["w"] = trace["t_s"] * 2, trace["w"] * 2
    assert report.trace_run([results["powered"], typed(other)]).run_id == "longer"
    assert report.trace_run(results["repeats"]) is None


# ---- in a real browser ------------------------------------------------------------------------------------
def _chromium(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              timeout=timeout, check=False)


class DevTools:
    """A page in headless Chromium driven over the DevTools protocol: every console call,
    uncaught exception and log entry (CSP violations, failed loads) it produces is recorded."""

    def __init__(self) -> None:
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp()
        self.proc = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                                      "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, deadline = Path(self.profile) / "DevToolsActivePort", time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            assert time.monotonic() < deadline and self.proc.poll() is None, "chromium did not open its DevTools port"
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=30)
        self.events: list[dict[str, Any]] = []
        self._id = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session=True)

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == self._id:
                assert "error" not in reply, reply
                return reply.get("result", {})
            self.events.append(reply)

    def load(self, url: str, settle_s: float = 0.5) -> None:
        self.call("Page.navigate", {"url": url}, session=True)
        deadline = time.monotonic() + 60
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            assert time.monotonic() < deadline, "the page did not load"
            self.events.append(json.loads(self.ws.recv(timeout=60)))
        end = time.monotonic() + settle_s  # late errors (layout, fonts) arrive after load
        while (left := end - time.monotonic()) > 0:
            try:
                self.events.append(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                break

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)["result"]["value"]

    def problems(self) -> list[str]:
        out = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled":
                out.append(f"console.{params['type']}: {[a.get('value', a.get('description')) for a in params['args']]}")
            elif method == "Runtime.exceptionThrown":
                out.append(f"exception: {params['exceptionDetails'].get('exception', {}).get('description')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                out.append(f"log {params['entry']['level']}: {params['entry']['text']}")
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the browser may close the socket before answering
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def devtools():
    browser = DevTools()
    yield browser
    browser.close()


def test_the_browser_check_catches_errors(devtools, tmp_path):
    """The harness itself: a page that logs, throws and fetches is caught (else the next test proves nothing)."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="missing.png"><script>console.error("boom"); '
                   "undefinedFunction();</script></body></html>")
    devtools.load(bad.as_uri())
    problems = devtools.problems()
    assert any("console.error" in p and "boom" in p for p in problems), problems
    assert any("undefinedFunction" in p for p in problems), problems
    assert any(p.startswith("log error") for p in problems), problems  # the failed image load


def test_the_report_renders_in_chromium_without_a_single_error(devtools, page_file):
    devtools.load(page_file.as_uri())
    assert devtools.problems() == []
    dom = devtools.evaluate(
        "JSON.stringify({tables: document.querySelectorAll('table').length, svgs: document.querySelectorAll('svg').length,"
        " scripts: document.querySelectorAll('script').length, imgs: document.querySelectorAll('img').length,"
        " svgNs: [...document.querySelectorAll('svg')].every(s => s.namespaceURI.endsWith('/2000/svg')),"
        " plotsDrawn: [...document.querySelectorAll('svg')].every(s => s.getBoundingClientRect().height > 100),"
        " text: document.body.innerText, resources: performance.getEntriesByType('resource').length})"
    )
    dom = json.loads(dom)
    # every table and plot of the page is in the DOM: the scorecard, fleet, baseline and comparison tables, a per-class
    # table per accuracy row (3) and whatever accuracy analyses add; the 9 plots of test_html_holds_every_plot_...
    page = page_file.read_text(encoding="utf-8")
    assert dom["tables"] == page.count("<table") >= 7 and dom["svgs"] == page.count("<svg") == 9
    assert dom["scripts"] == 0 and dom["imgs"] == 0
    assert dom["svgNs"] and dom["plotsDrawn"] and dom["resources"] == 0
    assert EVIL in dom["text"] and EVIL_BOARD in dom["text"]  # shown as text, never run as markup


def test_chromium_dump_dom_and_screenshot(page_file, tmp_path):
    dumped = _chromium("--dump-dom", page_file.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout.decode()
    page = page_file.read_text(encoding="utf-8")
    assert dom.count("<table") == page.count("<table") >= 7 and dom.count("<svg") == 9 and "<script" not in dom
    shot = tmp_path / "report.png"
    taken = _chromium("--hide-scrollbars", "--window-size=1400,2400", f"--screenshot={shot}", page_file.as_uri())
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (1400, 2400)
    assert len(png) > 60_000  # a page of tables and plots, not a blank canvas (a blank one is ~10 KB)


# ---- Markdown, CSV, JSON -----------------------------------------------------------------------------------
def _floats_equal(a: float | None, b: str) -> bool:
    return (a is None and b == "") or (a is not None and b != "" and float(b) == a)


def test_json_csv_and_markdown_carry_the_same_numbers(results):
    args = (CAMPAIGN, results["edge"], results["baseline"])
    data = json.loads(report.build_json(*args))
    lines = list(csv.DictReader(io.StringIO(report.build_csv(*args))))
    table = [line for line in lines if line["kind"] != "class"]  # per-class lines: tests/test_class_report.py
    markdown = report.build_markdown(*args)
    assert data["schema"] == report.SCHEMA and data["campaign"]["id"] == CAMPAIGN["id"]
    assert data["counts"] == {"devices": 2, "results": 9, "valid": 9, "baseline_results": 3}
    assert [r["kind"] for r in table] == ["device"] * len(data["rows"]) + ["fleet"] * len(data["fleet_rows"]) + \
        ["baseline"] * len(data["baseline_rows"])
    assert len(data["fleet_rows"]) > 0 and len(data["comparisons"]) == len(data["rows"])
    for line, row in zip(table, data["rows"] + data["fleet_rows"] + data["baseline_rows"], strict=True):
        assert (line["device"], line["model"], line["scenario"], line["mode"], line["verdict"]) == \
            (row["device"], row["model"], row["scenario"], row["mode"], row["verdict"])
        assert line["run_ids"].split() == row["run_ids"]
        timed = row["mode"] == "performance" and row["scenario"] != "Offline"
        for key, cell in row["kpis"].items():
            if key in report.LATENCY_KPIS and not timed:
                assert line[key] == ""
                continue
            assert _floats_equal(cell["value"], line[key]), (key, cell, line[key])
            lo, hi = cell["ci95"] or (None, None)
            assert _floats_equal(lo, line[f"{key}.lo"]) and _floats_equal(hi, line[f"{key}.hi"])
    repeated = next(r for r in data["rows"] if r["runs"] == 3)
    assert repeated["kpis"]["throughput_sps"]["ci95"] is not None
    compared = 0
    for comp in data["comparisons"]:
        line = next(x for x in table if x["kind"] == "device" and x["run_ids"].split() == comp["edge"]["run_ids"])
        if comp["baseline"] is None:
            assert line["baseline_device"] == ""
            continue
        compared += 1
        assert line["baseline_device"] == comp["baseline"]["device"] == "dc-host"
        for label, kpi in report.RATIOS.items():
            assert _floats_equal(comp["ratios"][label], line[f"ratio.{kpi}"])
        assert _floats_equal(comp["accuracy_delta_pp"], line["baseline.top1_delta_pp"])
    assert compared == 5  # both devices' SingleStream rows and edge-a's accuracy row have a baseline twin
    # Markdown shows the very cells of the HTML tables (the same views)
    view = report.verdict_first(views.scorecard(scorecard_rows(results["edge"]), "scorecard"))
    for row in view.rows:
        assert "| " + " | ".join(row) + " |" in markdown
    assert "### edge vs datacenter baseline" in markdown and "## Environment" in markdown
    assert "report-test &lt;&amp;&gt;" in markdown


def test_markdown_escapes_html(results):
    markdown = report.build_markdown(CAMPAIGN, [results["evil"]])
    assert EVIL not in markdown and "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown


def test_json_is_strict_and_build_dispatches(results):
    repeats = results["repeats"]
    text = report.build("json", CAMPAIGN, repeats)
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert report.build("csv", CAMPAIGN, repeats) == report.build_csv(CAMPAIGN, repeats)
    assert report.build("md", CAMPAIGN, repeats, title="T").startswith("# T\n")
    assert "<title>T</title>" in report.build("html", CAMPAIGN, repeats, title="T")
    with pytest.raises(ValueError, match="unknown report format 'pdf'; use one of: html, md, csv, json"):
        report.build("pdf", CAMPAIGN, repeats)


# ---- plots on their own -----------------------------------------------------------------------------------
def _svg(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == "svg" and root.get("width") == "100%" and root.get("viewBox")
    assert root.find("title") is not None and root.get("aria-label") == root.find("title").text
    return root


def _texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter("text")]


@pytest.mark.parametrize("svg", [
    plots.line_chart({}, "x", "y", "empty lines"),
    plots.line_chart({"a": ([], [])}, "x", "y", "no points"),
    plots.line_chart({"a": ([1.0, math.nan], [math.inf, math.nan])}, "x", "y", "nan only"),
    plots.scatter([], "x", "y", "empty scatter"),
    plots.bar_chart([], "v", "empty bars"),
    plots.trace_chart([], [], 1.0, "empty trace"),
])
def test_empty_data_draws_a_plot_that_says_so(svg):
    root = _svg(svg)
    assert any(t in ("no data", "no power samples") for t in _texts(root))


@pytest.mark.parametrize("svg", [
    plots.line_chart({"flat": ([1, 2, 3], [5, 5, 5])}, "x", "y", "constant y"),
    plots.line_chart({"dot": ([2.0], [7.0])}, "x", "y", "one point", x_log=True),
    plots.line_chart({"same x": ([3, 3, 3], [1, 2, 3])}, "x", "y", "constant x"),
    plots.scatter([("p", 4.0, 4.0, "s")], "x", "y", "one point", x_log=True, y_log=True),
    plots.scatter([("p", 0.0, 0.0, "s"), ("q", 0.0, 0.0, "s", True)], "x", "y", "zeros", x_log=True),
    plots.bar_chart([("zero", 0.0, None, None), ("zero too", 0.0, 0.0, 0.0)], "v", "all zero"),
    plots.trace_chart([0.0, 0.5, 1.0], [3.0, 3.0, 3.0], 1.0, "flat power", idle_w=3.0),
    plots.trace_chart([0.0], [2.0], 0.0, "one sample, no window"),
])
def test_constant_and_degenerate_data_give_valid_svg(svg):
    root = _svg(svg)
    numbers = [float(v) for el in root.iter() for attr in ("x", "y", "width", "height", "cx", "cy", "x1", "x2", "y1", "y2")
               if (v := el.get(attr)) is not None and re.fullmatch(r"-?[\d.]+", v)]
    assert numbers and all(math.isfinite(n) for n in numbers)
    assert all(float(el.get("width")) >= 0 for el in root.iter("rect"))
    assert "nan" not in svg.lower() and "inf" not in svg.lower().replace("information", "")


def test_nice_ticks_are_one_two_five_steps():
    for lo, hi in ((0, 1), (0, 7.3), (0.013, 0.0871), (12, 13_100), (-3, 3), (99.5, 100.5), (0, 1e-7)):
        axis = plots.linear_axis([lo, hi])
        steps = {round(b - a, 12) for a, b in zip(axis.ticks, axis.ticks[1:], strict=False)}
        assert len(steps) == 1, (lo, hi, axis.ticks)
        mantissa = round(axis.step / 10 ** math.floor(math.log10(axis.step)), 6)
        assert mantissa in (1, 2, 5) and 3 <= len(axis.ticks) <= 11
        assert axis.lo <= lo and axis.hi >= hi
    assert plots.linear_axis([0, 1]).ticks == (0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert [plots.tick_label(t, 0.2) for t in (0, 0.2, 0.4)] == ["0.0", "0.2", "0.4"]
    assert plots.tick_label(20_000, 5000) == "20k" and plots.tick_label(2500, 500) == "2500"
    assert plots.log_axis([0.04, 0.9]).ticks == (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
    assert plots.log_axis([0.001, 1000]).ticks == (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
    assert plots.spans_decades([0.05, 4.0]) and not plots.spans_decades([1, 9]) and not plots.spans_decades([0, 100])


def test_plots_escape_text_and_draw_what_they_are_given():
    evil = "<b>&\"x\"</b>"
    line = plots.line_chart({evil: ([1, 10, 100], [0, 50, 100])}, "latency (ms)", "share (%)", evil, x_log=True)
    root = _svg(line)
    assert evil in _texts(root) and root.get("aria-label") == evil and "<b>" not in line
    assert "latency (ms) (log scale)" in _texts(root) and {"1", "10", "100"} <= set(_texts(root))
    assert len(root.findall(".//polyline")) == 1
    linear = _svg(plots.line_chart({"a": ([-1, 10], [0, 1])}, "x", "y", "log asked, not possible", x_log=True))
    assert "x (log scale)" not in _texts(linear)  # a non-positive value: linear, not dropped data
    bars = _svg(plots.bar_chart([("with interval", 10.0, 8.0, 12.0, "dev"), ("without", 5.0, None, None, "dev")], "sps", "b"))
    assert len([p for p in bars.iter("path") if p.get("stroke") == "#222"]) == 2  # one whisker + its legend swatch
    assert "95 % interval" in _texts(bars) and "10.00" in _texts(bars)
    pts = [("measured", 1.0, 2.0, "dev-a"), ("estimated", 2.0, 3.0, "dev-b", True)]
    scatter = _svg(plots.scatter(pts, "p90 (ms)", "mJ", "s", filled_label="filled: measured", hollow_label="hollow: est."))
    circles = [c for c in scatter.iter("circle")]
    assert {c.get("fill") for c in circles} >= {"#ffffff", plots.PALETTE[0]}
    assert {"dev-a", "dev-b", "filled: measured", "hollow: est."} <= set(_texts(scatter))
    trace = _svg(plots.trace_chart([-0.1, 0.0, 0.5, 1.0, 1.1], [2, 5, 6, 5, 2], 1.0, "t", idle_w=2.0))
    window = [r for r in trace.iter("rect") if r.get("class") == "window"]
    assert len(window) == 1 and float(window[0].get("width")) > 400
    assert "measured window (1 s)" in _texts(trace) and "idle power (2 W)" in _texts(trace)
    with pytest.raises(ValueError):
        plots.line_chart({"a": ([1, 2], [1])}, "x", "y", "mismatched")


def test_a_standalone_svg_file_declares_its_namespace():
    text = plots.as_file(plots.bar_chart([("a", 1.0, None, None)], "v", "t"))
    assert text.startswith("<?xml") and ET.fromstring(text.split("\n", 1)[1]).tag == "{http://www.w3.org/2000/svg}svg"


def test_a_device_keeps_its_colour_in_every_plot():
    order = ("edge-a", "edge-b", "dc (baseline host-cpu)")
    bars = _svg(plots.bar_chart([("b", 1.0, None, None, "edge-b")], "v", "t", order=order))
    scatter = _svg(plots.scatter([("p", 1.0, 1.0, "dc (baseline host-cpu)"), ("q", 2.0, 2.0, "edge-b")], "x", "y", "s",
                                 order=order))
    assert {r.get("fill") for r in bars.iter("rect")} >= {plots.PALETTE[1]}
    assert plots.PALETTE[0] not in {r.get("fill") for r in bars.iter("rect")}  # edge-a's colour stays edge-a's
    fills = {c.get("fill") for c in scatter.iter("circle")}
    assert {plots.PALETTE[1], plots.PALETTE[2]} <= fills and plots.PALETTE[0] not in fills


def test_scatter_labels_do_not_overlap():
    points = [(f"label number {i}", 1.0, 1.0, "s") for i in range(10)]  # all on one spot: six places around it
    root = _svg(plots.scatter(points, "x", "y", "crowded", annotate=True))
    labels = [t for t in root.iter("text") if t.get("font-size") == "10.5"]
    assert len(labels) == 6  # the ones that fit; the rest keep their tooltips
    boxes = []
    for t in labels:
        width, x, y = len(t.text) * plots.CHAR_W * 10.5 / 12, float(t.get("x")), float(t.get("y"))
        x0 = x if t.get("text-anchor") == "start" else x - width
        boxes.append((x0, y - 10.5, x0 + width, y + 3))
    assert not any(plots._overlaps(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert len(root.findall(".//g[@class='points']/g/title")) == 10  # every point keeps its tooltip


def test_log_axis_can_end_at_the_data():
    tight = plots.log_axis([0.043, 1.6], tight=True)
    assert tight.ticks == (0.05, 0.1, 0.2, 0.5, 1.0) and tight.lo < 0.043 and tight.hi > 1.6
    assert plots.log_axis([5.0], tight=True).ticks == (1.0, 2.0, 5.0, 10.0)  # one value: its decade
