"""``edgeperf demo``: the whole system on one machine, offline, in well under two minutes.

It starts what a lab has — an MQTT broker (embedded), the controller's artifact server and two
agents as separate processes (one running models on one thread, one on two) — runs the
campaign in ``demo.yaml`` over the zoo's models and prints a scorecard per device. A demo that
measured nothing, or in which a job failed, says why in one line with the fix (the CLI exits 1).
SIGTERM and SIGHUP end it as Ctrl-C does: agents stopped, its temporary folder removed; ``--db``
keeps its database. Its tables fit the terminal (80 columns included) by leaving out the least
telling columns, and it ends with the next commands to try.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from agent import fleet_key
from agent.cli import run_command
from agent.errors import EdgeperfError
from controller.analysis import scorecard
from controller.cli import progress
from controller.fleet import campaign as campaign_file
from controller.fleet import session
from controller.fleet.broker import EmbeddedBroker
from controller.reports import render, views
from controller.reports.views import View
from controller.store.database import Job

CAMPAIGN = Path(__file__).resolve().parent / "demo.yaml"
AGENTS = (("demo-1-thread", 1), ("demo-2-threads", 2))
AGENT_START_S = 60.0
# the runtimes demo.yaml's models need: (name, the extra that installs it), as the README's install lines
RUNTIMES = {"litert": ("LiteRT", "litert"), "onnxruntime": ("ONNX Runtime", "onnx")}
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
MODEL = "fashion-mnist-cnn"  # demo.yaml's one model: named in each table's title, not on every row
# scorecard columns left out, in this order, while a table is wider than the terminal
DROP_ORDER = ("device", "n", "runtime", "P macro", "R macro", "F1 macro", "ES ms", "p90 ms", "W", "inf/J", "mJ/inf", "RSS MB",
              "Δ fp32 pp", "p99 ms")


class DemoError(EdgeperfError):
    """A demo agent did not come up."""


class Stopped(BaseException):
    """SIGTERM or SIGHUP arrived. A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the
    way out swallows it and every ``finally`` (agents, temporary folder) runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise ``Stopped`` in the main thread, once: the cleanup they start is
    not interrupted by a second one."""

    def stop(signum: int, _frame: object) -> None:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Stopped(signum)

    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


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


def longest_words(view: View) -> list[int]:
    """Per column, its longest word: the narrowest it can be without breaking one."""
    return [max(len(word) for text in (view.headers[i], *(row[i] for row in view.rows)) for word in [*text.split(), ""])
            for i in range(len(view.headers))]


def min_width(view: View) -> int:
    """The narrowest width ``table(view)`` can be drawn in: each column as wide as its longest word, plus a border
    and a space either side per column."""
    words = longest_words(view)
    return sum(words) + 3 * len(words) + 1


def table(view: View, width: int) -> Table:
    """The rich table of ``view`` in ``width`` columns, laid out here: rich shrinks every column in proportion and
    splits words. Each column gets its longest word, then the room left goes to the columns that need the least
    of it to show their text whole."""
    out = render.rich_table(view)
    widths = longest_words(view)
    whole = [max(len(text) for text in (view.headers[i], *(row[i] for row in view.rows))) for i in range(len(widths))]
    room = max(0, width - min_width(view))
    for i in sorted(range(len(widths)), key=lambda n: whole[n] - widths[n]):
        grow = min(room, whole[i] - widths[i])
        widths[i], room = widths[i] + grow, room - grow
    for column, w in zip(out.columns, widths, strict=True):
        column.width = w
    return out


def fit(view: View, width: int) -> View:
    """``view`` without the columns of ``DROP_ORDER``, in that order, until it fits ``width`` without breaking a
    word; a note names what was left out."""
    dropped: list[str] = []
    for header in DROP_ORDER:
        if min_width(view) <= width:
            break
        if header in view.headers:
            i = view.headers.index(header)
            keep = [n for n in range(len(view.headers)) if n != i]
            view = View(view.title, tuple(view.headers[n] for n in keep), [tuple(row[n] for n in keep) for row in view.rows],
                        frozenset(keep.index(n) for n in view.numeric if n != i), view.notes)
            dropped.append(header)
    if not dropped:
        return view
    return View(view.title, view.headers, view.rows, view.numeric,
                (*view.notes, f"left out at {width} columns: {', '.join(dropped)} (edgeperf scorecard shows them)"))


def next_steps(db: Path | None) -> str:
    """The commands to try after the demo: over its database when it was kept, else first how to keep it."""
    keep = shlex.quote(str(db)) if db else "demo.db"
    commands = [f"edgeperf demo --db {keep}"] if db is None else []
    commands += [f"edgeperf scorecard latest --db {keep}", f"edgeperf report latest --format html -o demo.html --db {keep}",
                 f"edgeperf-agent bench zoo:{MODEL}/int8.tflite --scenario Server --profile quick"]
    head = "next, with the demo's results kept" if db is None else "next (every column: scorecard; plots: report)"
    return f"{head}:\n" + "\n".join(f"  {c}" for c in commands)


def run(console: Console, db: Path | None = None) -> Outcome:
    """Run the demo: every result document, as stored, and the problem if anything failed."""
    spec = campaign_file.load(CAMPAIGN)
    with stopped_by_signals(), tempfile.TemporaryDirectory(prefix="edgeperf-demo-") as tmp, EmbeddedBroker() as broker:
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
                    + ", ".join(f"{d} ({t} thread{'s' if t > 1 else ''})" for d, t in AGENTS), soft_wrap=False
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
        "run one agent per device.", soft_wrap=False
    )
    for device_id, _ in AGENTS:
        rows = scorecard.build([r for r in results if r.device.id == device_id])
        view = views.scorecard(rows, f"scorecard: {device_id}, {MODEL}")
        model = view.headers.index("model")
        short = [(*row[:model], row[model].removeprefix(f"{MODEL}/"), *row[model + 1:]) for row in view.rows]
        fitted = fit(View(view.title, view.headers, short, view.numeric, view.notes), console.width)
        console.print(table(fitted, console.width), soft_wrap=False)  # the CLI's console keeps lines whole by default
    console.print(next_steps(db), highlight=False, markup=False, soft_wrap=True)
    return Outcome(docs, trouble)
