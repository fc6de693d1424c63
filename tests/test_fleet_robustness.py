"""Bad messages are logged and dropped on both sides, and a burst of results is stored exactly once."""

from __future__ import annotations

import hashlib
import json
import queue
import time
import uuid
from typing import Any

import pytest

from agent import bench, fleet_key, zoo
from agent.contract import MAX_PAYLOAD_BYTES, RuntimeOptions, Topics, decode
from agent.scenarios.settings import Scenario, for_profile, with_overrides
from agent.transport import BrokerUrl, Connection
from controller.fleet import session
from controller.fleet.artifact_server import ArtifactServer
from controller.fleet.campaign import expand
from controller.fleet.campaign import load as load_campaign
from tests.fleet_harness import AgentProcess, Mosquitto, SimulatedAgent, campaign_file, signed, wait_until

pytestmark = pytest.mark.slow
TOPICS = Topics()


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()


def raw_client(url: str, *subscriptions: str) -> Connection:
    conn = Connection(f"raw-{uuid.uuid4().hex[:6]}", BrokerUrl.parse(url), subscriptions=[(s, 1) for s in subscriptions])
    conn.start(wait_s=10)
    return conn


def envelope(kind: str, device: str, data: dict, v: int = 1) -> bytes:
    """A hand-made message signed with this test's fleet key, so the check that refuses it is the one it is about."""
    message = {"v": v, "type": kind, "device": device, "seq": 1, "ts": time.time(), "data": data}
    return json.dumps(signed(message, fleet_key.resolve(None))).encode()


def test_controller_drops_bad_messages_and_keeps_serving(tmp_path, mosquitto):
    options = session.FleetOptions(broker=mosquitto.url, db=tmp_path / "c.db")
    with session.fleet(options) as fleet:
        rogue = raw_client(mosquitto.url, TOPICS.device("rogue", "acks"))
        results_topic = TOPICS.device("rogue", "results")
        bad = [
            (results_topic, b"{not json"),
            (results_topic, envelope("result", "rogue", {"run_id": "x"}, v=99)),  # wrong protocol version
            (results_topic, b" " * (MAX_PAYLOAD_BYTES + 1)),  # oversized
            (results_topic, envelope("result", "someone-else", {"run_id": "x"})),  # foreign device on rogue's topic
            (TOPICS.device("rogue", "events"), envelope("explode", "rogue", {"run_id": "x"})),  # unknown type
            (TOPICS.device("rogue", "status"), envelope("status", "rogue", {"state": "dancing"})),
        ]
        for topic, payload in bad:
            rogue.publish(topic, payload)
        incomplete = envelope("result", "rogue", {"schema": "edgeperf.result/1", "run_id": "r-incomplete"})
        rogue.publish(results_topic, incomplete)  # parses, but lacks the contract's fields: dropped too
        wait_until(
            lambda: fleet.counters.dropped == len(bad) + 1,
            10,
            "every bad message counted",
            step=lambda: fleet.pump(0.1),
        )
        online = {"state": "online", "session": "0123456789abcdef", "heartbeat_s": 10.0, "tags": ["x"]}
        rogue.publish(TOPICS.device("rogue", "status"), envelope("status", "rogue", online))
        wait_until(
            lambda: "rogue" in fleet.devices and fleet.devices["rogue"].state == "online",
            10,
            "a good message after the bad ones",
            step=lambda: fleet.pump(0.1),
        )
        assert fleet.store.result_count() == 0
        # nothing was acked: an ack means "stored", and would delete a device's own copy of a run it names
        assert rogue.inbox.empty()
        rogue.stop()


def test_agent_rejects_bad_jobs_and_still_runs_a_good_one(tmp_path, mosquitto):
    not_a_model = tmp_path / "model.xyz"
    not_a_model.write_text("this is not a model\n")
    agent = AgentProcess(mosquitto.url, "pi-a", tmp_path).start()
    with ArtifactServer("127.0.0.1") as server:
        listener = raw_client(
            mosquitto.url, TOPICS.device("pi-a", "events"), TOPICS.device("pi-a", "results"), TOPICS.device("pi-a", "status")
        )
        try:
            wait_until(lambda: "online" in agent.log() or "serving" in agent.log(), 30, "the agent to connect")
            jobs_topic = TOPICS.device("pi-a", "jobs")
            good_art = server.grant(server.add(zoo.resolve("zoo:fashion-mnist-cnn/int8.tflite").path), 300)
            base = {
                "scenario": "SingleStream",
                "mode": "performance",
                "profile": "smoke",
                "dataset": "synthetic",
                "overrides": {"min_duration_s": 0.2},
                "timeout_s": 60,
                "controller": "controller-test",
            }
            seen: dict[str, list[tuple[str, Any]]] = {}  # run id -> (type, typed body)
            state = {"now": "offline"}

            def drain() -> None:
                try:
                    message = listener.inbox.get(timeout=0.1)
                except queue.Empty:
                    return
                kind = TOPICS.parse(message.topic)[1]
                env = decode(kind, message.payload, fleet_key.resolve(None))
                if kind == "status":
                    state["now"] = env.data.state
                else:
                    seen.setdefault(env.data.run_id, []).append((env.type, env.data))

            def send_and_wait(run_id: str, payload: bytes, terminal: tuple[str, ...]) -> None:
                wait_until(lambda: state["now"] == "online", 30, "the agent idle", step=drain)  # as the controller does
                listener.publish(jobs_topic, payload)
                wait_until(lambda: any(t in terminal for t, _ in seen.get(run_id, [])), 90, f"{run_id} answered", step=drain)

            listener.publish(jobs_topic, b"\x00garbage")
            listener.publish(jobs_topic, envelope("job", "pi-a", base | {"run_id": "v2"}, v=2))
            listener.publish(jobs_topic, b"[" * (MAX_PAYLOAD_BYTES + 10))
            # on pi-a's topic but addressed to another device: dropped, never run
            listener.publish(jobs_topic, envelope("job", "pi-z", base | {"run_id": "foreign", "artifact": good_art}))
            send_and_wait(
                "no-artifact", envelope("job", "pi-a", {"run_id": "no-artifact", "scenario": "SingleStream"}), ("rejected",)
            )
            unknown = base | {"run_id": "unknown-model", "artifact": server.grant(server.add(not_a_model), 300)}
            send_and_wait("unknown-model", envelope("job", "pi-a", unknown), ("failed",))
            wrong = good_art | {"sha256": hashlib.sha256(b"something else").hexdigest()}
            send_and_wait("bad-hash", envelope("job", "pi-a", base | {"run_id": "bad-hash", "artifact": wrong}), ("failed",))
            send_and_wait("good", envelope("job", "pi-a", base | {"run_id": "good", "artifact": good_art}), ("result",))
            reasons = {
                run: [d.reason for t, d in events if t in ("failed", "rejected")] for run, events in seen.items()
            }
            assert any("malformed job" in r and "artifact" in r for r in reasons["no-artifact"])
            # sending it again cannot help: the controller fails the job at once instead of retrying it
            assert [d.retryable for t, d in seen["no-artifact"] if t == "rejected"] == [False]
            assert any("unknown model type '.xyz'" in r for r in reasons["unknown-model"])
            assert any("hash mismatch" in r for r in reasons["bad-hash"])
            assert "v2" not in seen and "foreign" not in seen  # wrong version, foreign device: dropped without an answer
            assert agent.alive()
            log = agent.log()
            assert log.count("dropped a message") >= 4 and "Traceback" not in log
            assert "message for device 'pi-z'" in log
        finally:
            listener.stop()
            assert agent.terminate() == 0


def test_burst_of_5000_results_from_50_agents_is_stored_exactly_once(tmp_path, mosquitto):
    settings = with_overrides(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=100)
    template = bench.run(
        bench.BenchRequest(
            model="zoo:fashion-mnist-cnn/int8.tflite",
            settings=settings,
            options=RuntimeOptions(threads=1),
            engine="native",
            warmup_runs=1,
        )
    )
    options = session.FleetOptions(broker=mosquitto.url, db=tmp_path / "c.db")
    key = fleet_key.resolve(None)
    agents = [SimulatedAgent(mosquitto.url, f"sim-{i:02d}", tmp_path, key).start() for i in range(50)]
    ids = [a.device_id for a in agents]
    spec = load_campaign(campaign_file(tmp_path / "burst.yaml", variants=["int8.tflite"], scenarios=["SingleStream"],
                                       modes=["performance"], repeats=100, devices=f"{{ids: [{', '.join(ids)}]}}"))
    try:
        with session.fleet(options, owner=True) as fleet:
            jobs = expand(spec, [(i, ()) for i in ids])
            campaign_id = fleet.store.create_campaign(spec.name, spec.source, spec.to_dict(),
                                                      [(j.key, j.device_id, j.to_dict()) for j in jobs])
            with fleet.store.transaction():  # 100 attempts out on each device, as the scheduler sends them
                attempts = {i: [] for i in ids}
                for job in fleet.store.jobs(campaign_id):
                    attempts[job.device_id].append(fleet.store.start_attempt(job))
            sent = [run_id for agent in agents for run_id in attempts[agent.device_id]]
            for agent in agents:
                agent.burst(template, attempts[agent.device_id], fleet.controller_id)
            assert len(set(sent)) == 5000

            def step() -> None:
                fleet.pump(0.05)
                for agent in agents:
                    agent.serve(resend_after_s=5.0)

            wait_until(
                lambda: fleet.store.result_count() == 5000 and all(len(a.outbox) == 0 for a in agents),
                120,
                "5000 results stored and acked",
                step=step,
            )
            stored = {r[0] for r in fleet.store.db.execute("SELECT run_id FROM results")}
            assert stored == set(sent)
            assert fleet.counters.results_stored == 5000
            assert sum(a.acked for a in agents) == 5000
    finally:
        for agent in agents:
            agent.stop()
