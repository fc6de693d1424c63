"""Faults injected into a running fleet of real parts (mosquitto, agent processes, the controller's
``Fleet``): each either heals once the fault ends, with nothing lost or stored twice, or fails the
job at once with the fault's name."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest

from agent import __version__, device_info, fleet_key
from agent.contract import MAX_PAYLOAD_BYTES, Envelope, Topics
from agent.transport import Connection
from controller.fleet import campaign as campaign_file
from controller.fleet import session
from controller.fleet.scheduler import Fleet
from tests.fleet_harness import AgentProcess, Mosquitto, wait_until
from tests.fleet_harness import campaign_file as write_campaign

pytestmark = pytest.mark.slow


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MiB tmpfs for an agent's data directory, so the test can fill it."""
    if os.geteuid() != 0:
        pytest.skip("platform: mounting a tmpfs as a full disk needs root (the CI machine runs as root)")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Fill the file system under ``folder`` to the last byte; the file that did it."""
    filler = folder / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (b"\0" * (1 << 20), b"\0" * (1 << 12), b"\0"):
            try:
                while True:
                    os.write(descriptor, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(descriptor)
    return filler


@contextmanager
def campaign_fleet(broker_url: str, tmp_path: Path, device_id: str, mqtt_version: str = "3.1.1") -> Iterator[Fleet]:
    """The controller as ``campaign run`` opens it, once ``device_id`` is heard and available."""
    options = session.FleetOptions(broker=broker_url, db=tmp_path / "c.db", artifact_host="127.0.0.1",
                                   artifact_advertise="127.0.0.1", mqtt_version=mqtt_version)
    with session.fleet(options, artifacts=True, owner=True) as fleet:
        wait_until(lambda: device_id in fleet.devices and fleet.devices[device_id].available, 30, f"{device_id} available",
                   step=lambda: fleet.pump(0.1))
        yield fleet


def run_campaign(fleet, tmp_path: Path, name: str, **kwargs) -> tuple[str, str]:
    spec = campaign_file.load(write_campaign(tmp_path / f"{name}.yaml", variants=["int8.tflite"], scenarios=["SingleStream"],
                                             modes=["performance"], **kwargs))
    campaign_id = fleet.create_campaign(spec)
    return campaign_id, fleet.run(campaign_id)


def test_a_full_disk_on_the_agent_fails_the_job_at_once_by_name_and_work_resumes_when_space_is_freed(
        tmp_path, mosquitto, small_disk):
    agent = AgentProcess(mosquitto.url, "pi-full", small_disk).start()
    try:
        with campaign_fleet(mosquitto.url, tmp_path, "pi-full") as fleet:
            assert run_campaign(fleet, tmp_path, "warm")[1] == "finished"  # the model is in the agent's cache now
            filler = fill(small_disk)
            campaign_id, state = run_campaign(fleet, tmp_path, "full", retries=0)
            (job,) = fleet.store.jobs(campaign_id)
            assert state == "finished_with_failures" and job.attempts == 1, job
            assert job.error.startswith("pi-full: disk full on the device") and f"free space under {small_disk}" in job.error
            assert agent.alive()
            filler.unlink()
            campaign_id, state = run_campaign(fleet, tmp_path, "after")
            assert state == "finished" and len(fleet.store.results(campaign_id)) == 1
        assert "Traceback" not in agent.log()
    finally:
        agent.terminate()


def test_a_second_agent_under_the_same_device_id_says_so_and_stops_and_the_first_keeps_working(tmp_path, mosquitto):
    """Cloned images share a hostname: the newcomer hears the first agent's heartbeat, reports the clash
    (a ``duplicate`` event the controller shows), exits 2 without touching the shared status, and the
    first agent keeps running jobs."""
    first = AgentProcess(mosquitto.url, "pi-clone", tmp_path / "a", "--heartbeat-s", "1").start()
    try:
        with campaign_fleet(mosquitto.url, tmp_path, "pi-clone") as fleet:
            first_session = fleet.devices["pi-clone"].session
            second = AgentProcess(mosquitto.url, "pi-clone", tmp_path / "b", "--heartbeat-s", "1").start()
            assert second.proc.wait(60) == 2
            assert "is already used by another agent" in second.log() and "give this agent its own device_id" in second.log()
            wait_until(lambda: fleet.devices["pi-clone"].duplicate, 10, "the controller to say so", step=lambda: fleet.pump(0.1))
            assert "two agents use device id pi-clone" in fleet.devices["pi-clone"].describe()
            fleet.pump(2.5)  # a heartbeat or two later, the device is still the first agent, online
            view = fleet.devices["pi-clone"]
            assert view.session == first_session and view.available
            assert run_campaign(fleet, tmp_path, "after-clash")[1] == "finished"
        assert first.alive()
    finally:
        first.terminate()


@pytest.mark.parametrize("mqtt", ["5", "3.1.1"])
def test_a_result_over_the_brokers_packet_limit_fails_once_by_name_without_a_reconnect_loop(tmp_path, mqtt):
    """MQTT 5 brokers announce their limit; on MQTT 3.1.1 the agent is told it (max_packet_bytes)."""
    broker = Mosquitto(tmp_path)
    broker.write_config("allow_anonymous true\nmax_packet_size 4096\n")
    broker.start()
    told = [] if mqtt == "5" else ["--max-packet-bytes", "4096"]
    agent = AgentProcess(broker.url, "pi-small", tmp_path, "--mqtt-version", mqtt, *told).start()
    try:
        with campaign_fleet(broker.url, tmp_path, "pi-small", mqtt_version="5") as fleet:
            campaign_id, state = run_campaign(fleet, tmp_path, "big-result", retries=2)
            (job,) = fleet.store.jobs(campaign_id)
            assert state == "finished_with_failures" and job.attempts == 1  # not retried: the same result is as big
            assert "over the broker's packet limit of 4096 bytes" in job.error and "max_packet_size" in job.error
            assert fleet.devices["pi-small"].available
        log = agent.log()
        assert "lost broker" not in log and log.count("connected to") == 1  # one connection all along
    finally:
        agent.terminate()
        broker.stop()


def test_device_facts_over_the_packet_limit_are_announced_without_them(tmp_path, mosquitto):
    info = device_info.collect(__version__, (), MAX_PAYLOAD_BYTES)  # this machine's, as the agent gathers them
    topic, key = Topics().device("pi-tiny", "info"), fleet_key.resolve(None)
    sizes = [Connection.packet_bytes(topic, Envelope("info", "pi-tiny", body).encode(key))
             for body in (msgspec.structs.replace(info, facts={}), info)]
    limit = (sizes[0] + sizes[1]) // 2  # room for the info without facts, not with them
    agent = AgentProcess(mosquitto.url, "pi-tiny", tmp_path, "--max-packet-bytes", str(limit)).start()
    options = session.FleetOptions(broker=mosquitto.url, db=tmp_path / "c.db")
    try:
        with session.fleet(options) as fleet:
            wait_until(lambda: fleet.store.devices() and fleet.store.devices()[0]["info"], 30, "the agent's info",
                       step=lambda: fleet.pump(0.1))
            (device,) = fleet.store.devices()
            assert device["id"] == "pi-tiny" and device["info"]["facts"] == {} and device["info"]["installed"]
        assert f"device facts are over the broker's packet limit ({limit} bytes): announced without them" in agent.log()
    finally:
        agent.terminate()
