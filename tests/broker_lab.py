"""A hardened mosquitto for tests: the config ``edgeperf broker config`` writes, on free ports, and the
MQTT clients the tests talk to it with (our own ``Connection``, with the PKI's files)."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import uuid
from pathlib import Path

from agent.transport import BrokerUrl, Connection, Message, TlsFiles
from controller.fleet.broker import free_port
from controller.provisioning import broker_config
from controller.provisioning.pki import Pki
from tests.fleet_harness import Mosquitto, wait_until


class HardenedMosquitto(Mosquitto):
    """The harness's mosquitto, run with the config ``edgeperf broker config`` writes (and nothing else):
    the devices' listener on ``port``, the controller's on ``controller_port``."""

    def __init__(self, workdir: Path, pki: Pki) -> None:
        super().__init__(workdir)
        self.controller_port = free_port()
        user = "root" if os.geteuid() == 0 else None  # as root, mosquitto would drop to a user that cannot read the keys
        self.conf, self.acl, self.controller_acl = broker_config.write(
            pki, self.conf, port=self.port, controller_port=self.controller_port, bind="127.0.0.1", user=user)
        self.log_file = workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        """The devices' listener."""
        return f"mqtts://127.0.0.1:{self.port}"

    @property
    def controller_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.controller_port}"

    def reload(self) -> None:
        """SIGHUP, and wait until mosquitto says it reloaded."""
        assert self.proc is not None
        before = self.log_file.read_text().count("Reloading config")
        self.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: self.log_file.read_text().count("Reloading config") > before, 10, "mosquitto to reload")


class Client:
    """A ``Connection`` with the PKI's files for one identity, and what it has received so far."""

    def __init__(self, url: str, pki: Pki, files: tuple[Path, Path], subscriptions=(), username=None, password="any",
                 client_id: str | None = None, wait: bool = True) -> None:
        self.conn = Connection(
            client_id or f"test-{uuid.uuid4().hex[:8]}",
            BrokerUrl.parse(url).with_credentials(username, password),
            subscriptions=[(topic, 1) for topic in subscriptions],
            tls=TlsFiles(pki.ca_file, *files),
            reconnect_s=(1, 1),
        )
        self.conn.start(wait_s=10 if wait else None)
        self.seen: list[Message] = []

    @classmethod
    def controller(cls, broker: HardenedMosquitto, pki: Pki, subscriptions=(), client_id: str | None = None) -> Client:
        """The controller on its own listener, with its certificate and the password beside it."""
        password = pki.controller_password_file.read_text().strip()
        return cls(broker.controller_url, pki, pki.controller_files, subscriptions, username=pki.controller_name,
                   password=password, client_id=client_id)

    def pump(self) -> None:
        with contextlib.suppress(queue.Empty):
            self.seen.append(self.conn.inbox.get(timeout=0.05))

    def topics(self) -> list[str]:
        while not self.conn.inbox.empty():
            self.pump()
        return [m.topic for m in self.seen]

    def wait_for(self, topic: str, what: str, timeout_s: float = 10) -> Message:
        wait_until(lambda: topic in [m.topic for m in self.seen], timeout_s, what, step=self.pump)
        return next(m for m in self.seen if m.topic == topic)

    def publish(self, topic: str, payload: bytes = b"{}", qos: int = 1) -> None:
        self.conn.publish(topic, payload, qos=qos).wait_for_publish(5)

    def stop(self) -> None:
        self.conn.stop()
