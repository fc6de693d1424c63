"""``edgeperf demo``: the whole system on one machine, offline, in well under two minutes.

It starts what a lab has — an MQTT broker (embedded), the controller's artifact server and two
agents as separate processes (one running models on one thread, one on two) — runs the
campaign in ``demo.yaml`` over the zoo's models and prints a scorecard per device. A demo that
measured nothing, or in which a job failed, says why in one line with the fix (the CLI exits 1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from agent import fleet_key
from agent.cli import run_command
from agent.errors import EdgeperfError
from controller.analysis import scorecard
from controller.cli import progress
from controller.fleet import campaign as campaign_file
from controller.fleet import session
from controller.fleet.broker import EmbeddedBroker
from controller.reports import render, views
from controller.store.database import Job

CAMPAIGN = Path(__file__).resolve().parent / "demo.yaml"
AGENTS = (("demo-1-thread", 1), ("demo-2-threads", 2))
AGENT_START_S = 60.0
# the runtimes demo.yaml's models need: (name, the extra that installs it), as the README's install lines
RUNTIMES = {"litert": ("LiteRT", "litert"), "onnxruntime": ("ONNX Runtime", "onnx")}


class DemoError(EdgeperfError):
    """A demo agent did not come up."""


def start_agent(broker_url: str, device_id: str, threads: int, data_dir: Path, key_file: Path) -> subprocess.Popen[bytes]:
    """One agent process, logging to a file in its data directory."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "agent.log").open("wb")
    cmd = run_command(broker_url, device_id, data_dir, "--tag", "demo", "--threads", str(threads), "--log-level", "warning",
                      "--fleet-key-file", str(key_file))
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def stop_agents(agents: list[subprocess.Popen[bytes]]) -> None:
    for agent in agents:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
    for agent in agents:
        try:
            agent.wait(30)
        except subprocess.TimeoutExpired:
            agent.kill()


def wait_online(fleet: Any, device_ids: list[str], agents: list[subprocess.Popen[bytes]], data: Path) -> None:
    deadline = time.monotonic() + AGENT_START_S
    while time.monotonic() < deadline:
        fleet.pump(wait_s=0.2)
        if all(fleet.devices.get(d) and fleet.devices[d].available for d in device_ids):
            return
        for device_id, agent in zip(device_ids, agents, strict=True):
            if agent.poll() is not None:
                raise DemoError(f"demo agent {device_id} exited ({agent.returncode}); see {data / device_id / 'agent.log'}")
    raise DemoError(f"demo agents did not come online within {AGENT_START_S:g} s")


@dataclass(frozen=True)
class Outcome:
    """Every result document, as stored, and why the run is not a success (None when it is)."""

    docs: list[dict[str, Any]]
    problem: str | None


def problem(jobs: list[Job], measured: int, installed: list[dict[str, Any]]) -> str | None:
    """One line naming what went wrong and the fix, or None when every job was measured.

    ``installed``: each demo agent's report of its runtimes. A runtime an agent lacks explains its
    jobs' failures and has a known fix; otherwise the agents' most common failure reason is the line.
    """
    failed = [j for j in jobs if j.state == "failed"]
    if measured and not failed:
        return None
    counted = f"{len(failed)} of {len(jobs)} jobs failed"
    what = f"the demo is incomplete: {counted}" if measured else f"the demo measured nothing ({counted})"
    missing = [runtime for runtime in RUNTIMES if any(not report.get(runtime) for report in installed)]
    if missing:
        names, extras = " and ".join(RUNTIMES[r][0] for r in missing), ",".join(RUNTIMES[r][1] for r in missing)
        return (f"{what}: the demo agents cannot import {names}, which the demo's models need; "
                f"install {'them' if len(missing) > 1 else 'it'}: pip install 'edgeperf[{extras}]' "
                f"(in a checkout: pip install -e '.[{extras}]')")
    reasons = Counter((j.error or "no reason given").removeprefix(f"{j.device_id}: ") for j in failed)
    if not reasons:
        return what
    (top, _), others = reasons.most_common(1)[0], len(reasons) - 1
    return f"{what}: {top}" + (f" (and {others} other reason{'s' if others > 1 else ''})" if others else "")


def run(console: Console, db: Path | None = None) -> Outcome:
    """Run the demo: every result document, as stored, and the problem if anything failed."""
    spec = campaign_file.load(CAMPAIGN)
    with tempfile.TemporaryDirectory(prefix="edgeperf-demo-") as tmp, EmbeddedBroker() as broker:
        data = Path(tmp)
        key_file = data / "fleet.key"  # the demo's own fleet: nothing is written outside its folder
        fleet_key.generate(key_file)
        options = session.FleetOptions(
            broker=broker.url, db=db or data / "demo.db", artifact_host="127.0.0.1", artifact_advertise="127.0.0.1",
            fleet_key_file=key_file,
        )
        agents = [start_agent(broker.url, device_id, threads, data / device_id, key_file) for device_id, threads in AGENTS]
        try:
            with session.fleet(options, artifacts=True, owner=True) as fleet:
                console.print(
                    f"broker {broker.url}, artifacts on {fleet.artifacts.url}, agents: "
                    + ", ".join(f"{d} ({t} thread{'s' if t > 1 else ''})" for d, t in AGENTS)
                )
                wait_online(fleet, [d for d, _ in AGENTS], agents, data)
                campaign_id = fleet.create_campaign(spec)
                started = time.monotonic()
                with Live(progress.view(fleet, campaign_id), console=console, refresh_per_second=4, transient=True) as live:
                    state = fleet.run(campaign_id, on_tick=lambda f, c: live.update(progress.view(f, c)))
                results, docs = fleet.store.results(campaign_id), fleet.store.documents(campaign_id)
                ids = [d for d, _ in AGENTS]
                installed = [d["info"]["installed"] for d in fleet.store.devices() if d["id"] in ids and "installed" in d["info"]]
                trouble = problem(fleet.store.jobs(campaign_id), len(docs), installed)
        finally:
            stop_agents(agents)
    console.print(
        f"campaign {campaign_id} {state} in {time.monotonic() - started:.0f} s: {len(docs)} results. Both agents "
        f"share this machine's {os.cpu_count()} cores, so their numbers disturb each other: real measurements "
        "run one agent per device."
    )
    for device_id, _ in AGENTS:
        rows = scorecard.build([r for r in results if r.device.id == device_id])
        console.print(render.rich_table(views.scorecard(rows, f"scorecard: {device_id}")))
    return Outcome(docs, trouble)
