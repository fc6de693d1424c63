"""The fleet end to end: real brokers (mosquitto started here, and the embedded one), agent
processes, the controller. What happens when any of them fails mid-campaign is the fault suite
(tests/test_fault_suite.py, tests/test_fault_suite_controller.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.outbox import Outbox
from controller.fleet import campaign as campaign_file
from controller.fleet import session
from controller.fleet.broker import EmbeddedBroker
from controller.fleet.scheduler import Fleet
from tests.fleet_harness import AgentProcess, Mosquitto, wait_until
from tests.fleet_harness import campaign_file as write_campaign

pytestmark = pytest.mark.slow


@contextmanager
def controller(broker_url: str, db: Path, mqtt_version: str = "3.1.1") -> Iterator[Fleet]:
    options = session.FleetOptions(
        broker=broker_url,
        db=db,
        artifact_host="127.0.0.1",
        artifact_advertise="127.0.0.1",
        mqtt_version=mqtt_version,
        offline_grace_s=3.0,
        device_wait_s=60.0,
    )
    with session.fleet(options, artifacts=True, owner=True) as fleet:
        yield fleet


def online(fleet: Fleet, *device_ids: str, timeout_s: float = 30) -> None:
    wait_until(
        lambda: all(fleet.devices.get(d) and fleet.devices[d].available for d in device_ids),
        timeout_s,
        f"{', '.join(device_ids)} online",
        step=lambda: fleet.pump(0.1),
    )


def start_agents(url: str, tmp_path: Path, *ids: str, extra: tuple[str, ...] = ()) -> list[AgentProcess]:
    return [AgentProcess(url, d, tmp_path, *extra).start() for d in ids]


def stop_all(agents: list[AgentProcess]) -> None:
    for agent in agents:
        if agent.alive():
            assert agent.terminate() == 0, agent.log()[-3000:]


def one_result_per_job(fleet: Fleet, campaign_id: str) -> None:
    jobs = fleet.store.jobs(campaign_id)
    assert {j.state for j in jobs} == {"done"}, [(j.key, j.state, j.error) for j in jobs if j.state != "done"]
    per_job = fleet.store.db.execute(
        "SELECT job_id, COUNT(*) FROM results WHERE campaign_id = ? GROUP BY job_id HAVING COUNT(*) > 1", (campaign_id,)
    ).fetchall()
    assert per_job == []
    assert len(fleet.store.results(campaign_id)) == len(jobs)


def outbox_drained(agent: AgentProcess) -> bool:
    with Outbox(agent.data_dir / "outbox.sqlite") as outbox:
        return len(outbox) == 0


@pytest.mark.parametrize("broker_kind", ["mosquitto-3.1.1", "mosquitto-5", "embedded"])
def test_two_agent_campaign_end_to_end(tmp_path, broker_kind):
    # Both runtimes on the first broker; the other brokers carry the same jobs, messages and acks for one
    # runtime (each job a worker process on the device: CPU for CI, not coverage of the brokers).
    variants = ["int8.tflite", "int8.onnx"] if broker_kind == "mosquitto-3.1.1" else ["int8.tflite"]
    with _broker(broker_kind, tmp_path) as url:
        version = "5" if broker_kind.endswith("-5") else "3.1.1"
        agents = start_agents(url, tmp_path, "pi-a", "pi-b", extra=("--mqtt-version", version, "--tag", "lab"))
        try:
            with controller(url, tmp_path / "c.db", mqtt_version=version) as fleet:
                online(fleet, "pi-a", "pi-b")
                spec = campaign_file.load(
                    write_campaign(
                        tmp_path / "e2e.yaml",
                        variants=variants,
                        scenarios=["SingleStream"],
                        modes=["performance", "accuracy"],
                        devices="{tags: [lab]}",
                    )
                )
                campaign_id = fleet.create_campaign(spec)
                assert fleet.run(campaign_id) == "finished"
                one_result_per_job(fleet, campaign_id)
                results = fleet.store.results(campaign_id)
                assert len(results) == 4 * len(variants) and {r.device.id for r in results} == {"pi-a", "pi-b"}
                assert all(r.valid for r in results), [r.invalid_reasons for r in results]
                accuracy = [r for r in results if r.mode == "accuracy"]
                assert len(accuracy) == 2 * len(variants) and all(r.kpis.accuracy.top1 >= 0.86 for r in accuracy)
                devices = {d["id"]: d for d in fleet.store.devices()}
                assert devices["pi-a"]["info"]["facts"]["os"] and devices["pi-a"]["tags"] == ["lab"]
            wait_until(lambda: all(outbox_drained(a) for a in agents), 10, "agents' outboxes emptied by acks")
        finally:
            stop_all(agents)


@contextmanager
def _broker(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "embedded":
        with EmbeddedBroker() as broker:
            yield broker.url
    else:
        broker = Mosquitto(tmp_path).start()
        try:
            yield broker.url
        finally:
            broker.stop()
