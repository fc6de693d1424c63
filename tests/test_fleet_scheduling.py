"""The scheduler's decisions, driven by a scripted device speaking the protocol over a real broker."""

from __future__ import annotations

import hashlib
import http.client
import queue
import shutil
import textwrap
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

from agent import bench, fleet_key, zoo
from agent.contract import Artifact, Envelope, RuntimeOptions, Topics, decode
from agent.scenarios.settings import Scenario, for_profile, with_overrides
from agent.transport import BrokerUrl, Connection
from controller.fleet import campaign as campaign_file
from controller.fleet import session
from controller.fleet.broker import EmbeddedBroker
from tests.fleet_harness import campaign_file as write_campaign
from tests.fleet_harness import wait_until

TOPICS = Topics()


@pytest.fixture(scope="module")
def template():
    settings = with_overrides(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=50)
    return bench.run(bench.BenchRequest(model="zoo:fashion-mnist-cnn/int8.tflite", settings=settings,
                                        options=RuntimeOptions(threads=1), engine="native", warmup_runs=1))


class ScriptedDevice:
    """A device the test drives by hand: it only says what the test tells it to."""

    def __init__(self, url: str, device_id: str, key: bytes, heartbeat_s: float = 10.0) -> None:
        self.id, self.key, self.heartbeat_s, self.session = device_id, key, heartbeat_s, uuid.uuid4().hex[:16]
        self.conn = Connection(f"dev-{uuid.uuid4().hex[:6]}", BrokerUrl.parse(url),
                               subscriptions=[(TOPICS.device(device_id, "jobs"), 1), (TOPICS.device(device_id, "acks"), 1)])
        self.conn.start(wait_s=10)

    def say(self, kind: str, msg_type: str, data: dict, key: bytes | None = None) -> None:
        payload = Envelope(msg_type, self.id, data).encode(key or self.key)
        self.conn.publish(TOPICS.device(self.id, kind), payload, retain=kind == "status")

    def status(self, state: str, session: str | None = None) -> None:
        self.say("status", "status", {"state": state, "session": session or self.session, "heartbeat_s": self.heartbeat_s,
                                      "tags": ["t"], "agent_version": "test"})

    def next(self, fleet, campaign_id: str, msg_type: str, timeout_s: float = 10) -> Any:
        """Pump the controller until this device receives a ``msg_type`` message; its typed body."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            fleet.pump(0.02)
            with fleet.store.transaction():
                fleet.tick(campaign_id)
            try:
                message = self.conn.inbox.get(timeout=0.02)
            except queue.Empty:
                continue
            env = decode(TOPICS.parse(message.topic)[1], message.payload, self.key)
            if env.type == msg_type:
                return env.data
        pytest.fail(f"{self.id} got no {msg_type} within {timeout_s} s")


@pytest.fixture
def setup(tmp_path):
    with EmbeddedBroker() as broker:
        options = session.FleetOptions(broker=broker.url, db=tmp_path / "c.db", artifact_host="127.0.0.1",
                                       artifact_advertise="127.0.0.1", offline_grace_s=0.5, device_wait_s=1.5)
        with session.fleet(options, artifacts=True, owner=True) as fleet:
            fleet.accept_timeout_s = 0.5
            device = ScriptedDevice(broker.url, "d1", fleet.key)
            yield fleet, device, tmp_path
            device.conn.stop()


def start(fleet, tmp_path, **kwargs) -> str:
    spec = campaign_file.load(write_campaign(tmp_path / "s.yaml", variants=["int8.tflite"], scenarios=["SingleStream"],
                                             modes=["performance"], **kwargs))
    wait_until(lambda: "d1" in fleet.devices, 10, "the device heard", step=lambda: fleet.pump(0.05))
    return fleet.create_campaign(spec)


def test_jobs_wait_for_online_and_unanswered_jobs_are_resent_under_the_same_run_id(setup):
    fleet, device, tmp = setup
    device.status("busy")
    campaign_id = start(fleet, tmp, devices="{ids: [d1]}")
    for _ in range(10):
        fleet.pump(0.02)
        fleet.tick(campaign_id)
    assert fleet.store.jobs(campaign_id)[0].state == "pending"  # busy with something else: not sent
    device.status("online")
    first = device.next(fleet, campaign_id, "job")
    again = device.next(fleet, campaign_id, "job")  # nobody said "accepted": the same job comes back
    assert again.run_id == first.run_id and again.attempt == 1
    assert fleet.store.jobs(campaign_id)[0].resends >= 1


def test_a_late_result_of_a_lost_attempt_supersedes_the_rerun(setup, template):
    fleet, device, tmp = setup
    device.status("online")
    campaign_id = start(fleet, tmp, devices="{ids: [d1]}", retries=2)
    first = device.next(fleet, campaign_id, "job")
    device.say("events", "accepted", {"run_id": first.run_id})
    device.status("offline")  # the last will: mid-job
    wait_until(lambda: fleet.store.jobs(campaign_id)[0].state == "pending", 10, "the attempt given up",
               step=lambda: (fleet.pump(0.05), fleet.tick(campaign_id)))
    device.status("online")
    rerun = device.next(fleet, campaign_id, "job")
    assert rerun.run_id != first.run_id and rerun.attempt == 2
    device.say("results", "result", template | {"run_id": first.run_id, "device": {"id": "d1", "facts": {}}})
    cancel = device.next(fleet, campaign_id, "cancel")
    assert cancel.run_id == rerun.run_id
    ack = device.next(fleet, campaign_id, "ack")
    assert ack.run_ids == (first.run_id,)
    (job,) = fleet.store.jobs(campaign_id)
    assert job.state == "done" and [a["state"] for a in fleet.store.attempts(job.id)] == ["lost", "cancelled"]
    assert fleet.tick(campaign_id) == "finished"


def test_a_device_busy_with_another_controllers_job_costs_the_job_no_retry_and_is_waited_for(setup, template):
    fleet, device, tmp = setup
    device.status("online")
    campaign_id = start(fleet, tmp, devices="{ids: [d1]}", retries=0)
    first = device.next(fleet, campaign_id, "job")
    device.status("busy")  # a colleague's controller got its job there first
    device.say("events", "rejected", {"run_id": first.run_id, "reason": "busy with 0123abcd", "busy": True})
    deadline = time.monotonic() + 3 * fleet.device_wait_s  # busy, and heard: waited for, not "not online"
    while time.monotonic() < deadline:
        fleet.pump(0.05)
        fleet.tick(campaign_id)
    (job,) = fleet.store.jobs(campaign_id)
    assert job.state == "pending" and [a["state"] for a in fleet.store.attempts(job.id)] == ["busy"]
    device.status("online")
    second = device.next(fleet, campaign_id, "job")
    assert second.run_id != first.run_id and second.attempt == 2
    device.say("results", "result", template | {"run_id": second.run_id, "device": {"id": "d1", "facts": {}}})
    device.next(fleet, campaign_id, "ack")
    assert fleet.tick(campaign_id) == "finished"


@pytest.mark.parametrize("accepted", [False, True], ids=["job-lost", "result-lost"])
def test_a_job_or_answer_lost_on_the_way_goes_again_once_its_device_says_it_is_idle(setup, accepted):
    """A broker restart between publish and delivery, or a full broker queue: the device says it is idle
    while the controller waits for it. The job goes again under the same run id (the agent runs a new
    one, or re-sends the result it holds), long before the accept timeout or the agent's re-send timer."""
    fleet, device, tmp = setup
    fleet.accept_timeout_s = 60.0
    device.status("online")
    campaign_id = start(fleet, tmp, devices="{ids: [d1]}")
    first = device.next(fleet, campaign_id, "job")
    if accepted:
        device.say("events", "accepted", {"run_id": first.run_id})
        wait_until(lambda: fleet.store.jobs(campaign_id)[0].state == "running", 5, "the job running",
                   step=lambda: fleet.pump(0.05))
    device.status("online")  # idle, no job: what it was sent (or what it answered) never arrived
    started = time.monotonic()
    again = device.next(fleet, campaign_id, "job", timeout_s=15)
    assert again.run_id == first.run_id and time.monotonic() - started < fleet.accept_timeout_s / 2
    with pytest.raises(pytest.fail.Exception):  # once per status heard, not on every tick
        device.next(fleet, campaign_id, "job", timeout_s=2)


def test_a_device_that_never_comes_online_fails_its_jobs(setup):
    fleet, device, tmp = setup
    device.status("offline")
    campaign_id = start(fleet, tmp, devices="{ids: [d1, ghost]}")
    wait_until(lambda: fleet.tick(campaign_id) == "finished_with_failures", 10, "the campaign to give up",
               step=lambda: fleet.pump(0.1))
    assert fleet.store.campaign(campaign_id)["finished_at"] is not None
    jobs = {j.device_id: j for j in fleet.store.jobs(campaign_id)}
    assert jobs["ghost"].state == "failed" and "ghost was not online" in jobs["ghost"].error
    assert jobs["d1"].state == "failed"


def test_a_user_error_is_not_retried(setup):
    fleet, device, tmp = setup
    device.status("online")
    campaign_id = start(fleet, tmp, devices="{ids: [d1]}", retries=3)
    job = device.next(fleet, campaign_id, "job")
    device.say("events", "failed", {"run_id": job.run_id, "reason": "Core ML needs macOS", "retryable": False})
    ack = device.next(fleet, campaign_id, "ack")
    assert ack.run_ids == (job.run_id,)
    (stored,) = fleet.store.jobs(campaign_id)
    assert stored.state == "failed" and stored.attempts == 1 and "Core ML needs macOS" in stored.error


def head(artifact: Artifact) -> int:
    """HEAD the job's artifact URL with the job's token, as the agent's download does."""
    url = urlsplit(artifact.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("HEAD", url.path, headers={"Authorization": f"Bearer {artifact.token}"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_each_attempt_gets_its_own_artifact_token_and_loses_it_when_the_attempt_ends(setup, template):
    fleet, device, tmp = setup
    device.status("online")
    campaign_id = start(fleet, tmp, devices="{ids: [d1]}", retries=2)
    first = device.next(fleet, campaign_id, "job")
    again = device.next(fleet, campaign_id, "job")  # not accepted yet: the same attempt, re-sent with the same token
    assert again.run_id == first.run_id and again.artifact.token == first.artifact.token
    assert head(first.artifact) == 200
    device.say("events", "accepted", {"run_id": first.run_id})
    device.say("events", "failed", {"run_id": first.run_id, "reason": "worker exited with code -9", "retryable": True})
    rerun = device.next(fleet, campaign_id, "job")
    assert rerun.run_id != first.run_id and rerun.artifact.token != first.artifact.token
    assert head(first.artifact) == 403  # revoked when its attempt failed
    assert head(rerun.artifact) == 200
    device.say("results", "result", template | {"run_id": rerun.run_id, "device": {"id": "d1", "facts": {}}})
    device.next(fleet, campaign_id, "ack")
    assert head(rerun.artifact) == 403  # and this one when its result was stored
    assert fleet.tick(campaign_id) == "finished"


def test_cancelling_a_campaign_revokes_the_tokens_of_jobs_out_on_devices(setup):
    fleet, device, tmp = setup
    device.status("online")
    campaign_id = start(fleet, tmp, devices="{ids: [d1]}")
    job = device.next(fleet, campaign_id, "job")
    assert head(job.artifact) == 200
    assert fleet.cancel(campaign_id) == "cancelled"
    assert head(job.artifact) == 403


def test_a_silent_device_goes_stale_and_its_job_is_lost_and_sent_again_once_it_is_heard(setup):
    """No last will (a frozen device, a dropped message): missing heartbeats end the attempt all the same."""
    fleet, device, tmp = setup
    device.heartbeat_s = 0.3  # stale after 3 × 0.3 s without a status
    device.status("online")
    campaign_id = start(fleet, tmp, devices="{ids: [d1]}", retries=2)
    job = device.next(fleet, campaign_id, "job")
    device.say("events", "accepted", {"run_id": job.run_id})
    wait_until(lambda: fleet.store.jobs(campaign_id)[0].state == "pending", 10, "the attempt given up",
               step=lambda: (fleet.pump(0.05), fleet.tick(campaign_id)))
    (attempt,) = fleet.store.attempts(fleet.store.jobs(campaign_id)[0].id)
    assert attempt["state"] == "lost" and "stopped its heartbeat (every 0.3 s)" in attempt["reason"]
    assert fleet.devices["d1"].describe().startswith("stale (last said online")
    for _ in range(10):  # still stale: nothing is sent to it
        fleet.pump(0.02)
        fleet.tick(campaign_id)
    assert fleet.store.jobs(campaign_id)[0].state == "pending"
    device.status("online")  # a heartbeat again
    rerun = device.next(fleet, campaign_id, "job")
    assert rerun.run_id != job.run_id and rerun.attempt == 2


def test_a_retained_status_names_a_device_but_only_a_live_one_makes_it_available(tmp_path):
    """After a broker or controller restart a retained "online" can be hours old: the device shows as
    stale, and no job goes to it until it is heard."""
    with EmbeddedBroker() as broker:
        device = ScriptedDevice(broker.url, "d1", fleet_key.resolve(None))
        device.status("online")  # retained; this device does not answer the controller's announce
        options = session.FleetOptions(broker=broker.url, db=tmp_path / "c.db", artifact_host="127.0.0.1",
                                       artifact_advertise="127.0.0.1", device_wait_s=60)
        with session.fleet(options, artifacts=True, owner=True) as fleet:
            wait_until(lambda: "d1" in fleet.devices, 10, "the retained status", step=lambda: fleet.pump(0.05))
            view = fleet.devices["d1"]
            assert view.state == "online" and not view.available
            assert view.describe() == "stale (last said online; not heard since this controller connected)"
            campaign_id = start(fleet, tmp_path, devices="{ids: [d1]}")
            for _ in range(10):
                fleet.pump(0.02)
                fleet.tick(campaign_id)
            assert fleet.store.jobs(campaign_id)[0].state == "pending"
            device.status("online")  # heard live
            assert device.next(fleet, campaign_id, "job").controller == fleet.controller_id
        device.conn.stop()


def test_the_late_will_of_an_earlier_agent_run_leaves_the_current_one_online(setup):
    fleet, device, _ = setup
    device.status("online")
    device.status("offline", session="0" * 16)  # the will of the agent process before this one, delivered late
    device.say("events", "progress", {"run_id": "r", "phase": "idle"})  # a marker: both statuses were handled before it
    wait_until(lambda: fleet.devices.get("d1") and fleet.devices["d1"].phase == "idle", 10, "the marker",
               step=lambda: fleet.pump(0.05))
    assert fleet.devices["d1"].state == "online" and fleet.devices["d1"].available
    device.status("offline")  # this run's own will
    wait_until(lambda: fleet.devices["d1"].state == "offline", 10, "offline", step=lambda: fleet.pump(0.05))


def test_results_of_runs_this_database_never_issued_and_listeners_store_and_ack_nothing(setup, template, tmp_path):
    """A colleague's controller, `edgeperf devices` or a stranger never take a result away from its owner."""
    fleet, device, tmp = setup
    device.status("online")
    campaign_id = start(fleet, tmp, devices="{ids: [d1]}")
    job = device.next(fleet, campaign_id, "job")
    options = session.FleetOptions(broker=str(fleet.conn.broker), db=tmp / "c.db")
    with session.fleet(options) as listener:  # as `edgeperf devices` opens it, on the owner's own database
        foreign = uuid.uuid4().hex
        device.say("results", "result", template | {"run_id": foreign, "device": {"id": "d1", "facts": {}}})
        device.say("results", "result", template | {"run_id": job.run_id, "device": {"id": "d1", "facts": {}}})
        device.say("events", "failed", {"run_id": uuid.uuid4().hex, "reason": "someone else's"})
        wait_until(lambda: listener.counters.not_ours >= 3, 10, "the listener to hear all three",
                   step=lambda: listener.pump(0.05))
        listener.pump(0.3)
        assert listener.store.result_count() == 0
    wait_until(lambda: fleet.counters.not_ours >= 2 and fleet.counters.results_stored == 1, 10, "the owner",
               step=lambda: fleet.pump(0.05))
    ack = device.next(fleet, campaign_id, "ack")
    assert ack.run_ids == (job.run_id,) and ack.controller == fleet.controller_id  # its own run only, from the owner
    assert device.conn.inbox.empty()  # no other ack, from either
    assert fleet.store.result_count() == 1


def test_messages_not_signed_with_the_fleet_key_are_dropped(setup):
    fleet, device, _ = setup
    intruder = ScriptedDevice(str(fleet.conn.broker), "intruder", bytes(32))
    intruder.status("online")
    device.status("online")
    wait_until(lambda: "d1" in fleet.devices, 10, "the real device", step=lambda: fleet.pump(0.05))
    fleet.pump(0.3)
    assert "intruder" not in fleet.devices and fleet.store.devices()[0]["id"] == "d1"
    assert any("another fleet key" in reason for _, reason in fleet.counters.drops.by_reason)
    intruder.conn.stop()


def test_a_model_file_changed_after_the_campaign_started_fails_its_jobs_with_that_reason(setup):
    """The campaign pins each file's sha256 when it starts: an edited file (before a resume, or mid-campaign)
    is never measured under the same name, so a scorecard row never pools two different models."""
    fleet, device, tmp = setup
    model = tmp / "model.tflite"
    shutil.copy(zoo.resolve("zoo:fashion-mnist-cnn/int8.tflite").path, model)
    spec = campaign_file.loads(textwrap.dedent("""\
        name: pinned
        profile: smoke
        devices: {ids: [d1]}
        models:
          - name: m
            variants:
              - artifact: model.tflite
        """), str(tmp / "pinned.yaml"), tmp)
    device.status("busy")  # heard, but not free yet
    wait_until(lambda: "d1" in fleet.devices, 10, "the device heard", step=lambda: fleet.pump(0.05))
    campaign_id = fleet.create_campaign(spec)
    assert fleet.store.campaign(campaign_id)["spec"]["pins"] == {str(model): hashlib.sha256(model.read_bytes()).hexdigest()}
    model.write_bytes(model.read_bytes() + b"\0")  # someone rebuilt the model meanwhile
    device.status("online")
    wait_until(lambda: fleet.tick(campaign_id) == "finished_with_failures", 10, "the job failed",
               step=lambda: fleet.pump(0.05))
    (job,) = fleet.store.jobs(campaign_id)
    assert job.attempts == 0 and f"model file {model} changed since the campaign started" in job.error
    assert "start a new campaign" in job.error
