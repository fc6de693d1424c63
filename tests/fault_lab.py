"""The fault suite's lab: mosquitto, two agent processes and a campaign, and the audit that
judges a run the way the acceptance counts it.

Everything runs with the product's defaults (heartbeat 10 s, results re-sent after 30 s,
offline grace 10 s), so a recovery time measured here is the one a lab would see, not one
bought with test-only timers. The audit reads the controller's database directly: results lost
(a job not done), stored twice (a job with two results), from the wrong campaign (a result that
is not the answer of an attempt of its own job, campaign and device), and for each device the
time from the end of the fault to its next dispatch or result.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from controller.fleet import campaign as campaign_spec
from controller.fleet import session
from controller.fleet.scheduler import Fleet
from tests.fleet_harness import AgentProcess, Mosquitto, campaign_file, wait_until

DEVICES = ("pi-a", "pi-b")
BACK_TO_WORK_S = 10.0  # the acceptance bound: every device back to work this soon after a fault ends
DEFAULTS = {"EDGEPERF_RESEND_AFTER_S": "30"}  # the product's default (fleet_harness shortens it for other tests)


@dataclass
class Audit:
    """What a campaign's database says after a fault."""

    campaign: str
    jobs: int
    results: int
    not_done: list[str]
    twice: list[str]
    wrong: list[str]
    back_to_work_s: dict[str, float | None]
    done_before: set[str]  # devices whose every job had ended before the fault did: nothing to go back to

    def problems(self, bound_s: float = BACK_TO_WORK_S) -> list[str]:
        """Every way this run missed the acceptance; empty when it met it."""
        out = [f"not done: {j}" for j in self.not_done] + [f"stored twice: {j}" for j in self.twice]
        out += [f"wrong campaign/job/device: {r}" for r in self.wrong]
        out += [f"{d} not back to work within {bound_s:g} s of the fault's end ({s})"
                for d, s in self.back_to_work_s.items() if d not in self.done_before and (s is None or s > bound_s)]
        return out

    def summary(self) -> str:
        back = ", ".join(f"{d} {s:.1f} s" if s is not None else f"{d} {'had no work left' if d in self.done_before else 'never'}"
                         for d, s in self.back_to_work_s.items())
        return (f"{self.results}/{self.jobs} results, {len(self.not_done)} lost, {len(self.twice)} twice, "
                f"{len(self.wrong)} wrong; back to work: {back}")


def audit(db: Path, campaign_id: str, fault_end: float | None) -> Audit:
    """Judge ``campaign_id`` in ``db``; ``fault_end`` (wall clock) is when the fault was lifted."""
    con = sqlite3.connect(db)
    try:
        one = lambda sql, *args: con.execute(sql, args).fetchall()  # noqa: E731
        jobs = one("SELECT COUNT(*) FROM jobs WHERE campaign_id = ?", campaign_id)[0][0]
        not_done = [f"{k}: {s} ({e})" for k, s, e in one(
            "SELECT key, state, error FROM jobs WHERE campaign_id = ? AND state != 'done'", campaign_id)]
        twice = [k for (k,) in one(
            "SELECT jobs.key FROM results JOIN jobs ON results.job_id = jobs.id WHERE jobs.campaign_id = ? "
            "GROUP BY results.job_id HAVING COUNT(*) > 1", campaign_id)]
        wrong = [f"{r} ({d})" for r, d in one(
            "SELECT results.run_id, results.device_id FROM results LEFT JOIN attempts ON attempts.run_id = results.run_id "
            "LEFT JOIN jobs ON jobs.id = attempts.job_id WHERE results.job_id IS NULL OR attempts.run_id IS NULL "
            "OR results.job_id IS NOT attempts.job_id OR results.campaign_id IS NOT jobs.campaign_id "
            "OR results.device_id != jobs.device_id")]
        results = one("SELECT COUNT(*) FROM results WHERE campaign_id = ?", campaign_id)[0][0]
        back: dict[str, float | None] = {}
        done_before: set[str] = set()
        for (device,) in one("SELECT DISTINCT device_id FROM jobs WHERE campaign_id = ? ORDER BY device_id", campaign_id):
            if fault_end is None:
                continue
            firsts = one(
                "SELECT MIN(attempts.started_at) FROM attempts JOIN jobs ON jobs.id = attempts.job_id "
                "WHERE jobs.campaign_id = ? AND jobs.device_id = ? AND attempts.started_at >= ? "
                "UNION ALL SELECT MIN(received_at) FROM results WHERE campaign_id = ? AND device_id = ? AND received_at >= ?",
                campaign_id, device, fault_end, campaign_id, device, fault_end)
            times = [t for (t,) in firsts if t is not None]
            back[device] = min(times) - fault_end if times else None
            if one("SELECT COUNT(*) FROM jobs WHERE campaign_id = ? AND device_id = ? AND NOT finished_at < ?",
                   campaign_id, device, fault_end)[0][0] == 0:
                done_before.add(device)
        return Audit(campaign_id, jobs, results, not_done, twice, wrong, back, done_before)
    finally:
        con.close()


def stored(db: Path, campaign_id: str | None = None) -> int:
    """Results in ``db`` (of one campaign), read without opening the controller's store."""
    if not db.exists():
        return 0
    con = sqlite3.connect(db)
    try:
        sql, args = ("SELECT COUNT(*) FROM results", ()) if campaign_id is None else (
            "SELECT COUNT(*) FROM results WHERE campaign_id = ?", (campaign_id,))
        return con.execute(sql, args).fetchone()[0]
    except sqlite3.OperationalError:  # the controller has not created its tables yet
        return 0
    finally:
        con.close()


class Lab:
    """A broker, two agents and a campaign file in ``workdir``; the controller is opened by the test."""

    def __init__(self, workdir: Path, *, broker_settings: str = "", persistence: bool = False,
                 agent_env: dict[str, dict[str, str]] | None = None, jobs_per_device: int = 4,
                 min_duration_s: float = 0.2) -> None:
        self.workdir = workdir
        self.broker = Mosquitto(workdir)
        self.broker.write_config("allow_anonymous true\n" + broker_settings, persistence=persistence)
        self.agents = {d: AgentProcess(self.broker.url, d, workdir, env=DEFAULTS | (agent_env or {}).get(d, {}))
                       for d in DEVICES}
        self.spec = campaign_file(workdir / "faults.yaml", variants=["int8.tflite"], scenarios=["SingleStream"],
                                  modes=["performance"], repeats=jobs_per_device, min_duration_s=min_duration_s)
        self.db = workdir / "controller.db"

    def __enter__(self) -> Lab:
        self.broker.start()
        for agent in self.agents.values():
            agent.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for agent in self.agents.values():
            if agent.alive():
                agent.terminate()
        self.broker.stop()

    def options(self, db: Path | None = None) -> session.FleetOptions:
        return session.FleetOptions(broker=self.broker.url, db=db or self.db, artifact_host="127.0.0.1",
                                    artifact_advertise="127.0.0.1")

    @contextmanager
    def controller(self) -> Iterator[tuple[Fleet, str]]:
        """The campaign's controller in this process, every device heard, the campaign created."""
        with session.fleet(self.options(), artifacts=True, owner=True) as fleet:
            wait_until(lambda: all(d in fleet.devices and fleet.devices[d].available for d in DEVICES), 60,
                       "both agents online", step=lambda: fleet.pump(0.1))
            yield fleet, fleet.create_campaign(campaign_spec.load(self.spec))

    def cli(self, *args: str, db: Path | None = None) -> subprocess.Popen[str]:
        """``edgeperf ARGS`` as its own process, on this lab's broker and database."""
        common = ("--broker", self.broker.url, "--db", str(db or self.db), "--artifact-host", "127.0.0.1",
                  "--artifact-advertise", "127.0.0.1")
        return subprocess.Popen([sys.executable, "-c", "from controller.cli import main; main()", *args, *common],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def killed_then_resumed(self, after_results: int, while_down: Callable[[], object]) -> tuple[dict, float]:
        """Run the campaign as its own process, SIGKILL it once ``after_results`` results are stored, do
        ``while_down``, then ``campaign resume``: resume's JSON summary, and when it started (the fault's end)."""
        run = self.cli("campaign", "run", str(self.spec), "--json")
        wait_until(lambda: stored(self.db) >= after_results, 120, f"{after_results} results before killing the controller")
        run.kill()
        run.communicate(timeout=10)
        while_down()
        ended = time.time()
        resumed = self.cli("campaign", "resume", "latest", "--json")
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, (err[-3000:], self.logs())
        return json.loads(out), ended

    def logs(self) -> str:
        """The tail of every agent's log, for a failing assertion's message."""
        return "\n".join(f"--- {d}\n{a.log()[-3000:]}" for d, a in self.agents.items())


class Fault(threading.Thread):
    """Runs a fault in the background while the controller keeps working; ``ended`` is when it was lifted."""

    def __init__(self, inject: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.inject = inject
        self.ended: float | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.inject()
        except Exception as exc:  # reported by the test, not lost in a thread
            self.error = exc
        self.ended = time.time()


def run_with_fault(lab: Lab, fleet: Fleet, campaign_id: str, inject: Callable[[], object], after_results: int = 2) -> Fault:
    """Run the campaign to its end, starting ``inject`` once ``after_results`` results are stored."""
    fault = Fault(inject)

    def start(f, c) -> None:
        if not fault.is_alive() and fault.ended is None and f.store.result_count(c) >= after_results:
            fault.start()

    state = fleet.run(campaign_id, on_tick=start)
    fault.join(120)
    assert fault.error is None, fault.error
    assert fault.ended is not None, "the campaign ended before the fault was injected"
    assert state == "finished", (state, fleet.notices[-5:], lab.logs())
    return fault
