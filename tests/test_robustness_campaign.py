"""Robustness over the fleet: the zoo's fp32 and int8 variants scored clean and corrupted by a real
agent over a real broker, then every figure the controller shows recomputed here, independently,
from the per-sample outcomes the store holds."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

from agent import contract
from agent.contract import Result
from agent.errors import EXIT_USAGE
from controller.analysis import robustness, scorecard
from controller.fleet import campaign as campaign_file
from controller.fleet.scheduler import job_message
from controller.reports import campaign_report
from tests.cli_harness import edgeperf_here, one_error_line
from tests.fleet_harness import Mosquitto
from tests.stored_results import store_campaign
from tests.test_fleet import controller, online, start_agents, stop_all
from tests.test_report import DevTools

pytestmark = pytest.mark.slow

CORRUPTIONS = ["gaussian_noise:2,5", "contrast:5"]
POINTS = [("contrast", 5), ("gaussian_noise", 2), ("gaussian_noise", 5)]
Z = 1.959963984540054


def _bits(text: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8), count=n).astype(bool)


def _wilson(x: float, n: int) -> tuple[float, float]:
    p = x / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return centre - half, centre + half


def _newcombe_paired(first: np.ndarray, second: np.ndarray) -> tuple[float, float, float]:
    """first − second share right over the same samples, and Newcombe's (1998) method 10 interval, written
    out again from the paper: Wilson limits of both margins combined with the shrunk phi."""
    a = float(np.sum(first & second))
    b = float(np.sum(first & ~second))
    c = float(np.sum(~first & second))
    d = float(np.sum(~first & ~second))
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = _wilson(a + b, int(n))
    l2, u2 = _wilson(a + c, int(n))
    denominator = (a + b) * (c + d) * (a + c) * (b + d)
    ad_bc = a * d - b * c
    if denominator == 0:
        phi = 0.0
    elif ad_bc > n / 2:
        phi = (ad_bc - n / 2) / math.sqrt(denominator)
    else:
        phi = min(ad_bc, 0.0) / math.sqrt(denominator)
    delta = p1 - p2
    lower = delta - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    upper = delta + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return delta, max(-1.0, lower), min(1.0, upper)


def _outcomes(result: Result) -> tuple[np.ndarray, dict[tuple[str, int], np.ndarray], dict[tuple[str, int], str]]:
    """The stored per-sample outcomes: clean, each corruption's, and each corruption's samples fingerprint."""
    clean = result.kpis.accuracy
    scores = result.kpis.robustness.scores
    return (_bits(clean.correct_bits, clean.n),
            {(s.corruption, s.severity): _bits(s.accuracy.correct_bits, s.accuracy.n) for s in scores},
            {(s.corruption, s.severity): s.accuracy.samples_sha256 for s in scores})


def _close(cell, value: float, interval: tuple[float, float], scale: float = 100.0) -> None:
    assert cell.value == pytest.approx(value * scale, abs=1e-9)
    assert (cell.lo, cell.hi) == pytest.approx((interval[0] * scale, interval[1] * scale), abs=1e-9)


def test_int8_and_fp32_robustness_over_mqtt_recomputed_from_the_stored_outcomes(tmp_path):
    broker = Mosquitto(tmp_path).start()
    agents = start_agents(broker.url, tmp_path, "pi-r")
    try:
        with controller(broker.url, tmp_path / "c.db") as fleet:
            online(fleet, "pi-r")
            path = tmp_path / "robust.yaml"
            path.write_text(json.dumps({
                "name": "robust", "profile": "smoke", "engine": "native", "modes": ["robustness"],
                "accuracy_dataset": "fashion-mnist:subset", "corruptions": CORRUPTIONS, "timeout_s": 300,
                "models": [{"name": "fmnist", "variants": [
                    {"artifact": "zoo:fashion-mnist-cnn/fp32.onnx", "threads": 1},
                    {"artifact": "zoo:fashion-mnist-cnn/int8.tflite", "threads": 1}]}],
            }))
            campaign_id = fleet.create_campaign(campaign_file.load(path))
            assert fleet.run(campaign_id) == "finished", [(j.key, j.error) for j in fleet.store.jobs(campaign_id)]
            results = fleet.store.results(campaign_id)
    finally:
        stop_all(agents)
        broker.stop()

    assert len(results) == 2 and {r.mode for r in results} == {"robustness"}
    by_precision = {r.model.precision: r for r in results}
    fp32, int8 = by_precision["fp32"], by_precision["int8"]
    clean32, corrupt32, prints32 = _outcomes(fp32)
    clean8, corrupt8, prints8 = _outcomes(int8)
    assert sorted(corrupt32) == sorted(corrupt8) == POINTS
    assert prints32 == prints8  # the same corrupted samples reached both variants: the pairing holds
    assert fp32.kpis.accuracy.samples_sha256 not in prints32.values()

    # the agent's own figures, from its own outcomes
    for result, clean, corrupt in ((fp32, clean32, corrupt32), (int8, clean8, corrupt8)):
        block = result.kpis.robustness
        for score in block.scores:
            right = corrupt[(score.corruption, score.severity)]
            drop, lo, hi = _newcombe_paired(clean, right)
            assert score.accuracy.top1 == pytest.approx(right.mean())
            assert score.drop_pp == pytest.approx(100 * drop)
            assert score.drop_ci95_pp == pytest.approx((100 * lo, 100 * hi), abs=1e-6)
            assert score.clean_only == int(np.sum(clean & ~right)) and score.corrupted_only == int(np.sum(~clean & right))
        assert block.mean_top1 == pytest.approx(np.mean([corrupt[p].mean() for p in POINTS]))
        assert block.scores[0].drop_pp != block.scores[-1].drop_pp or block.mean_drop_pp != 0
    heavy, light = (corrupt32[("gaussian_noise", 5)], corrupt32[("gaussian_noise", 2)])
    assert heavy.mean() < light.mean() < clean32.mean() + 0.02  # severity does what it says

    # the controller's curves, recomputed
    rows = scorecard.build(results)
    curves = {c.row.precision: c for c in robustness.curves(rows)}
    assert curves["int8"].reference is curves["fp32"]
    for point in POINTS:
        delta, lo, hi = _newcombe_paired(corrupt8[point], corrupt32[point])
        _close(curves["int8"].vs_reference[point], delta, (lo, hi))
        drop, lo, hi = _newcombe_paired(clean8, corrupt8[point])
        _close(curves["int8"].drop[point], drop, (lo, hi))
    delta, lo, hi = _newcombe_paired(clean8, clean32)
    _close(curves["int8"].vs_reference[robustness.CLEAN], delta, (lo, hi))
    per_sample = np.mean([corrupt8[p] for p in POINTS], axis=0) - np.mean([corrupt32[p] for p in POINTS], axis=0)
    half = 1.9623 * per_sample.std(ddof=1) / math.sqrt(per_sample.size)  # t(999) 97.5 %
    mean = curves["int8"].mean_vs_reference
    assert mean.value == pytest.approx(100 * per_sample.mean())
    assert (mean.lo, mean.hi) == pytest.approx((100 * (per_sample.mean() - half), 100 * (per_sample.mean() + half)), abs=1e-3)

    # the same, as the user sees it: the scorecard view, its JSON, the report's table and curves
    text = campaign_report.build_html({"id": "c", "name": "robust"}, results)
    assert "robustness: fmnist on pi-r" in text and "vs fp32.onnx (fp32)" in text and "gaussian_noise" in text
    page = tmp_path / "report.html"
    page.write_text(text)
    browser = DevTools()
    try:
        browser.load(page.as_uri())
        assert browser.problems() == []
        titles = json.loads(browser.evaluate("JSON.stringify([...document.querySelectorAll('svg > title')]"
                                             ".map(t => t.textContent))"))
    finally:
        browser.close()
    assert {"robustness: fmnist on pi-r", "robustness: fmnist on pi-r — contrast",
            "robustness: fmnist on pi-r — gaussian_noise"} <= set(titles)
    db = str(tmp_path / "c.db")
    shown = json.loads(edgeperf_here("scorecard", campaign_id, "--robustness", "--json", "--db", db).stdout)["robustness"]
    assert {c["precision"]: c["reference"] for c in shown} == {"fp32": None, "int8": fp32.model.name}

    # a campaign without robustness runs is refused in one line
    plain = contract.to_builtins(fp32) | {"mode": "accuracy"}
    plain["kpis"]["robustness"] = None
    store_campaign(tmp_path / "c.db", "plain", [plain])
    one_error_line(edgeperf_here("scorecard", "plain", "--robustness", "--db", db), EXIT_USAGE, "no robustness runs")




def _campaign(tmp_path, **extra) -> str:
    body = {"name": "c", "modes": ["performance", "accuracy", "robustness"],
            "models": [{"name": "m", "variants": [{"artifact": "zoo:fashion-mnist-cnn/int8.tflite"}]}]} | extra
    (tmp_path / "c.yaml").write_text(json.dumps(body))
    return str(tmp_path / "c.yaml")


def test_a_campaigns_corruptions_and_groups_reach_only_the_jobs_that_score_them(tmp_path):
    (tmp_path / "groups.csv").write_text("index,group\n0,day\n3,night\n")
    spec = campaign_file.load(_campaign(tmp_path, corruptions=["gaussian_noise:1,5", "contrast"], groups="groups.csv"))
    assert spec.groups == ("day", "", "", "night") and spec.groups_source.startswith(f"{tmp_path / 'groups.csv'} (sha256 ")
    jobs = {j.mode: j for j in campaign_file.expand(spec, [("pi", ())])}
    assert jobs["robustness"].corruptions == ("gaussian_noise:1,5", "contrast") and jobs["accuracy"].corruptions == ()
    assert jobs["accuracy"].groups == jobs["robustness"].groups == spec.groups and jobs["performance"].groups == ()
    sent = job_message(jobs["robustness"], "r1", 1, "c1", {"url": "http://h/m", "sha256": "0" * 64, "size": 1,
                                                             "name": "int8.tflite"}, "ctl")
    assert sent.corruptions == ("gaussian_noise:1,5", "contrast") and sent.groups == spec.groups
    assert campaign_file.Campaign.from_dict(spec.to_dict()) == spec  # stored and read back


@pytest.mark.parametrize(("extra", "fragments"), [
    ({"corruptions": ["fog"]}, ("c.yaml:", "corruptions[0]: unknown corruption 'fog'", "gaussian_noise")),
    ({"corruptions": ["contrast:7"]}, ("corruptions[0]:", "severities are 1 to 5")),
    ({"corruptions": ["contrast"], "modes": ["accuracy"]}, ("corruptions: applies to robustness runs",)),
    ({"groups": "nowhere.csv"}, ("groups: groups file", "nowhere.csv does not exist")),
    ({"groups": "groups.csv", "modes": ["performance"]}, ("groups: groups are scored per group",)),
])
def test_bad_corruptions_or_groups_name_the_file_line_and_key(tmp_path, extra, fragments):
    (tmp_path / "groups.csv").write_text("0,a\n")
    with pytest.raises(campaign_file.CampaignError) as info:
        campaign_file.load(_campaign(tmp_path, **extra))
    for fragment in fragments:
        assert fragment in str(info.value)
