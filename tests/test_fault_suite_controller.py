"""The fault suite, part 2: faults of the controller itself, run as ``edgeperf campaign run`` /
``campaign resume`` processes (killed, frozen, restarted around an agent restart, and a second
controller beside it), judged by the same audit as part 1 (tests/test_fault_suite.py)."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.fault_lab import Lab, audit, stored
from tests.fleet_harness import wait_until

pytestmark = pytest.mark.slow


def test_controller_killed_then_resumed(tmp_path):
    with Lab(tmp_path) as lab:
        # jobs that were out keep running meanwhile; their results wait in the agents' outboxes
        summary, ended = lab.killed_then_resumed(3, lambda: time.sleep(2.0))
        assert summary["state"] == "finished" and summary["failed"] == []
        result = audit(lab.db, summary["id"], ended)
        print(f"controller SIGKILL then resume: {result.summary()}")
        assert result.problems() == [], (result.summary(), lab.logs())


def test_controller_frozen_for_30_s_with_a_full_broker_queue(tmp_path):
    # One message in flight and two queued per client: what the agents publish while the controller
    # is stopped overflows at once, and mosquitto drops it (heartbeats, events, results).
    with Lab(tmp_path, broker_settings="max_inflight_messages 1\nmax_queued_messages 2\n") as lab:
        run = lab.cli("campaign", "run", str(lab.spec), "--json")
        wait_until(lambda: stored(lab.db) >= 2 or run.poll() is not None, 120, "two results before freezing the controller")
        assert run.poll() is None, run.communicate()[1][-3000:]
        run.send_signal(signal.SIGSTOP)
        time.sleep(30)
        run.send_signal(signal.SIGCONT)
        ended = time.time()
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, (err[-3000:], lab.logs())
        summary = json.loads(out)
        result = audit(lab.db, summary["id"], ended)
        print(f"controller SIGSTOP 30 s, full queue: {result.summary()}")
        assert result.problems() == [], (result.summary(), err[-3000:], lab.logs())
        # Two heartbeats per agent alone overflow one in flight and two queued; mosquitto logs the first drop
        # of each episode (an episode may begin before the freeze, when the controller is merely slow).
        log = (tmp_path / "mosquitto.log").read_text()
        assert "Outgoing messages are being dropped for client edgeperf-controller" in log, "the queue never filled"
        assert "did not run for" in err, "the controller did not notice its own pause"


def test_an_agent_restarted_while_the_controller_is_down(tmp_path):
    with Lab(tmp_path) as lab:
        def restart_pi_a() -> None:
            lab.agents["pi-a"].kill()  # mid-job or between jobs: its outbox and job records survive on disk
            lab.agents["pi-a"].start()
            time.sleep(3)

        summary, ended = lab.killed_then_resumed(2, restart_pi_a)
        result = audit(lab.db, summary["id"], ended)
        print(f"agent restarted while the controller was down: {result.summary()}")
        assert result.problems() == [], (result.summary(), lab.logs())


def test_a_second_controller_runs_its_own_campaign_on_the_same_devices(tmp_path):
    # two jobs a device per campaign: both campaigns still queue on the same two agents at once
    with Lab(tmp_path, jobs_per_device=2) as lab:
        other_db = tmp_path / "colleague.db"
        runs = [lab.cli("campaign", "run", str(lab.spec), "--json", db=db) for db in (lab.db, other_db)]
        outs = [run.communicate(timeout=400) for run in runs]
        for run, (_, err) in zip(runs, outs, strict=True):
            assert run.returncode == 0, (err[-3000:], lab.logs())
        for db, (out, _) in zip((lab.db, other_db), outs, strict=True):
            result = audit(db, json.loads(out)["id"], None)
            print(f"second controller, {db.name}: {result.summary()}")
            assert result.problems() == [], result.summary()
