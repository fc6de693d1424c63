"""Real parts for fleet tests: a mosquitto the test starts itself, agent processes, a campaign file.

Nothing here stands in for our code: agents are ``edgeperf-agent run`` processes, the broker is
Debian's mosquitto (or the embedded amqtt broker), and the controller is the real ``Fleet``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import fleet_key
from agent.cli import run_command
from controller.fleet.broker import free_port


def signed(message: dict, key: bytes) -> dict:
    """A hand-made envelope (any field possibly wrong) with the signature its fields and body bytes have
    under ``key``: junk that gets past the signature check to the contract's own checks."""
    body = json.dumps(message["data"], allow_nan=False).encode()  # the bytes json.dumps puts in the payload
    return message | {"sig": fleet_key.signature(key, message["v"], message["type"], message["device"], body)}


def wait_until(condition: Callable[[], object], timeout_s: float, what: str, step: Callable[[], object] | None = None) -> None:
    """Poll ``condition`` (running ``step`` between polls, e.g. the controller's pump) or fail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if step:
            step()
        else:
            time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Mosquitto:
    """mosquitto on a free loopback port, without persistence, restartable on the same port."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            pytest.fail("mosquitto is not installed: apt-get install mosquitto (.ci/run does)")
        self.binary, self.port, self.workdir = binary, free_port(), workdir
        self.conf = workdir / "mosquitto.conf"
        self.write_config("allow_anonymous true\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, settings: str, persistence: bool = False) -> None:
        """The listener on our port plus ``settings``; as root, mosquitto must not drop to a user
        that cannot read the test's certificate and password files. With ``persistence``, retained
        messages and sessions are saved every second, so even a ``kill -9`` leaves them on disk."""
        user = "user root\n" if os.geteuid() == 0 else ""
        saved = (f"persistence true\npersistence_location {self.workdir}/\nautosave_interval 1\n" if persistence
                 else "persistence false\n")
        self.conf.write_text(f"listener {self.port} 127.0.0.1\n{saved}{user}{settings}")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        log = (self.workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: port_open(self.port), 10, "mosquitto to listen")
        return self

    def signal(self, sig: int) -> None:
        """Send ``sig`` (SIGKILL, SIGSTOP, SIGCONT) to the broker."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        wait_until(lambda: not port_open(self.port), 10, "mosquitto to stop listening")


class AgentProcess:
    """One ``edgeperf-agent run`` process with its own data directory and log file."""

    def __init__(self, broker_url: str, device_id: str, workdir: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.device_id, self.data_dir = device_id, workdir / device_id
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "agent.log"
        self.cmd = run_command(broker_url, device_id, self.data_dir, "--log-level", "info", *extra)
        self.env = os.environ | {"EDGEPERF_RESEND_AFTER_S": "2"} | (env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def campaign_file(
    path: Path,
    *,
    variants: list[str],
    scenarios: list[str],
    modes: list[str],
    devices: str = "all",
    min_duration_s: float = 0.2,
    retries: int = 1,
    repeats: int = 1,
    timeout_s: float = 120,
) -> Path:
    """A small real campaign over zoo models; smoke profile with a short minimum duration."""
    variant_lines = "\n".join(f"      - artifact: zoo:fashion-mnist-cnn/{v}\n        threads: 1" for v in variants)
    path.write_text(
        textwrap.dedent(f"""\
        name: {path.stem}
        profile: smoke
        scenarios: [{", ".join(scenarios)}]
        modes: [{", ".join(modes)}]
        repeats: {repeats}
        retries: {retries}
        timeout_s: {timeout_s}
        dataset: synthetic
        accuracy_dataset: fashion-mnist:subset
        devices: {devices}
        overrides:
          min_duration_s: {min_duration_s}
        models:
          - name: fmnist
            variants:
        """)
        + variant_lines
        + "\n"
    )
    return path


class SimulatedAgent:
    """A load generator built from the agent's real parts: outbox, connection, envelopes and acks.

    It skips the benchmark (that is what makes it cheap enough to run fifty) and publishes copies
    of a real result document, each with its own run id, as fast as the broker takes them.
    """

    def __init__(self, broker_url: str, device_id: str, workdir: Path, key: bytes) -> None:
        from agent.contract import Topics
        from agent.outbox import Outbox
        from agent.transport import BrokerUrl, Connection

        self.device_id, self.topics, self.key = device_id, Topics(), key
        self.outbox = Outbox(workdir / device_id / "outbox.sqlite")
        self.conn = Connection(
            f"sim-{device_id}", BrokerUrl.parse(broker_url), subscriptions=[(self.topics.device(device_id, "acks"), 1)]
        )
        self.acked = 0

    def start(self) -> SimulatedAgent:
        self.conn.start(wait_s=10)
        return self

    def burst(self, template: dict, run_ids: list[str], controller: str) -> None:
        """A result for each of ``run_ids`` (attempts ``controller`` sent to this device), as fast as possible."""
        from agent.contract import Envelope

        topic = self.topics.device(self.device_id, "results")
        for seq, run_id in enumerate(run_ids):
            doc = template | {"run_id": run_id, "device": {"id": self.device_id, "facts": {}}}
            payload = Envelope("result", self.device_id, doc, seq=seq).encode(self.key)
            self.outbox.put(run_id, topic, payload, controller)
            self.conn.publish(topic, payload, qos=1)
        self.outbox.mark_sent(run_ids)

    def serve(self, resend_after_s: float) -> None:
        """Apply acks that arrived; re-send what is still unacknowledged after ``resend_after_s``."""
        import queue

        from agent.contract import decode

        while True:
            try:
                message = self.conn.inbox.get_nowait()
            except queue.Empty:
                break
            ack = decode("acks", message.payload, self.key).data
            self.acked += self.outbox.ack(ack.run_ids, ack.controller)
        for entry in self.outbox.due(resend_after_s):
            self.conn.publish(entry.topic, entry.payload, qos=1)
            self.outbox.mark_sent([entry.run_id])

    def stop(self) -> None:
        self.conn.stop()
        self.outbox.close()
