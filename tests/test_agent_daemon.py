"""The agent daemon's promises: retained presence, a last will, clean SIGTERM, nothing lost, TLS and passwords,
artifacts only from the controller's origin, and secrets in no log, file or message."""

from __future__ import annotations

import hashlib
import queue
import subprocess
import tempfile
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent import fleet_key
from agent.contract import TOPICS as TOPIC_TABLE
from agent.contract import Info, Topics, decode
from agent.outbox import Outbox
from agent.transport import BrokerUrl, Connection, TlsFiles
from controller.provisioning.pki import Pki
from tests.fleet_harness import AgentProcess, Mosquitto, wait_until

pytestmark = pytest.mark.slow
TOPICS = Topics()
TOPICS_BY_SIDE = {kind: side for kind, (_, _, side) in TOPIC_TABLE.items()}


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()


class Watcher:
    """A plain subscriber that remembers the last status/info it saw per device."""

    def __init__(self, url: str, tls: TlsFiles | None = None) -> None:
        self.conn = Connection(
            f"watch-{uuid.uuid4().hex[:6]}",
            BrokerUrl.parse(url),
            tls=tls,
            subscriptions=[(TOPICS.all_devices(k), 1) for k in ("status", "info", "events")],
        )
        self.conn.start(wait_s=10)
        self.last: dict[tuple[str, str], Any] = {}  # the typed bodies (contract.Status, Info, Progress, ...)
        self.retained: dict[tuple[str, str], bool] = {}

    def drain(self) -> None:
        try:
            message = self.conn.inbox.get(timeout=0.1)
        except queue.Empty:
            return
        device, kind = TOPICS.parse(message.topic)
        env = decode(kind, message.payload, fleet_key.resolve(None))
        key = (device, env.type if kind == "events" else kind)
        self.last[key], self.retained[key] = env.data, message.retain

    def state(self, device: str) -> str | None:
        status = self.last.get((device, "status"))
        return status.state if status else None


def test_presence_is_retained_and_sigterm_publishes_offline(tmp_path, mosquitto):
    agent = AgentProcess(mosquitto.url, "pi-a", tmp_path, "--tag", "rpi5").start()
    first = Watcher(mosquitto.url)
    wait_until(lambda: first.state("pi-a") == "online" and ("pi-a", "info") in first.last, 30, "online", step=first.drain)
    first.conn.stop()
    late = Watcher(mosquitto.url)  # subscribes after the fact: retained messages bring it up to date
    wait_until(lambda: ("pi-a", "info") in late.last and late.state("pi-a") == "online", 10, "retained info", step=late.drain)
    assert late.retained[("pi-a", "status")] and late.retained[("pi-a", "info")]
    info = late.last[("pi-a", "info")]
    assert isinstance(info, Info) and info.tags == ("rpi5",) and info.facts["os"] and info.installed["litert"]
    assert agent.terminate() == 0
    wait_until(lambda: late.state("pi-a") == "offline", 10, "offline on SIGTERM", step=late.drain)
    assert "agent pi-a stopped" in agent.log()
    late.conn.stop()


def test_sigkill_fires_the_last_will(tmp_path, mosquitto):
    agent = AgentProcess(mosquitto.url, "pi-b", tmp_path).start()
    watcher = Watcher(mosquitto.url)
    wait_until(lambda: watcher.state("pi-b") == "online", 30, "online", step=watcher.drain)
    agent.kill()
    wait_until(lambda: watcher.state("pi-b") == "offline", 10, "the will", step=watcher.drain)
    assert "stopped" not in agent.log()  # nobody said goodbye: the broker did
    watcher.conn.stop()


def test_sigterm_mid_job_records_the_failure_and_delivers_it_after_restart(tmp_path, mosquitto):
    from agent import zoo
    from agent.contract import Envelope
    from controller.fleet.artifact_server import ArtifactServer

    agent = AgentProcess(mosquitto.url, "pi-c", tmp_path).start()
    watcher = Watcher(mosquitto.url)
    with ArtifactServer("127.0.0.1") as server:
        wait_until(lambda: watcher.state("pi-c") == "online", 30, "online", step=watcher.drain)
        job = {
            "run_id": "long-job",
            "scenario": "SingleStream",
            "mode": "performance",
            "profile": "smoke",
            "dataset": "synthetic",
            "overrides": {"min_duration_s": 60},
            "timeout_s": 120,
            "artifact": server.grant(server.add(zoo.resolve("zoo:fashion-mnist-cnn/int8.onnx").path), 300),
            "controller": "controller-test",
        }
        watcher.conn.publish(TOPICS.device("pi-c", "jobs"), Envelope("job", "pi-c", job).encode(fleet_key.resolve(None)))
        wait_until(
            lambda: getattr(watcher.last.get(("pi-c", "progress")), "phase", None) == "running",
            60,
            "the job running",
            step=watcher.drain,
        )
        assert agent.terminate() == 0
    with Outbox(agent.data_dir / "outbox.sqlite") as outbox:
        (entry,) = outbox.pending()
        assert entry.run_id == "long-job" and b"SIGTERM" in entry.payload
    wait_until(lambda: watcher.state("pi-c") == "offline", 10, "offline", step=watcher.drain)
    while not watcher.conn.inbox.empty():
        watcher.drain()
    watcher.last.pop(("pi-c", "failed"), None)
    agent.start()  # the failure is re-sent on connect, until a controller acks it
    wait_until(lambda: ("pi-c", "failed") in watcher.last, 30, "the failure re-sent", step=watcher.drain)
    assert "SIGTERM" in watcher.last[("pi-c", "failed")].reason
    assert agent.terminate() == 0
    watcher.conn.stop()


def test_tls_with_client_certificates(tmp_path):
    pki = Pki.init(tmp_path / "pki", ["127.0.0.1"], ["pi-tls"])
    other = Pki.init(tmp_path / "other-pki", ["127.0.0.1"], [])
    server_cert, server_key = pki.broker_files
    client_cert, client_key = pki.device_files("pi-tls")
    broker = Mosquitto(tmp_path)
    broker.write_config(
        f"cafile {pki.ca_file}\ncertfile {server_cert}\nkeyfile {server_key}\n"
        "require_certificate true\nallow_anonymous true\n"
    )
    broker.start()
    url = f"mqtts://127.0.0.1:{broker.port}"
    tls = TlsFiles(pki.ca_file, *pki.controller_files)
    try:
        agent = AgentProcess(
            url,
            "pi-tls",
            tmp_path,
            "--ca-file",
            str(pki.ca_file),
            "--cert-file",
            str(client_cert),
            "--key-file",
            str(client_key),
        ).start()
        watcher = Watcher(url, tls)
        wait_until(lambda: watcher.state("pi-tls") == "online", 30, "online over TLS", step=watcher.drain)
        assert agent.terminate() == 0
        watcher.conn.stop()
        stranger = AgentProcess(url, "pi-stranger", tmp_path, "--ca-file", str(other.ca_file)).start()
        refused = f"the broker's certificate is not signed by the CA in {other.ca_file}"
        wait_until(lambda: refused in stranger.log(), 20, "the wrong CA refused")
        assert stranger.terminate() == 0
    finally:
        broker.stop()


def test_username_and_password(tmp_path):
    broker = Mosquitto(tmp_path)
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "lab", "s3cret"], check=True, capture_output=True)
    broker.write_config(f"allow_anonymous false\npassword_file {passwords}\n")
    broker.start()
    url = f"mqtt://lab@127.0.0.1:{broker.port}"
    try:
        agent = AgentProcess(url, "pi-pw", tmp_path, env={"EDGEPERF_PASSWORD": "s3cret"}).start()
        watcher = Watcher(f"mqtt://lab:s3cret@127.0.0.1:{broker.port}")
        wait_until(lambda: watcher.state("pi-pw") == "online", 30, "online with a password", step=watcher.drain)
        assert agent.terminate() == 0 and "s3cret" not in agent.log()
        watcher.conn.stop()
        wrong = AgentProcess(url, "pi-wrong", tmp_path, env={"EDGEPERF_PASSWORD": "guess"}).start()
        wait_until(lambda: "refused the connection" in wrong.log(), 20, "a wrong password refused")
        assert wrong.terminate() == 0 and "guess" not in wrong.log()
    finally:
        broker.stop()


class Recorder:
    """Every message on one device's topics, raw, for looking for what must not be there."""

    def __init__(self, url: str, device: str) -> None:
        everything = [(f"{TOPICS.prefix}/devices/{device}/#", 1)]
        self.conn = Connection(f"rec-{uuid.uuid4().hex[:6]}", BrokerUrl.parse(url), subscriptions=everything)
        self.conn.start(wait_s=10)
        self.messages: list[tuple[str, bytes]] = []
        self.events: dict[str, list[tuple[str, Any]]] = {}  # run id -> (type, typed body)

    def drain(self) -> None:
        try:
            message = self.conn.inbox.get(timeout=0.1)
        except queue.Empty:
            return
        self.messages.append((message.topic, message.payload))
        kind = TOPICS.parse(message.topic)[1]
        if kind in ("events", "results"):
            env = decode(kind, message.payload, fleet_key.resolve(None))
            self.events.setdefault(env.data.run_id, []).append((env.type, env.data))

    def state(self) -> str | None:
        for topic, payload in reversed(self.messages):
            if topic.endswith("/status"):
                return decode("status", payload, fleet_key.resolve(None)).data.state
        return None

    def terminal(self, run_id: str) -> tuple[str, Any] | None:
        return next(((t, d) for t, d in self.events.get(run_id, []) if t in ("result", "failed", "rejected", "cancelled")), None)


def publish_job(rec: Recorder, device: str, job: dict) -> tuple[str, Any]:
    from agent.contract import Envelope

    wait_until(lambda: rec.state() == "online", 30, f"{device} idle", step=rec.drain)
    rec.conn.publish(TOPICS.device(device, "jobs"), Envelope("job", device, job).encode(fleet_key.resolve(None)))
    wait_until(lambda: rec.terminal(job["run_id"]) is not None, 120, f"{job['run_id']} answered", step=rec.drain)
    return rec.terminal(job["run_id"])


def smoke_job(run_id: str, artifact: dict) -> dict:
    return {
        "run_id": run_id,
        "scenario": "SingleStream",
        "mode": "performance",
        "profile": "smoke",
        "dataset": "synthetic",
        "overrides": {"min_duration_s": 0.2},
        "timeout_s": 120,
        "artifact": artifact,
        "controller": "controller-test",
    }


def test_secrets_appear_in_no_log_file_or_message_and_job_fields_reach_no_shell(tmp_path):
    """Broker password and artifact token, with the agent at debug level, through a whole job."""
    from agent import zoo
    from controller.fleet.artifact_server import ArtifactServer

    # a short absolute path: the hostile model name repeats it three times within the contract's 256 characters
    password, marker = "pw-" + uuid.uuid4().hex, Path(tempfile.mkdtemp(prefix="ep-")) / "pwned"
    broker = Mosquitto(tmp_path)
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "lab", password], check=True, capture_output=True)
    broker.write_config(f"allow_anonymous false\npassword_file {passwords}\n")
    broker.start()
    agent = AgentProcess(
        f"mqtt://lab@127.0.0.1:{broker.port}", "pi-s", tmp_path, "--log-level", "debug", env={"EDGEPERF_PASSWORD": password}
    ).start()
    rec = Recorder(f"mqtt://lab:{password}@127.0.0.1:{broker.port}", "pi-s")
    try:
        with ArtifactServer("127.0.0.1") as server:
            artifact = server.grant(server.add(zoo.resolve("zoo:fashion-mnist-cnn/int8.tflite").path), 300)
            hostile = f"fmnist; touch {marker} $(touch {marker}) `touch {marker}`"
            job = smoke_job("secret-run", artifact) | {"model_name": hostile, "key": hostile, "campaign": hostile}
            kind, doc = publish_job(rec, "pi-s", job)
            assert kind == "result", doc
            assert server.request_count == 1  # the token opened the download
        assert doc.model.name == hostile and doc.job.key == hostile  # carried as data, verbatim
        assert not marker.exists()
        assert agent.terminate() == 0
        while not rec.conn.inbox.empty():
            rec.drain()
    finally:
        rec.conn.stop()
        broker.stop()
    log = agent.log()
    assert " DEBUG " in log and "secret-run" in log  # the level the test asked for, and the job went through it
    token = artifact["token"]
    assert password not in log and token not in log
    published = [(t, p) for t, p in rec.messages if TOPICS_BY_SIDE[TOPICS.parse(t)[1]] == "agent"]  # not our job message
    assert {TOPICS.parse(t)[1] for t, _ in published} == {"status", "info", "events", "results", "telemetry"}
    leaked = [topic for topic, payload in published if password.encode() in payload or token.encode() in payload]
    assert leaked == []
    files = [p for p in agent.data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "job.json" for p in files) and any(p.name == "outbox.sqlite" for p in files)
    assert [p for p in files if password.encode() in p.read_bytes() or token.encode() in p.read_bytes()] == []


def test_a_foreign_artifact_url_and_an_oversized_model_fail_before_any_request(tmp_path, mosquitto):
    from agent import zoo
    from controller.fleet.artifact_server import ArtifactServer
    from tests.test_artifacts import Canned

    config = tmp_path / "agent.toml"
    config.write_text("[agent]\nmax_artifact_bytes = 1000\n")  # artifact_origins unset: the broker's host, 127.0.0.1
    agent = AgentProcess(mosquitto.url, "pi-o", tmp_path, "--config", str(config)).start()
    rec = Recorder(mosquitto.url, "pi-o")
    body = b"m" * 100
    try:
        with Canned(body) as foreign, ArtifactServer("127.0.0.1") as server:
            port = foreign.httpd.server_address[1]
            url = f"http://localhost:{port}/artifact"  # the same machine, but not the controller's origin
            artifact = {"url": url, "sha256": hashlib.sha256(body).hexdigest(), "size": len(body), "name": "m.tflite"}
            kind, event = publish_job(rec, "pi-o", smoke_job("foreign", artifact))
            assert (kind, event.retryable) == ("failed", False)
            assert event.reason == (
                f"artifact URL http://localhost:{port}/artifact is not from the controller origin "
                "(allowed: http(s)://127.0.0.1 any port); set artifact_origins in agent.toml"
            )
            assert foreign.requests == []
            urllib.request.urlopen(f"http://127.0.0.1:{port}/artifact", timeout=10).read()
            assert len(foreign.requests) == 1  # the server was there and counting all along

            big = server.grant(server.add(zoo.resolve("zoo:fashion-mnist-cnn/int8.tflite").path), 300)
            kind, event = publish_job(rec, "pi-o", smoke_job("too-big", big))
            assert kind == "failed" and event.reason == (
                f"artifact int8.tflite is {big['size']} bytes, over this agent's limit of 1000; "
                "raise max_artifact_bytes or ship a smaller model"
            )
            assert server.request_count == 0
    finally:
        rec.conn.stop()
        assert agent.terminate() == 0
    assert list((agent.data_dir / "artifacts").rglob("*.tflite")) == []


def test_heartbeats_announce_answers_and_acks_only_from_the_jobs_owner(tmp_path, mosquitto):
    """The status repeats every heartbeat and answers a controller's announce at once, live (not retained);
    a result stays in the outbox until the controller that sent its job acks it."""
    from agent.contract import Ack, Announce, Envelope, Failed

    key = fleet_key.resolve(None)
    agent = AgentProcess(mosquitto.url, "pi-h", tmp_path, "--heartbeat-s", "0.5").start()
    rec = Recorder(mosquitto.url, "pi-h")
    try:
        wait_until(lambda: rec.state() == "online", 30, "online", step=rec.drain)
        heard = len(rec.messages)
        wait_until(lambda: sum(t.endswith("/status") for t, _ in rec.messages[heard:]) >= 3, 10, "three heartbeats",
                   step=rec.drain)
        beats = [decode("status", p, key).data for t, p in rec.messages[heard:] if t.endswith("/status")]
        assert len({b.session for b in beats}) == 1 and beats[0].heartbeat_s == 0.5
        marker = len(rec.messages)
        rec.conn.publish(TOPICS.announce(), Envelope("announce", "controller-x", Announce("controller-x")).encode(key))
        wait_until(lambda: any(t.endswith("/info") for t, _ in rec.messages[marker:]), 10, "info on announce",
                   step=rec.drain)
        owed = Envelope("failed", "pi-h", Failed("owed", "a failure owed to controller-a")).encode(key)
        with Outbox(agent.data_dir / "outbox.sqlite") as box:  # as a job of controller-a's leaves it
            box.put("owed", TOPICS.device("pi-h", "events"), owed, "controller-a")
        for owner in ("controller-b", "controller-a"):
            rec.conn.publish(TOPICS.device("pi-h", "acks"), Envelope("ack", "pi-h", Ack(("owed",), owner)).encode(key))
            rec.conn.publish(TOPICS.announce(), Envelope("announce", owner, Announce(owner)).encode(key))
            sent = len(rec.messages)
            wait_until(lambda: any(t.endswith("/info") for t, _ in rec.messages[sent:]), 10,  # noqa: B023
                       "the agent past the ack", step=rec.drain)  # announce after the ack: the ack was handled
            with Outbox(agent.data_dir / "outbox.sqlite") as box:
                assert [e.run_id for e in box.pending()] == (["owed"] if owner == "controller-b" else [])
    finally:
        rec.conn.stop()
        assert agent.terminate() == 0


def test_only_the_jobs_owner_can_cancel_it_and_a_cancel_is_its_own_terminal_state(tmp_path, mosquitto):
    from agent import zoo
    from agent.contract import Announce, Cancel, Envelope
    from controller.fleet.artifact_server import ArtifactServer

    key = fleet_key.resolve(None)
    agent = AgentProcess(mosquitto.url, "pi-x", tmp_path).start()
    rec = Recorder(mosquitto.url, "pi-x")
    try:
        with ArtifactServer("127.0.0.1") as server:
            artifact = server.grant(server.add(zoo.resolve("zoo:fashion-mnist-cnn/int8.onnx").path), 300)
            job = smoke_job("to-cancel", artifact) | {"overrides": {"min_duration_s": 60}}
            wait_until(lambda: rec.state() == "online", 30, "online", step=rec.drain)
            rec.conn.publish(TOPICS.device("pi-x", "jobs"), Envelope("job", "pi-x", job).encode(key))
            wait_until(lambda: any(t == "progress" and d.phase == "running" for t, d in rec.events.get("to-cancel", [])),
                       60, "the job running", step=rec.drain)
            cancel = TOPICS.device("pi-x", "jobs")
            rec.conn.publish(cancel, Envelope("cancel", "pi-x", Cancel("to-cancel", "controller-other")).encode(key))
            rec.conn.publish(TOPICS.announce(), Envelope("announce", "c", Announce("controller-other")).encode(key))
            wait_until(lambda: len([t for t, _ in rec.messages if t.endswith("/info")]) >= 2, 10, "past the stranger's cancel",
                       step=rec.drain)
            assert rec.terminal("to-cancel") is None  # another controller's cancel: still running
            rec.conn.publish(cancel, Envelope("cancel", "pi-x", Cancel("to-cancel", "controller-test")).encode(key))
            wait_until(lambda: any(t == "cancelled" for t, _ in rec.events.get("to-cancel", [])), 30, "the cancellation",
                       step=rec.drain)
        kinds = [t for t, _ in rec.events["to-cancel"]]
        assert "failed" not in kinds and kinds.count("cancelled") == 1
        with Outbox(agent.data_dir / "outbox.sqlite") as box:
            assert box.job_state("to-cancel") == "cancelled" and [e.run_id for e in box.pending()] == ["to-cancel"]
    finally:
        rec.conn.stop()
        assert agent.terminate() == 0


def test_a_job_that_arrives_while_the_agent_settles_is_held_and_taken_once_it_has_announced_itself(tmp_path, mosquitto):
    """A reconnecting agent does not take jobs until it knows its device id is its own: here a retained
    status of another session makes it listen 6 s (three of that session's 2 s heartbeats) first. A job
    that arrives meanwhile (as a broker with persistence hands over queued jobs first thing) is held
    and answered once the agent has announced itself, without anyone sending it again."""
    from agent.contract import Envelope, Status

    key = fleet_key.resolve(None)
    rec = Recorder(mosquitto.url, "pi-s")
    gone = Status("online", "0123456789abcdef", 2.0)  # a session that died without its will reaching the broker
    rec.conn.publish(TOPICS.device("pi-s", "status"), Envelope("status", "pi-s", gone).encode(key), retain=True)
    agent = AgentProcess(mosquitto.url, "pi-s", tmp_path).start()
    try:
        wait_until(lambda: "listening for it before taking jobs" in agent.log(), 30, "pi-s listening")
        artifact = {"url": "http://localhost:9/m.tflite", "sha256": "0" * 64, "size": 100, "name": "m.tflite"}
        job = smoke_job("held", artifact)  # not from the controller's origin: it fails at once when taken
        rec.conn.publish(TOPICS.device("pi-s", "jobs"), Envelope("job", "pi-s", job).encode(key))
        wait_until(lambda: "job held arrived before this agent announced itself; held until it has" in agent.log(), 10,
                   "the job held")
        for _ in range(10):
            rec.drain()
        assert "held" not in rec.events  # not yet taken
        wait_until(lambda: rec.terminal("held") is not None, 30, "the held job answered", step=rec.drain)
        kind, event = rec.terminal("held")
        assert kind == "failed" and "is not from the controller origin" in event.reason
        assert [t for t, _ in rec.events["held"]] == ["accepted", "failed"]  # taken once, as it was sent once
        announced = next(i for i, (t, p) in enumerate(rec.messages)
                         if t.endswith("/status") and decode("status", p, key).data.session != gone.session)
        answered = next(i for i, (t, _) in enumerate(rec.messages) if t.endswith("/events"))
        assert announced < answered  # presence first, then the job
    finally:
        rec.conn.stop()
        assert agent.terminate() == 0
