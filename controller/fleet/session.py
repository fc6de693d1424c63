"""Opening what a fleet command needs: the database, a broker connection, the artifact server.

Commands differ only in which of these they use; this module opens them in one place, with the
same options and the same clean shutdown, so ``campaign run`` and ``devices`` cannot disagree
about topics, credentials or the fleet key.

Commands that run campaigns (``owner``) are the database's controller on the broker: one
persistent MQTT session under the database's controller id, so what devices publish while it
is briefly away waits for it, and one such process per database at a time (a lock file beside
it; two would take each other's session over). Every other command listens under a throw-away
client id and stores and acks no result (``Fleet.read_only``). On every (re)connect the
controller announces itself, and every agent answers with its status, its device facts and any
unacknowledged results: nothing waits for a heartbeat or a re-send timer.

On a broker from ``edgeperf broker config`` the controller connects to a listener of its own,
which asks for the controller's certificate *and* its password (devices hold certificates from
the same CA). The password is kept beside the controller's certificate in the PKI folder
(``controller.password``): given ``--cert-file lab-pki/controller.pem`` and no other credentials,
the controller sends it with its certificate's name as the username. The controller also hears
its own announce come back before a command goes on: a broker that does not relay it (the
devices' listener, whose ACL gives the controller nothing; a wrong ``--prefix``) would otherwise
leave the command waiting for devices it can never hear.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from agent import contract, fleet_key
from agent.contract import TOPICS, Envelope, Topics
from agent.errors import EXIT_UNREACHABLE, EXIT_USAGE, EdgeperfError
from agent.transport import BrokerUrl, Connection, TlsFiles
from controller.fleet.artifact_server import ArtifactServer
from controller.fleet.link import Link
from controller.fleet.scheduler import Fleet
from controller.store.database import Store, default_db

SESSION_EXPIRY_S = 3600  # MQTT 5: how long the broker keeps a campaign controller's session while it is away


class ControllerBusy(EdgeperfError):
    """Another process runs campaigns on the same database."""

    exit_code = EXIT_USAGE


class NotRelayed(EdgeperfError):
    """Connected, but the broker does not relay what the controller publishes on the fleet's topics."""

    exit_code = EXIT_UNREACHABLE


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
    fleet_key_file: Path | None = None  # default: fleet_key.default_path(), created on first use

    @property
    def db_path(self) -> Path:
        return self.db or default_db()

    def broker_url(self) -> BrokerUrl:
        """The broker URL with the credentials given, else with the PKI's controller password when one is kept
        beside the client certificate (a TLS URL only: it never travels in clear)."""
        password = self.password or os.environ.get("EDGEPERF_PASSWORD")
        url = BrokerUrl.parse(self.broker).with_credentials(self.username, password)
        beside = self.cert_file.with_suffix(".password") if self.cert_file else None
        if url.tls and url.username is None and url.password is None and beside and beside.is_file():
            name = TlsFiles(cert_file=self.cert_file).certificate_name()
            return url.with_credentials(name, beside.read_text().strip())
        return url


def plaintext_notice(options: FleetOptions) -> str | None:
    """What a campaign on a broker without TLS should say: jobs, tokens included, travel in clear."""
    if options.broker_url().tls:
        return None
    return (f"note: {options.broker_url()} has no TLS: anyone on its network can read the jobs (their artifact tokens "
            "included); the fleet key keeps jobs and acks authentic, not secret. Use such a broker in a closed lab, "
            "or run one from 'edgeperf broker config'.")


@contextmanager
def _owner_lock(db_path: Path) -> Iterator[None]:
    """Hold ``<db>.lock`` for as long as this process runs campaigns on the database."""
    lock_path = db_path.with_name(db_path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise ControllerBusy(f"another edgeperf process (pid {holder}) is running a campaign on {db_path}; wait for it "
                                 "to end, watch it with 'edgeperf campaign status', or use another --db") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


@contextmanager
def fleet(options: FleetOptions, artifacts: bool = False, owner: bool = False) -> Iterator[Fleet]:
    """A connected ``Fleet`` over the database; with ``artifacts``, an artifact server too; ``owner``
    for the commands that run campaigns (the others only listen)."""
    # Hand the GIL to paho's network thread every millisecond (default 5 ms) while the main thread
    # stores a batch: a network thread that waits acks nothing, and the broker drops what it queued.
    sys.setswitchinterval(0.001)
    key = fleet_key.resolve(options.fleet_key_file)
    store = Store(options.db_path)
    topics = Topics(options.prefix)
    controller = store.controller_id
    announce = Envelope("announce", controller, contract.Announce(controller)).encode(key)
    server = ArtifactServer(options.artifact_host, options.artifact_port, options.artifact_advertise) if artifacts else None
    try:
        with _owner_lock(options.db_path) if owner else nullcontext():
            conn = Connection(
                f"edgeperf-{controller}" if owner else f"edgeperf-{controller}-{uuid.uuid4().hex[:8]}",
                options.broker_url(),
                subscriptions=[(topics.all_devices(kind), qos) for kind, (qos, _, side) in TOPICS.items() if side == "agent"],
                loopback=(topics.announce(), announce, 1, False),
                tls=TlsFiles(options.ca_file, options.cert_file, options.key_file),
                mqtt_version=options.mqtt_version,
                session_expiry_s=SESSION_EXPIRY_S if owner else None,
            )
            if server:
                server.start()
            conn.start(wait_s=options.connect_timeout_s)
            try:
                _wait_looped(conn, topics, announce, options.connect_timeout_s)
                yield Fleet(store, conn, topics, server, key=key, read_only=not owner, offline_grace_s=options.offline_grace_s,
                            device_wait_s=options.device_wait_s,
                            link=Link(conn, topics.probe(controller), lambda: conn.publish(topics.announce(), announce, qos=1)))
            finally:
                conn.stop()
    finally:
        if server:
            server.stop()
        store.close()


def _wait_looped(conn: Connection, topics: Topics, announce: bytes, timeout_s: float) -> None:
    """Wait until the broker relays the controller's announce back to it, announcing again every second: a
    broker that drops messages for a slow client (a full queue) may drop one copy, never every copy."""
    deadline = time.monotonic() + timeout_s
    while not conn.looped.wait(1.0):
        if time.monotonic() >= deadline:
            raise NotRelayed(_not_relayed(conn, topics))
        conn.publish(topics.announce(), announce, qos=1)


def _not_relayed(conn: Connection, topics: Topics) -> str:
    broker = conn.broker
    listener = (f"a broker from 'edgeperf broker config' takes controller commands on a listener of its own (the devices' "
                f"port + 1: mqtts://{broker.host}:{broker.port + 1}, with the controller's certificate from the PKI folder); "
                "otherwise " if broker.tls else "")
    return (f"connected to {broker}, but the broker does not relay what this controller publishes on {topics.announce()}, "
            f"so it would hear no device: {listener}check the broker's ACL and that --prefix is the agents' ({topics.prefix})")
