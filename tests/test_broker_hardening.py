"""The hardened broker config against a real mosquitto: each device on its own topics, strangers refused.

Everything runs through the generated ``mosquitto.conf`` and ACL, a PKI made by ``controller.pki``,
and our own MQTT transport (``agent.transport.Connection``) or raw TLS sockets where the point is
what happens before MQTT starts.
"""

from __future__ import annotations

import socket
import ssl
import uuid
from pathlib import Path

import psutil
import pytest

from agent import fleet_key
from agent.contract import DEFAULT_PREFIX, MAX_PAYLOAD_BYTES, Envelope, Topics, decode
from controller.provisioning import broker_config
from controller.provisioning.broker_config import MAX_PACKET_BYTES, BrokerConfigError
from controller.provisioning.pki import Pki, PkiError
from tests.broker_lab import Client, HardenedMosquitto
from tests.fleet_harness import AgentProcess, wait_until

TOPICS = Topics()
AGENT_KINDS = ("status", "info", "events", "results", "telemetry")  # written out: an independent check of the ACL


def mqtt_connect(port: int, ca: Path | None, files: tuple[Path, Path] | None = None, tls: bool = True) -> str:
    """'accepted', or how the broker turned the client away: TLS handshake, MQTT 3.1.1 CONNECT, read the CONNACK."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        if tls:
            ctx = ssl.create_default_context(cafile=str(ca))
            if files:
                ctx.load_cert_chain(*map(str, files))
            sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
        client_id = b"probe-" + uuid.uuid4().hex[:8].encode()
        body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id  # clean session, keepalive 60
        sock.sendall(bytes([0x10, len(body)]) + body)
        reply = sock.recv(4)
        if len(reply) == 4 and reply[0] == 0x20:
            return "accepted" if reply[3] == 0 else f"CONNACK return code {reply[3]}"
        return f"closed without a CONNACK ({reply!r})"
    except (ssl.SSLError, OSError) as exc:
        return f"refused: {exc}"
    finally:
        sock.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One PKI and one hardened broker for the tests that do not restart it."""
    workdir = tmp_path_factory.mktemp("hardened")
    pki = Pki.init(workdir / "pki", ["127.0.0.1"], ["pi-a", "pi-b", "pi-c"])
    broker = HardenedMosquitto(workdir, pki.export_broker(workdir / "broker-pki")).start()  # no CA key on the broker
    yield pki, broker
    broker.stop()


def test_the_broker_folder_holds_no_key_that_could_issue_or_impersonate(tmp_path):
    pki = Pki.init(tmp_path / "pki", ["127.0.0.1"], ["pi-a"])
    broker = pki.export_broker(tmp_path / "broker")
    files = sorted(str(p.relative_to(broker.root)) for p in broker.root.rglob("*") if p.is_file())
    assert files == ["broker.key", "broker.passwd", "broker.pem", "ca.pem", "crl.pem", "index.json"]
    assert (broker.root / "broker.key").stat().st_mode & 0o777 == 0o600
    # the hash of the controller's password, never the password: a broken-into broker cannot pose as the controller
    assert (broker.root / "broker.passwd").read_bytes() == pki.broker_password_file.read_bytes()
    assert pki.controller_password_file.read_text().strip() not in (broker.root / "broker.passwd").read_text()
    assert [e.kind for e in broker.entries()] == ["broker"]
    with pytest.raises(PkiError, match="no CA key"):
        broker.add_device("pi-b")
    with pytest.raises(PkiError, match="no CA key"):
        Pki.open(broker.root)  # what issuing commands open
    conf, _, _ = broker_config.write(broker, tmp_path / "x.conf")  # what 'broker config' needs is there
    for name in ("broker.pem", "ca.pem", "broker.passwd"):
        assert str(broker.root / name) in conf.read_text(), name
    with pytest.raises(PkiError, match="is the PKI folder itself"):
        pki.export_broker(pki.root)


def device_topic(device: str, kind: str) -> str:
    return TOPICS.device(device, kind)


def sections(conf: str) -> list[dict[str, str]]:
    """The config's settings: the global ones, then one dict per listener (each starts at its ``listener`` line)."""
    found: list[dict[str, str]] = [{}]
    for line in conf.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split(" ", 1)
            if key == "listener":
                found.append({})
            assert key not in found[-1], f"{key} set twice in one section"
            found[-1][key] = value
    return found


def acl_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_config_is_tls_only_with_a_listener_for_devices_and_one_for_the_controller(tmp_path):
    pki = Pki.init(tmp_path / "pki", ["127.0.0.1"])
    conf, acl, controller_acl = broker_config.render(pki, acl_path=tmp_path / "x.acl",
                                                     controller_acl_path=tmp_path / "x.controller.acl")
    common, devices, controller = sections(conf)
    assert common["per_listener_settings"] == "true" and common["persistence"] == "false"
    assert int(common["max_packet_size"]) == MAX_PACKET_BYTES > MAX_PAYLOAD_BYTES
    assert devices["listener"] == "8883 0.0.0.0" and controller["listener"] == "8884 0.0.0.0"  # the next port
    for listener in (devices, controller):
        assert listener["allow_anonymous"] == "false" and listener["require_certificate"] == "true"
        assert listener["tls_version"] == "tlsv1.2"
        assert listener["crlfile"] == str(pki.crl_file) and listener["keyfile"] == str(pki.broker_files[1])
        for option in ("cafile", "certfile", "keyfile", "crlfile", "acl_file"):
            assert Path(listener[option]).is_absolute(), option
    # devices: the certificate's CN is the username and the client id; no password is checked
    assert devices["use_identity_as_username"] == "true" and devices["use_username_as_clientid"] == "true"
    assert devices["acl_file"] == str(tmp_path / "x.acl") and "password_file" not in devices
    # the controller: a certificate from the CA and the password in broker.passwd
    assert controller["use_identity_as_username"] == "false" and "use_username_as_clientid" not in controller
    assert controller["password_file"] == str(pki.broker_password_file)
    assert controller["acl_file"] == str(tmp_path / "x.controller.acl")
    assert acl_lines(acl) == [
        f"pattern read {DEFAULT_PREFIX}/devices/%u/jobs",
        f"pattern read {DEFAULT_PREFIX}/devices/%u/acks",
        *(f"pattern write {DEFAULT_PREFIX}/devices/%u/{kind}" for kind in AGENT_KINDS),
        f"pattern read {DEFAULT_PREFIX}/devices/%u/status",
        f"pattern read {DEFAULT_PREFIX}/announce",
    ]
    assert acl_lines(controller_acl) == ["user edgeperf-controller", f"topic readwrite {DEFAULT_PREFIX}/#"]
    paths = {"acl_path": tmp_path / "x.acl", "controller_acl_path": tmp_path / "x.controller.acl"}
    for bad, message in (({"prefix": "lab/+/v1"}, "without wildcards"), ({"port": 0}, "not a TCP port"),
                         ({"max_packet_bytes": 1000}, "below the protocol"), ({"port": 65535}, "port 65536 is not"),
                         ({"controller_port": 8883}, "need two ports, not 8883 twice")):
        with pytest.raises(BrokerConfigError, match=message):
            broker_config.render(pki, **paths, **bad)
    with pytest.raises(BrokerConfigError, match="overwritten by its own ACL"):
        broker_config.write(pki, tmp_path / "edgeperf.acl")


def test_a_device_reads_and_writes_only_its_own_topics(lab):
    pki, broker = lab
    controller = Client.controller(broker, pki, [TOPICS.all_devices(kind) for kind in AGENT_KINDS])
    # device A tries to listen to everything, including B's jobs
    a = Client(broker.url, pki, pki.device_files("pi-a"),
               [device_topic("pi-a", "jobs"), device_topic("pi-a", "acks"), device_topic("pi-b", "jobs"), TOPICS.announce(),
                f"{DEFAULT_PREFIX}/#"])
    b = Client(broker.url, pki, pki.device_files("pi-b"), [device_topic("pi-b", "jobs"), device_topic("pi-b", "acks"),
                                                       TOPICS.announce()])
    # C, claiming the controller's name as its MQTT username: the certificate's CN wins
    impostor = Client(broker.url, pki, pki.device_files("pi-c"), [TOPICS.all_devices(kind) for kind in AGENT_KINDS],
                      username=pki.controller_name)
    try:
        # A forges B's reports and writes jobs (its own and B's), then reports as itself
        for kind in AGENT_KINDS:
            a.publish(device_topic("pi-b", kind), b'{"forged": true}')
        a.publish(device_topic("pi-b", "jobs"), b'{"forged": true}')
        a.publish(device_topic("pi-a", "jobs"), b'{"forged": true}')
        a.publish(f"{DEFAULT_PREFIX}/devices", b"{}")
        a.publish(TOPICS.announce(), b'{"forged": true}')  # only the controller announces
        for kind in AGENT_KINDS:
            a.publish(device_topic("pi-a", kind))
        # mosquitto relays one client's publishes in order: once A's own last report arrived, a forged one would have too
        controller.wait_for(device_topic("pi-a", "telemetry"), "A's own reports at the controller")
        assert controller.topics() == [device_topic("pi-a", kind) for kind in AGENT_KINDS]
        impostor.publish(device_topic("pi-b", "status"), b'{"forged": true}')
        impostor.publish(device_topic("pi-c", "status"), b'{"last": true}')
        controller.wait_for(device_topic("pi-c", "status"), "the impostor's own status")
        assert device_topic("pi-b", "status") not in controller.topics()
        # with the controller's username claimed, it still reads nothing but its own status
        assert set(impostor.topics()) <= {device_topic("pi-c", "status")}, "a device read other devices' reports"

        # the controller announces to all, and writes jobs and acks; each device receives only its own
        controller.publish(TOPICS.announce(), b'{"for": "all"}')
        controller.publish(device_topic("pi-b", "jobs"), b'{"for": "b"}')
        controller.publish(device_topic("pi-b", "acks"), b'{"for": "b"}')
        controller.publish(device_topic("pi-a", "jobs"), b'{"for": "a"}')
        controller.publish(device_topic("pi-a", "acks"), b'{"for": "a"}')
        b.wait_for(device_topic("pi-b", "acks"), "B's ack")
        a.wait_for(device_topic("pi-a", "acks"), "A's ack")
        assert b.topics() == [TOPICS.announce(), device_topic("pi-b", "jobs"), device_topic("pi-b", "acks")]
        assert [m.payload for m in b.seen] == [b'{"for": "all"}', b'{"for": "b"}', b'{"for": "b"}'], "B received forgeries"
        # A saw nothing of B's, despite subscribing to # and B's jobs; of its own reports only its status
        own = [device_topic("pi-a", "status"), device_topic("pi-a", "acks"), device_topic("pi-a", "jobs")]
        assert sorted(set(a.topics())) == sorted([TOPICS.announce(), *own])
        assert {m.payload for m in a.seen if not m.topic.endswith("/status")} == {b'{"for": "all"}', b'{"for": "a"}'}
    finally:
        for client in (controller, a, b, impostor):
            client.stop()


def test_the_real_agent_works_through_the_acl_and_its_will_reaches_the_controller(lab, tmp_path):
    pki, broker = lab
    controller = Client.controller(broker, pki, [TOPICS.all_devices(kind) for kind in AGENT_KINDS])
    cert, key = pki.device_files("pi-c")
    agent = AgentProcess(broker.url, "pi-c", tmp_path, "--ca-file", str(pki.ca_file), "--cert-file", str(cert),
                         "--key-file", str(key)).start()

    def state() -> str | None:
        statuses = [m for m in controller.seen if m.topic == device_topic("pi-c", "status")]
        return decode("status", statuses[-1].payload, fleet_key.resolve(None)).data.state if statuses else None

    try:
        wait_until(lambda: state() == "online", 30, "the agent online over mutual TLS", step=controller.pump)
        controller.wait_for(device_topic("pi-c", "info"), "the agent's info")
        agent.kill()  # no clean disconnect: the broker publishes the will, which the ACL must let through
        wait_until(lambda: state() == "offline", 30, "the agent's last will", step=controller.pump)
    finally:
        if agent.alive():
            agent.kill()
        controller.stop()


def test_an_agent_whose_id_is_not_its_certificates_name_says_so_at_start(lab, tmp_path):
    """The ACL quietly gives it none of its topics (mosquitto's SUBACK grants them anyway on MQTT 3.1.1),
    so the agent itself says why it will never be seen; the right agent says nothing of the kind."""
    pki, broker = lab
    cert, key = pki.device_files("pi-a")
    tls = ("--ca-file", str(pki.ca_file), "--cert-file", str(cert), "--key-file", str(key))
    wrong = AgentProcess(broker.url, "pi-z", tmp_path / "z", *tls).start()
    right = AgentProcess(broker.url, "pi-a", tmp_path / "a", *tls).start()
    try:
        wait_until(lambda: "connected to" in wrong.log() and "connected to" in right.log(), 30, "both agents connected")
        assert ("device id 'pi-z' is not its client certificate's name 'pi-a'" in wrong.log()
                and "--device-id pi-a" in wrong.log() and "edgeperf certs add pi-z" in wrong.log())
        assert "is not its client certificate's name" not in right.log()
    finally:
        wrong.terminate()
        right.terminate()


def test_strangers_and_plaintext_are_refused(lab, tmp_path):
    pki, broker = lab
    assert mqtt_connect(broker.port, pki.ca_file, pki.device_files("pi-a")) == "accepted"  # the probe itself works
    other_lab = Pki.init(tmp_path / "other", ["127.0.0.1"], ["pi-a"])  # same CN, another CA
    for port in (broker.port, broker.controller_port):
        no_certificate = mqtt_connect(port, pki.ca_file)
        foreign = mqtt_connect(port, pki.ca_file, other_lab.device_files("pi-a"))
        plaintext = mqtt_connect(port, None, tls=False)
        for outcome in (no_certificate, foreign, plaintext):
            assert outcome.startswith(("refused", "closed without a CONNACK")), outcome
    # and there is nothing else to talk to: the broker listens on exactly two sockets, both TLS
    assert broker.proc is not None
    listening = {c.laddr for c in psutil.Process(broker.proc.pid).net_connections("inet") if c.status == psutil.CONN_LISTEN}
    assert listening == {("127.0.0.1", broker.port), ("127.0.0.1", broker.controller_port)}
    log = broker.log_file.read_text()
    assert "peer did not return a certificate" in log and "certificate verify failed" in log


def test_oversized_packets_are_refused(lab):
    pki, broker = lab
    controller = Client.controller(broker, pki, [TOPICS.all_devices("results")])
    a = Client(broker.url, pki, pki.device_files("pi-a"))
    try:
        topic = device_topic("pi-a", "results")
        a.publish(topic, b"x" * MAX_PAYLOAD_BYTES)  # the protocol's largest payload fits
        assert len(controller.wait_for(topic, "a payload at the protocol's limit").payload) == MAX_PAYLOAD_BYTES
        a.conn.publish(topic, b"y" * (MAX_PACKET_BYTES + 1), qos=0)  # QoS 0: paho would re-send a QoS 1 one forever
        wait_until(lambda: not a.conn.connected.is_set(), 10, "mosquitto to disconnect the sender")
        wait_until(a.conn.connected.is_set, 10, "the sender to reconnect")
        a.publish(topic, b"small")  # the big one never arrived
        wait_until(lambda: b"small" in [m.payload for m in controller.seen], 10, "the next message", step=controller.pump)
        assert [len(m.payload) for m in controller.seen] == [MAX_PAYLOAD_BYTES, 5]
    finally:
        a.stop()
        controller.stop()


def test_revocation_takes_a_restart_and_spares_the_other_devices(tmp_path):
    """Measured with mosquitto 2.0.11: the CRL is re-read on SIGHUP for new connections, but a revoked
    device that is already connected stays connected until the broker restarts."""
    pki = Pki.init(tmp_path / "pki", ["127.0.0.1"], ["pi-a", "pi-b", "pi-c"])
    broker = HardenedMosquitto(tmp_path, pki).start()
    controller = Client.controller(broker, pki, [TOPICS.all_devices(kind) for kind in AGENT_KINDS])
    revoked_files = pki.device_files("pi-c")
    pki.revoke("pi-c")
    # the running broker has the old CRL (probed before C connects: the probe gets C's client id and would push it off)
    assert mqtt_connect(broker.port, pki.ca_file, revoked_files) == "accepted"
    c = Client(broker.url, pki, revoked_files, [device_topic("pi-c", "jobs")])
    a = Client(broker.url, pki, pki.device_files("pi-a"), [device_topic("pi-a", "jobs")])
    try:
        broker.reload()
        assert mqtt_connect(broker.port, pki.ca_file, revoked_files).startswith(("refused", "closed")), "new connections"
        controller.publish(device_topic("pi-c", "jobs"), b"still")
        c.wait_for(device_topic("pi-c", "jobs"), "the connected revoked device, which SIGHUP does not drop")

        # a rotated device: after SIGHUP the old certificate is refused, the new one accepted
        old_b = pki.device_files("pi-b")
        old_b_bytes = tuple(p.read_bytes() for p in old_b)
        pki.rotate("pi-b")
        kept = tmp_path / "old-b.pem", tmp_path / "old-b.key"
        for path, data in zip(kept, old_b_bytes, strict=True):
            path.write_bytes(data)
        broker.reload()
        assert mqtt_connect(broker.port, pki.ca_file, kept).startswith(("refused", "closed"))
        assert mqtt_connect(broker.port, pki.ca_file, pki.device_files("pi-b")) == "accepted"

        broker.stop()
        broker.start()
        wait_until(lambda: a.conn.connected.is_set() and controller.conn.connected.is_set(), 15, "A and the controller back")
        a.publish(device_topic("pi-a", "status"))
        controller.wait_for(device_topic("pi-a", "status"), "A's status after the restart")
        controller.publish(device_topic("pi-a", "jobs"), b"job")
        a.wait_for(device_topic("pi-a", "jobs"), "A's job after the restart")
        assert not c.conn.connected.is_set(), "the revoked device got back in"
        assert mqtt_connect(broker.port, pki.ca_file, revoked_files).startswith(("refused", "closed"))
    finally:
        for client in (controller, a, c):
            client.stop()
        broker.stop()


def test_envelopes_from_the_protocol_fit_the_packet_limit():
    """The largest envelope the protocol lets a side encode still fits in one broker packet."""
    key = bytes(32)
    room = MAX_PAYLOAD_BYTES - len(Envelope("result", "x" * 64, {"pad": ""}, seq=2**31, ts=1e10).encode(key))
    body = Envelope("result", "x" * 64, {"pad": "p" * room}, seq=2**31, ts=1e10).encode(key)
    topic = Topics("a" * 200).device("x" * 64, "telemetry")
    assert len(body) == MAX_PAYLOAD_BYTES
    assert 5 + 2 + len(topic) + 2 + len(body) + 64 < MAX_PACKET_BYTES  # header, topic, packet id, MQTT 5 properties
