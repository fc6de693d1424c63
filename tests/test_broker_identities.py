"""Client ids on the hardened broker: a device certificate can take over no one's session, the controller's
commands each keep their own, and what that costs two agents that share one certificate.

Real parts only: mosquitto run from the config ``edgeperf broker config`` writes, a PKI made by
``controller.pki``, our own transport, agent processes and the controller's ``session.fleet``.
"""

from __future__ import annotations

import json
import re

import pytest

from agent import fleet_key
from agent.contract import Envelope, Status, Topics, decode
from agent.transport import BrokerRefused, BrokerUrl, Connection, TlsFiles
from controller.fleet import campaign as campaign_file
from controller.fleet import session
from controller.provisioning.pki import Pki
from tests.broker_lab import Client, HardenedMosquitto
from tests.cli_harness import edgeperf, one_error_line
from tests.fleet_harness import AgentProcess, wait_until
from tests.fleet_harness import campaign_file as write_campaign

TOPICS = Topics()
CONTROLLER_ID = "edgeperf-controller-5d1e0c9a7b21"  # the shape of a campaign controller's client id; devices read it in jobs


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("identities")
    pki = Pki.init(workdir / "pki", ["127.0.0.1"], ["pi-a", "pi-b", "pi-c"])
    broker = HardenedMosquitto(workdir, pki.export_broker(workdir / "broker-pki")).start()
    yield pki, broker
    broker.stop()


def connections(broker: HardenedMosquitto, client_id: str) -> int:
    """How many times mosquitto accepted a client under ``client_id`` (its log names the id it kept)."""
    return len(re.findall(rf"New client connected from \S+ as {re.escape(client_id)} ", broker.log_file.read_text()))


def options(broker: HardenedMosquitto, pki: Pki, tmp_path, **kwargs) -> session.FleetOptions:
    """A controller command's options as a user gives them: the controller listener's URL and the PKI's three files."""
    cert, key = pki.controller_files
    return session.FleetOptions(broker=broker.controller_url, db=tmp_path / "c.db", ca_file=pki.ca_file, cert_file=cert,
                                key_file=key, **kwargs)


def test_a_device_certificate_cannot_take_over_another_devices_or_the_controllers_client_id(lab):
    pki, broker = lab
    before = {name: connections(broker, name) for name in ("pi-a", "pi-b", "pi-c", CONTROLLER_ID)}
    controller = Client.controller(broker, pki, [TOPICS.all_devices("status")], client_id=CONTROLLER_ID)
    b = Client(broker.url, pki, pki.device_files("pi-b"), [TOPICS.device("pi-b", "jobs")], client_id="pi-b")
    takers = [Client(broker.url, pki, pki.device_files("pi-a"), client_id="pi-b"),
              Client(broker.url, pki, pki.device_files("pi-c"), client_id=CONTROLLER_ID)]
    try:
        assert all(taker.conn.connected.is_set() for taker in takers)  # connected, each under its own name
        controller.publish(TOPICS.device("pi-b", "jobs"), b"after")
        b.wait_for(TOPICS.device("pi-b", "jobs"), "B's job, on the connection it had before")
        log = broker.log_file.read_text()
        after = {name: connections(broker, name) for name in before}
        assert {name: after[name] - before[name] for name in before} == dict.fromkeys(before, 1), log[-2000:]
        assert "already connected" not in log
        assert b.conn.connected.is_set() and controller.conn.connected.is_set()
    finally:
        for client in (*takers, b, controller):
            client.stop()


def test_a_device_certificate_cannot_connect_on_the_controller_listener(lab):
    """Every lab certificate passes the TLS check there; without the controller's password it is refused, before
    mosquitto looks at its client id: the connected controller keeps its session."""
    pki, broker = lab
    before = connections(broker, CONTROLLER_ID)
    controller = Client.controller(broker, pki, client_id=CONTROLLER_ID)
    attempts = {"no username": (None, None), "the controller's name, a wrong password": (pki.controller_name, "guess"),
                "its own name": ("pi-a", "guess")}
    try:
        for what, (username, password) in attempts.items():
            url = BrokerUrl.parse(broker.controller_url).with_credentials(username, password)
            device = Connection(CONTROLLER_ID, url, tls=TlsFiles(pki.ca_file, *pki.device_files("pi-a")))
            with pytest.raises(BrokerRefused, match="the broker refused the connection: Not authorized") as refused:
                device.start(wait_s=10)
            assert "\n" not in str(refused.value), what
        without = Connection(CONTROLLER_ID, BrokerUrl.parse(broker.controller_url),  # the right certificate, no password
                             tls=TlsFiles(pki.ca_file, *pki.controller_files))
        with pytest.raises(BrokerRefused, match="Not authorized"):
            without.start(wait_s=10)
        log = broker.log_file.read_text()
        assert connections(broker, CONTROLLER_ID) == before + 1 and "already connected" not in log, log[-2000:]
        assert log.count("not authorised") >= 4 and controller.conn.connected.is_set()
    finally:
        controller.stop()


def test_controller_commands_find_their_listeners_password_and_run_side_by_side(lab, tmp_path):
    """A campaign's session and 'edgeperf devices' at the same time, each under its own client id, with nothing
    but --broker and the PKI's three files: the password is read from beside the certificate."""
    pki, broker = lab
    device = Client(broker.url, pki, pki.device_files("pi-a"))
    status = Status("online", "ab" * 8, 10.0, uptime_s=5.0)
    try:
        with session.fleet(options(broker, pki, tmp_path), owner=True) as campaign:
            payload = Envelope("status", "pi-a", status).encode(fleet_key.resolve(None))
            device.conn.publish(TOPICS.device("pi-a", "status"), payload, qos=1, retain=True).wait_for_publish(5)
            wait_until(lambda: "pi-a" in campaign.devices, 10, "the campaign's controller to hear pi-a",
                       step=lambda: campaign.pump(0.1))
            cert, key = pki.controller_files
            listed = edgeperf("devices", "--broker", broker.controller_url, "--db", str(tmp_path / "c.db"), "--json",
                              "--wait", "1", "--ca-file", str(pki.ca_file), "--cert-file", str(cert), "--key-file", str(key))
            assert listed.returncode == 0, listed.stderr
            assert [row["id"] for row in json.loads(listed.stdout)] == ["pi-a"]
            campaign.pump(0.5)
            assert campaign.conn.connected.is_set() and campaign.conn.problem is None
            mine = re.escape(f"edgeperf-{campaign.store.controller_id}")
        ids = re.findall(rf"New client connected from \S+ as ({mine}\S*) ", broker.log_file.read_text())
        assert len(ids) == 2 and len(set(ids)) == 2, ids  # one connection each, under ids of their own
        assert "already connected" not in broker.log_file.read_text()
    finally:
        device.stop()


def test_the_controller_pointed_at_the_devices_listener_says_so_in_one_line(lab, tmp_path):
    """There it would be forced to its certificate's name as client id and its ACL gives it nothing: it connects,
    but its own announce never comes back, and waiting for devices would be waiting forever."""
    pki, broker = lab
    cert, key = pki.controller_files
    proc = edgeperf("devices", "--broker", broker.url, "--db", str(tmp_path / "c.db"), "--wait", "1",
                    "--ca-file", str(pki.ca_file), "--cert-file", str(cert), "--key-file", str(key))
    one_error_line(proc, 3, f"connected to mqtts://{pki.controller_name}:***@127.0.0.1:{broker.port}",
                   "does not relay what this controller publishes", "a listener of its own (the devices' port + 1")


@pytest.mark.slow
def test_a_campaign_runs_over_the_hardened_broker(lab, tmp_path):
    pki, broker = lab
    cert, key = pki.device_files("pi-b")
    before = connections(broker, "pi-b")
    agent = AgentProcess(broker.url, "pi-b", tmp_path, "--ca-file", str(pki.ca_file), "--cert-file", str(cert),
                         "--key-file", str(key)).start()
    try:
        fleet_options = options(broker, pki, tmp_path, artifact_host="127.0.0.1", artifact_advertise="127.0.0.1")
        with session.fleet(fleet_options, artifacts=True, owner=True) as fleet:
            wait_until(lambda: "pi-b" in fleet.devices and fleet.devices["pi-b"].available, 30, "pi-b available",
                       step=lambda: fleet.pump(0.1))
            spec = campaign_file.load(write_campaign(tmp_path / "hardened.yaml", variants=["int8.tflite"],
                                                     scenarios=["SingleStream"], modes=["performance"]))
            campaign_id = fleet.create_campaign(spec)
            assert fleet.run(campaign_id) == "finished"
            [result] = fleet.store.results(campaign_id)
            assert result.device.id == "pi-b" and result.valid
        assert connections(broker, "pi-b") == before + 1, "the agent was pushed off or reconnected"
    finally:
        assert agent.terminate() == 0, agent.log()[-3000:]


@pytest.mark.slow
def test_two_agents_sharing_one_certificate_the_newcomer_stops_and_the_first_keeps_working(lab, tmp_path):
    """A cloned SD card: on the devices' listener both get the certificate's name as client id, so each
    connection pushes the other off and neither hears the other's heartbeat. The newcomer sees the first
    agent's will come back after its own connection was lost, reports the clash and exits 2; the first
    loses its connection once or twice and keeps working."""
    pki, broker = lab
    cert, key = pki.device_files("pi-c")
    tls = ("--ca-file", str(pki.ca_file), "--cert-file", str(cert), "--key-file", str(key), "--heartbeat-s", "2")
    first = AgentProcess(broker.url, "pi-c", tmp_path / "first", *tls).start()
    watcher = Client.controller(broker, pki, [TOPICS.device("pi-c", "status")])
    try:
        fleet_options = options(broker, pki, tmp_path, artifact_host="127.0.0.1", artifact_advertise="127.0.0.1")
        with session.fleet(fleet_options, artifacts=True, owner=True) as fleet:
            wait_until(lambda: "pi-c" in fleet.devices and fleet.devices["pi-c"].available, 30, "the first agent available",
                       step=lambda: fleet.pump(0.1))
            first_session = fleet.devices["pi-c"].session
            clone = AgentProcess(broker.url, "pi-c", tmp_path / "clone", *tls).start()
            assert clone.proc.wait(60) == 2, clone.log()[-3000:]
            assert "is already used by another agent" in clone.log() and "its own certificate" in clone.log()
            assert "Traceback" not in clone.log()
            wait_until(lambda: fleet.devices["pi-c"].duplicate, 10, "the controller to say so", step=lambda: fleet.pump(0.1))
            wait_until(lambda: fleet.devices["pi-c"].available, 15, "the first agent back", step=lambda: fleet.pump(0.1))
            assert fleet.devices["pi-c"].session == first_session
            spec = campaign_file.load(write_campaign(tmp_path / "after.yaml", variants=["int8.tflite"],
                                                     scenarios=["SingleStream"], modes=["performance"]))
            assert fleet.run(fleet.create_campaign(spec)) == "finished"
        assert first.alive()
        assert first.log().count("lost broker") <= 3, first.log()[-3000:]
        watcher.topics()  # everything it received
        statuses = [decode("status", m.payload, fleet_key.resolve(None)).data for m in watcher.seen]
        spoke = {status.session for status in statuses if status.state != "offline"}
        assert spoke == {first_session}, "the clone spoke on the shared status topic"
    finally:
        watcher.stop()
        first.terminate()


def test_the_controllers_password_is_sent_only_over_tls_and_only_when_no_credentials_are_given(tmp_path):
    pki = Pki.init(tmp_path / "pki", ["127.0.0.1"])
    cert, key = pki.controller_files
    password = pki.controller_password_file.read_text().strip()

    def url(broker: str, **given) -> BrokerUrl:
        files = {"ca_file": pki.ca_file, "cert_file": cert, "key_file": key}
        return session.FleetOptions(broker=broker, **(files | given)).broker_url()

    found = url("mqtts://lab:8884")
    assert (found.username, found.password) == (pki.controller_name, password)
    assert url("mqtt://lab:1883").password is None  # never in clear
    assert (url("mqtts://lab:8884", username="ops", password="pw").username, url("mqtts://ops:pw@lab:8884").password) == (
        "ops", "pw")
    assert url("mqtts://lab:8884", cert_file=None).password is None


def test_fleet_flash_finds_the_controller_listener_next_to_the_agents_port():
    from controller.cli.fleet import _controller_listener

    assert _controller_listener("mqtts://lab.local:8883") == "mqtts://lab.local:8884"
    assert _controller_listener("mqtts://[fd00::2]:9883") == "mqtts://[fd00::2]:9884"
    assert _controller_listener("mqtt://lab.local:1883") == "mqtt://lab.local:1883"  # a plain broker has one listener
