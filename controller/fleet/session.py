"""Opening what a fleet command needs: the database, a broker connection, the artifact server.

Commands differ only in which of these they use; this module opens them in one place, with the
same options and the same clean shutdown, so ``campaign run`` and ``devices`` cannot disagree
about topics or credentials.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.contract import TOPICS, Topics
from agent.transport import BrokerUrl, Connection, TlsFiles
from controller.fleet.artifact_server import ArtifactServer
from controller.fleet.scheduler import Fleet
from controller.store.database import Store, default_db


@dataclass(frozen=True)
class FleetOptions:
    """Broker, database and artifact-server settings shared by every fleet command."""

    broker: str = "mqtt://localhost:1883"
    db: Path | None = None
    username: str | None = None
    password: str | None = None  # default: $EDGEPERF_PASSWORD
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    mqtt_version: str = "3.1.1"
    prefix: str = Topics().prefix
    artifact_host: str = "0.0.0.0"
    artifact_port: int = 0
    artifact_advertise: str | None = None  # the host name agents use to reach the artifact server
    connect_timeout_s: float = 10.0
    offline_grace_s: float = 10.0
    device_wait_s: float = 120.0

    @property
    def db_path(self) -> Path:
        return self.db or default_db()

    def broker_url(self) -> BrokerUrl:
        password = self.password or os.environ.get("EDGEPERF_PASSWORD")
        return BrokerUrl.parse(self.broker).with_credentials(self.username, password)


@contextmanager
def fleet(options: FleetOptions, artifacts: bool = False) -> Iterator[Fleet]:
    """A connected ``Fleet`` over the database; with ``artifacts``, an artifact server too."""
    # Hand the GIL to paho's network thread every millisecond (default 5 ms) while the main thread
    # stores a batch: a network thread that waits acks nothing, and the broker drops what it queued.
    sys.setswitchinterval(0.001)
    store = Store(options.db_path)
    topics = Topics(options.prefix)
    conn = Connection(
        f"edgeperf-controller-{uuid.uuid4().hex[:8]}",
        options.broker_url(),
        subscriptions=[(topics.all_devices(kind), qos) for kind, (qos, _, side) in TOPICS.items() if side == "agent"],
        tls=TlsFiles(options.ca_file, options.cert_file, options.key_file),
        mqtt_version=options.mqtt_version,
    )
    server = ArtifactServer(options.artifact_host, options.artifact_port, options.artifact_advertise) if artifacts else None
    try:
        if server:
            server.start()
        conn.start(wait_s=options.connect_timeout_s)
        yield Fleet(store, conn, topics, server, offline_grace_s=options.offline_grace_s, device_wait_s=options.device_wait_s)
    finally:
        conn.stop()
        if server:
            server.stop()
        store.close()
