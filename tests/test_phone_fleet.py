"""A phone on the fleet (issue 17's acceptance), on real parts: mosquitto, a Linux agent process, the
``edgeperf-agent android`` bridge process driving an emulated phone through Debian's adb, the real
controller and CLI. The phone is listed with its facts, a campaign selecting it by tag runs beside the
Linux agent, the scorecard labels its rows, and an unplugged phone goes offline and comes back."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from rich.console import Console

from agent.contract import Result
from controller.analysis import scorecard
from controller.fleet import campaign as campaign_file
from controller.reports import render, tables, views
from tests.cli_harness import edgeperf_here
from tests.fleet_harness import AgentProcess, Mosquitto, wait_until
from tests.phone_lab import make_lab
from tests.test_fleet import controller, online, stop_all

pytestmark = pytest.mark.slow

CAMPAIGN = {
    "name": "phones", "profile": "smoke", "engine": "native", "scenarios": ["SingleStream"], "power": "auto",
    "modes": ["performance", "accuracy"], "accuracy_dataset": "fashion-mnist:subset",
    "timeout_s": 120, "retries": 1, "devices": {"tags": ["android", "rpi"]},
    "overrides": {"min_duration_s": 0.5},
    "models": [{"name": "fmnist", "variants": [{"artifact": "zoo:fashion-mnist-cnn/int8.tflite", "threads": 1},
                                               {"artifact": "zoo:fashion-mnist-cnn/fp32.onnx", "threads": 1}]}],
}


class Bridge(AgentProcess):
    """``edgeperf-agent android --serial SERIAL`` with the phone lab's adb server and tools."""

    def __init__(self, broker_url: str, lab, workdir) -> None:
        super().__init__(broker_url, "bridge", workdir, env=lab.env | {"EDGEPERF_HEARTBEAT_S": "1"})
        self.device_id = f"android-{lab.serial}"
        self.cmd = [sys.executable, "-m", "agent.cli", "android", "--serial", lab.serial, "--broker", broker_url,
                    "--data-dir", str(self.data_dir), "--tools", str(lab.tools_dir), "--log-level", "info"]


def _state(fleet, device_id: str) -> str | None:
    fleet.pump(0.1)
    view = fleet.devices.get(device_id)
    return view.state if view else None


def test_a_phone_runs_a_campaign_beside_a_linux_agent_and_its_rows_say_how_they_were_measured(tmp_path):
    lab, stops = make_lab(tmp_path)
    broker = Mosquitto(tmp_path).start()
    db = tmp_path / "c.db"
    linux = AgentProcess(broker.url, "pi-1", tmp_path, "--tag", "rpi").start()
    bridge = Bridge(broker.url, lab, tmp_path).start()
    phone = bridge.device_id
    try:
        with controller(broker.url, db) as fleet:
            online(fleet, phone, "pi-1", timeout_s=60)
            path = tmp_path / "phones.yaml"
            path.write_text(json.dumps(CAMPAIGN))
            campaign_id = fleet.create_campaign(campaign_file.load(path))
            assert fleet.run(campaign_id) == "finished", [(j.key, j.error) for j in fleet.store.jobs(campaign_id)]
            results = fleet.store.results(campaign_id)
            skipped = [j for j in fleet.store.jobs(campaign_id) if j.state == "not_measured"]

            # unplugged, the phone goes offline by the agent's rules; plugged back, it is online again
            lab.device.unplug()
            wait_until(lambda: _state(fleet, phone) == "offline", 20, "the unplugged phone offline")
            lab.device.replug()
            wait_until(lambda: _state(fleet, phone) == "online", 30, "the phone back online")

        assert "Traceback" not in bridge.log() + linux.log()
        listed = edgeperf_here("devices", "--broker", broker.url, "--db", str(tmp_path / "d.db"), "--json")
        table = edgeperf_here("devices", "--broker", broker.url, "--db", str(tmp_path / "d.db"))
    finally:
        stop_all([linux, bridge])
        broker.stop()
        for stop in stops:
            stop()

    by_device: dict[str, list[Result]] = {}
    for result in results:
        by_device.setdefault(result.device.id, []).append(result)
    assert sorted(by_device) == sorted([phone, "pi-1"]) and (len(by_device[phone]), len(by_device["pi-1"])) == (2, 4)
    assert {r.mode for r in by_device[phone]} == {"performance"}
    # the phone's accuracy jobs were never sent: marked not measured, with the phone's own reason
    assert sorted(j.device_id for j in skipped) == [phone, phone] and {j.spec["mode"] for j in skipped} == {"accuracy"}
    assert all(j.error.startswith(f"{phone} measures SingleStream performance only, not SingleStream accuracy: a phone's "
                                  "tools") for j in skipped)
    status = edgeperf_here("campaign", "status", campaign_id, "--db", str(db))
    said = [line for line in status.stderr.splitlines() if line.startswith("not measured ")]
    assert status.returncode == 0 and len(said) == 2, status.stderr
    summary = json.loads(edgeperf_here("campaign", "status", campaign_id, "--db", str(db), "--json").stdout)
    assert summary["jobs"] == {"done": 6, "not_measured": 2} and summary["devices"][phone] == {"done": 2, "not_measured": 2}
    assert {r.engine for r in by_device[phone]} == {"benchmark_model", "onnxruntime_perf_test"}
    assert {r.engine for r in by_device["pi-1"]} == {"native"}
    assert {r.mode for r in by_device["pi-1"]} == {"performance", "accuracy"}
    for result in by_device[phone]:
        assert result.kpis.energy.source == "fuel-gauge" and result.kpis.energy.measured
        assert result.device.facts["soc"] == "gs201"
    assert all(r.kpis.energy.measured is False for r in by_device["pi-1"])  # the Linux VM's is an estimate, said so

    devices = {row["id"]: row for row in json.loads(listed.stdout)}
    facts = devices[phone]["info"]["facts"]
    assert (facts["board"], facts["soc"], facts["android_release"]) == ("Google Pixel 7", "gs201", "14")
    assert facts["abi"] == "arm64-v8a" and facts["arch"] == "aarch64"
    assert [c["cores"] for c in facts["cpu_clusters"]] == [[6, 7], [4, 5], [0, 1, 2, 3]]
    assert "android" in devices[phone]["tags"] and devices[phone]["info"]["installed"]["benchmark_model"].startswith(
        "benchmark_model unknown (sha256 ")
    assert table.returncode == 0 and "devices" in table.stdout
    wide = Console(width=400, record=True, file=io.StringIO())
    wide.print(tables.devices(list(devices.values())))  # the table `edgeperf devices` prints, at a width that needs no wrap
    assert "Google Pixel 7 (gs201, Android 14, arm64-v8a)" in wide.export_text()

    card = edgeperf_here("scorecard", campaign_id, "--db", str(db))
    assert card.returncode == 0 and "scorecard: phones" in card.stdout, card.stderr
    lines = render.markdown(views.scorecard(scorecard.build(results), "phones")).splitlines()  # one line per row
    runs = {(line.split("|")[1].strip(), line.split("|")[2].strip()): line.split("|")[4].strip()
            for line in lines if phone in line or "pi-1" in line}
    assert runs[(phone, "fmnist/int8.tflite (int8)")] == "SS perf (benchmark_model, not LoadGen)"
    assert runs[(phone, "fmnist/fp32.onnx (fp32)")] == "SS perf (onnxruntime_perf_test, not LoadGen)"
    assert runs[("pi-1", "fmnist/int8.tflite (int8)")] == "SS perf", runs


def test_a_phone_unplugged_mid_job_fails_that_attempt_with_its_reason_and_the_retry_runs_once_it_is_back(tmp_path):
    lab, stops = make_lab(tmp_path)
    tool = lab.toolbox.find("benchmark_model").phone_path
    real, calls = lab.device.commands[tool], []

    def unplugged_once(argv, device):
        calls.append(time.monotonic())
        if len(calls) == 1:
            threading.Timer(0.3, device.unplug).start()
            threading.Timer(2.5, device.replug).start()
        return real(argv, device)

    lab.device.commands[tool] = unplugged_once
    broker = Mosquitto(tmp_path).start()
    db = tmp_path / "c.db"
    bridge = Bridge(broker.url, lab, tmp_path).start()
    spec = CAMPAIGN | {"name": "unplugged", "power": None, "devices": {"tags": ["android"]},
                       "overrides": {"min_duration_s": 2.0},
                       "models": [{"name": "fmnist", "variants": [{"artifact": "zoo:fashion-mnist-cnn/int8.tflite"}]}]}
    try:
        with controller(broker.url, db) as fleet:
            online(fleet, bridge.device_id, timeout_s=60)
            path = tmp_path / "unplugged.yaml"
            path.write_text(json.dumps({k: v for k, v in spec.items() if v is not None}))
            campaign_id = fleet.create_campaign(campaign_file.load(path))
            assert fleet.run(campaign_id) == "finished", [(j.key, j.error) for j in fleet.store.jobs(campaign_id)]
            attempts = fleet.store.db.execute("SELECT attempt, state, reason FROM attempts ORDER BY attempt").fetchall()
            assert len(fleet.store.results(campaign_id)) == 1
        log = bridge.log()
    finally:
        stop_all([bridge])
        broker.stop()
        for stop in stops:
            stop()
    assert len(calls) == 2 and [a[0] for a in attempts] == [1, 2], attempts
    assert attempts[0][1] != "done" and "the output ends without the command's end marker" in attempts[0][2], attempts
    assert "Traceback" not in log


def test_the_bridge_refuses_bad_flags_in_one_line(tmp_path):
    env = os.environ | {"EDGEPERF_DATA_DIR": str(tmp_path)}
    for argv, fragment in ((["android"], "android needs --serial SERIAL"),
                           (["android", "--serial", "x", "--tools", str(tmp_path / "none")], "no such folder"),
                           (["android", "fetch", "benchmark_model"], "android fetch needs the tool's name, its URL"),
                           (["android", "--serial", "x", "--tools", str(tmp_path), "--phone-tools", "/data"], "not both")):
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "agent.cli", *argv], capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and fragment in lines[0], proc.stderr
        assert time.monotonic() - started < 30
