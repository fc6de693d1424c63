"""The agent daemon's promises: retained presence, a last will, clean SIGTERM, nothing lost, TLS and passwords."""

from __future__ import annotations

import queue
import subprocess
import uuid

import pytest

from agent.outbox import Outbox
from agent.protocol import Topics, decode
from agent.transport import BrokerUrl, Connection, TlsFiles
from tests.fleet_harness import AgentProcess, Mosquitto, wait_until
from tests.tls_harness import make_pki

pytestmark = pytest.mark.slow
TOPICS = Topics()


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
        self.last: dict[tuple[str, str], dict] = {}
        self.retained: dict[tuple[str, str], bool] = {}

    def drain(self) -> None:
        try:
            message = self.conn.inbox.get(timeout=0.1)
        except queue.Empty:
            return
        device, kind = TOPICS.parse(message.topic)
        env = decode(kind, message.payload)
        key = (device, env.type if kind == "events" else kind)
        self.last[key], self.retained[key] = env.data, message.retain

    def state(self, device: str) -> str | None:
        return self.last.get((device, "status"), {}).get("state")


def test_presence_is_retained_and_sigterm_publishes_offline(tmp_path, mosquitto):
    agent = AgentProcess(mosquitto.url, "pi-a", tmp_path, "--tag", "rpi5").start()
    first = Watcher(mosquitto.url)
    wait_until(lambda: first.state("pi-a") == "online" and ("pi-a", "info") in first.last, 30, "online", step=first.drain)
    first.conn.stop()
    late = Watcher(mosquitto.url)  # subscribes after the fact: retained messages bring it up to date
    wait_until(lambda: ("pi-a", "info") in late.last and late.state("pi-a") == "online", 10, "retained info", step=late.drain)
    assert late.retained[("pi-a", "status")] and late.retained[("pi-a", "info")]
    info = late.last[("pi-a", "info")]
    assert info["tags"] == ["rpi5"] and info["facts"]["os"] and info["installed"]["litert"]
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
    from agent.protocol import Envelope
    from controller.artifact_server import ArtifactServer

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
            "artifact": server.add(zoo.resolve("zoo:fashion-mnist-cnn/int8.onnx").path),
        }
        watcher.conn.publish(TOPICS.device("pi-c", "jobs"), Envelope("job", "pi-c", job).encode())
        wait_until(
            lambda: watcher.last.get(("pi-c", "progress"), {}).get("phase") == "running",
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
    assert "SIGTERM" in watcher.last[("pi-c", "failed")]["reason"]
    assert agent.terminate() == 0
    watcher.conn.stop()


def test_tls_with_client_certificates(tmp_path):
    pki = make_pki(tmp_path)
    broker = Mosquitto(tmp_path)
    broker.write_config(
        f"cafile {pki['ca']}\ncertfile {pki['server_cert']}\nkeyfile {pki['server_key']}\n"
        "require_certificate true\nallow_anonymous true\n"
    )
    broker.start()
    url = f"mqtts://127.0.0.1:{broker.port}"
    tls = TlsFiles(pki["ca"], pki["client_cert"], pki["client_key"])
    try:
        agent = AgentProcess(
            url,
            "pi-tls",
            tmp_path,
            "--ca-file",
            str(pki["ca"]),
            "--cert-file",
            str(pki["client_cert"]),
            "--key-file",
            str(pki["client_key"]),
        ).start()
        watcher = Watcher(url, tls)
        wait_until(lambda: watcher.state("pi-tls") == "online", 30, "online over TLS", step=watcher.drain)
        assert agent.terminate() == 0
        watcher.conn.stop()
        stranger = AgentProcess(url, "pi-stranger", tmp_path, "--ca-file", str(pki["other-ca"])).start()
        wait_until(lambda: "CERTIFICATE_VERIFY_FAILED" in stranger.log(), 20, "the wrong CA refused")
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
