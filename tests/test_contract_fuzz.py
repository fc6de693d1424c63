"""Every field of every message kind, given wrong-typed and out-of-bounds values generated from the
contract's own schema, through the real receive paths on a real mosquitto: the controller's
``Fleet`` (as ``campaign run`` and ``devices`` drive it), the agent's daemon, and retained junk
waiting on the broker before ``edgeperf devices`` and ``edgeperf campaign run`` start.

What must hold: no exception escapes a receive loop, every junk message is counted as dropped,
nothing of it is stored, and afterwards the real fleet still runs a campaign to a VALID result.
The junk is signed with the fleet key (as a buggy agent or controller holding it would send it),
so it gets past the signature check to every field's own; unsigned junk stops at the signature
(``test_contract.py``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from agent import __version__, bench, capabilities, contract, fleet_key
from agent.config import AgentConfig
from agent.contract import BODIES, MAX_PAYLOAD_BYTES, TYPES, ProtocolError, Topics
from agent.contract_mutations import MI, mutated, mutations
from agent.daemon import AgentDaemon
from agent.energy_meter import PowerPlan
from agent.scenarios.settings import Mode, Scenario, for_profile, with_overrides
from controller.fleet import session
from controller.store.database import Store
from devices import power, probe
from tests.cli_harness import edgeperf
from tests.fleet_harness import AgentProcess, Mosquitto, campaign_file, signed, wait_until

pytestmark = pytest.mark.slow
TOPICS = Topics()
def envelope(kind: str, device: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"v": 1, "type": kind, "device": device, "seq": 3, "ts": 1_800_000_000.0, "data": data}


ENVELOPE_TYPE = MI.type_info(contract._Wire)
KEY = bytes(range(32))


def junk(kind: str, device: str, body: dict[str, Any], key: bytes) -> list[tuple[str, bytes]]:
    """(what, payload) for every mutation of one valid message, signed: its envelope's fields and its body's."""
    message = signed(envelope(kind, device, body), key)
    out = []
    for f in ENVELOPE_TYPE.fields:
        if f.encode_name == "data":
            found = mutations(MI.type_info(BODIES[kind]), body, "data")
        else:
            found = mutations(f.type, message[f.encode_name], f.encode_name)
        for path, value in found:
            if path == "v" and value == 1:
                continue
            changed = mutated(message, path, value)
            payload = json.dumps(changed if path == "sig" else signed(changed, key), allow_nan=False).encode()
            if len(payload) <= MAX_PAYLOAD_BYTES:
                out.append((f"{kind} {path}={str(value)[:40]!r}", payload))
    return out


# --- valid messages of every kind, as the real agent and controller make them ------------------------


@pytest.fixture(scope="module")
def bodies() -> dict[str, list[dict[str, Any]]]:
    """One or more valid bodies per message kind (results: a performance run with energy and an accuracy run)."""
    settings = with_overrides(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=100, min_query_count=64)
    perf = bench.run(bench.BenchRequest(model="zoo:fashion-mnist-cnn/int8.onnx", settings=settings, engine="native",
                                        device_id="fuzz-dev", power=PowerPlan("estimate", idle_s=0.1), warmup_runs=2))
    acc = bench.run(bench.BenchRequest(
        model="zoo:fashion-mnist-cnn/int8.onnx", engine="native", device_id="fuzz-dev", dataset="fashion-mnist:subset",
        settings=for_profile("smoke", Scenario.SINGLE_STREAM, Mode.ACCURACY), warmup_runs=1))
    perf["job"] = {"campaign": "c1", "key": "fuzz-dev/m/v/SingleStream/performance/r0", "attempt": 1}
    acc["baseline"] = {"kind": "host-cpu", "notes": ["x"]}
    run_id = uuid.uuid4().hex
    job = {"run_id": run_id, "campaign": "c1", "key": "k", "attempt": 1, "model_name": "m/v", "runtime": "litert",
           "artifact": {"url": "http://127.0.0.1:1/a/m.tflite", "sha256": "a" * 64, "size": 10, "name": "m.tflite",
                        "token": "T" * 43},
           "options": {"threads": 1, "providers": ["CPUExecutionProvider"],
                       "provider_options": {"CPUExecutionProvider": {"a": "1"}}, "optimization": "basic", "xnnpack": False,
                       "delegates": ["lib.so"], "compute_units": "cpu_only", "shapes": {"image": [1, 1, 28, 28]}},
           "overrides": {"min_duration_s": 0.5, "max_duration_s": 5.0, "min_queries": 10, "max_queries": 100,
                         "target_qps": 10.0, "target_latency_ms": 5.0, "batch_size": 2},
           "scenario": "SingleStream", "mode": "performance", "profile": "smoke", "dataset": "synthetic", "engine": "native",
           "timeout_s": 60.0, "power": "estimate", "power_idle_s": 0.5, "controller": "controller-0123"}
    out = {
        "status": [{"state": "busy", "session": "0123456789abcdef", "heartbeat_s": 10.0, "agent_version": __version__,
                    "job": run_id, "tags": ["rpi5", "lab-a"]}],
        "info": [{"agent_version": __version__, "tags": ["rpi5"], "facts": probe.collect(),
                  "installed": capabilities.installed(), "max_payload_bytes": MAX_PAYLOAD_BYTES,
                  "power_sources": [a.__dict__ | {"detail": {"k": 1}} for a in power.survey()]}],
        "job": [job],
        "cancel": [{"run_id": run_id, "controller": "controller-0123"}],
        "ack": [{"run_ids": [run_id, uuid.uuid4().hex], "controller": "controller-0123"}],
        "announce": [{"controller": "controller-0123"}],
        "accepted": [{"run_id": run_id, "duplicate": False}],
        "progress": [{"run_id": run_id, "phase": "running", "details": {"engine": "native", "min_duration_s": 1.0}}],
        "finished": [{"run_id": run_id, "duplicate": True, "reason": "already finished"}],
        "failed": [{"run_id": run_id, "reason": "boom", "retryable": True, "duplicate": False}],
        "rejected": [{"run_id": run_id, "reason": "busy", "retryable": True}],
        "telemetry": [{"run_id": run_id, "cpu_pct": 12.5, "temperatures_c": {"cpu-thermal": 48.5}}],
        "result": [json.loads(json.dumps(perf)), json.loads(json.dumps(acc))],
    }
    for kind, examples in out.items():
        for body in examples:
            contract.convert(kind, body)  # every base is valid: each mutation is what breaks it
    return out


def junk_for(bodies: dict[str, list[dict[str, Any]]], kinds: list[str], device: str, key: bytes) -> list[tuple[str, str, bytes]]:
    """(topic, what, payload) of every mutation of every valid body of ``kinds``, signed with ``key``."""
    topic_of = {t: kind for kind, types in TYPES.items() for t in types}
    return [(TOPICS.announce() if t == "announce" else TOPICS.device(device, topic_of[t]), what, payload)
            for t in kinds for body in bodies[t] for what, payload in junk(t, device, body, key)]


def test_every_mutation_is_refused_by_the_contract_and_names_its_field(bodies):
    """The generator's premise, checked: each generated message is invalid, and decode says where."""
    topic_of = {t: kind for kind, types in TYPES.items() for t in types}
    count = 0
    for kind, examples in bodies.items():
        for body in examples:
            for what, payload in junk(kind, "fuzz-dev", body, KEY):
                with pytest.raises(ProtocolError):
                    contract.decode(topic_of[kind], payload, KEY)
                    pytest.fail(f"accepted: {what}")
                count += 1
    fields = sum(len(MI.type_info(b).fields) for b in BODIES.values())
    assert count > 4 * fields, count  # several wrong values per field, nested blocks included


# --- the real receive paths ---------------------------------------------------------------------------------


@pytest.fixture
def mosquitto(tmp_path):
    """Without mosquitto's per-client queue limit (1000): thousands of junk messages arrive at once, and a
    busy test machine must not make the broker drop some before our receive path sees them."""
    broker = Mosquitto(tmp_path)
    broker.write_config("allow_anonymous true\nmax_queued_messages 0\n")
    yield broker.start()
    broker.stop()


def publisher(url: str) -> mqtt.Client:
    host, port = url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fuzz-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(100)
    client.connect(host, int(port))
    client.loop_start()
    return client


def publish_all(client: mqtt.Client, messages: list[tuple[str, bytes]], retain: bool = False) -> None:
    infos = [client.publish(topic, payload, qos=1, retain=retain) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(30)


def test_junk_of_every_agent_message_kind_is_dropped_by_the_controller_nothing_stored(bodies, tmp_path, mosquitto):
    kinds = ["status", "info", "accepted", "progress", "finished", "failed", "rejected", "telemetry", "result"]
    messages = junk_for(bodies, kinds, "fuzz-dev", fleet_key.resolve(None))
    with session.fleet(session.FleetOptions(broker=mosquitto.url, db=tmp_path / "c.db")) as fleet:
        client = publisher(mosquitto.url)
        publish_all(client, [(topic, payload) for topic, _, payload in messages])
        wait_until(lambda: fleet.counters.dropped >= len(messages), 120, f"{len(messages)} junk messages dropped",
                   step=lambda: fleet.pump(0.1))  # any exception other than the contract's would escape here
        fleet.pump(0.5)
        assert fleet.counters.dropped == len(messages)
        assert fleet.counters.results_stored == fleet.counters.events == fleet.counters.telemetry == 0
        assert fleet.store.devices() == [] and fleet.store.result_count() == 0 and "fuzz-dev" not in fleet.devices
        assert fleet.counters.drops.total == len(messages) and len(fleet.counters.drops.by_reason) > 20
        client.loop_stop()
        client.disconnect()


def test_junk_jobs_cancels_and_acks_are_dropped_by_the_agent_which_keeps_its_outbox(bodies, tmp_path, mosquitto):
    device = "fuzz-agent"
    config = AgentConfig(broker=mosquitto.url, device_id=device, data_dir=tmp_path / "agent")
    stop = threading.Event()
    daemon = AgentDaemon(config, stop)
    # an unacknowledged result it must keep
    daemon.outbox.put("kept-run", TOPICS.device(device, "results"), b"{}", "controller-0123")
    thread = threading.Thread(target=daemon.run, kwargs={"connect_wait_s": 10}, daemon=True)
    thread.start()
    messages = junk_for(bodies, ["job", "cancel", "ack", "announce"], device, daemon.key)
    try:
        wait_until(daemon.conn.connected.is_set, 10, "the agent to connect")
        client = publisher(mosquitto.url)
        publish_all(client, [(topic, payload) for topic, _, payload in messages])
        wait_until(lambda: daemon.drops.total >= len(messages), 60, f"{len(messages)} junk messages dropped by the agent")
        time.sleep(0.5)
        assert daemon.drops.total == len(messages) and thread.is_alive()
        assert daemon._job is None  # no junk job started
        assert [e.run_id for e in daemon.outbox.pending()] == ["kept-run"]  # no junk ack removed it
        client.loop_stop()
        client.disconnect()
    finally:
        stop.set()
        thread.join(30)


def test_retained_junk_does_not_stop_devices_or_a_campaign_and_the_fleet_still_works(bodies, tmp_path, mosquitto):
    """Junk left retained on the broker (a status/info per mutation, each on its own device topic) is
    waiting for every controller that starts: `edgeperf devices` and `campaign run` still work."""
    retained, key = [], fleet_key.resolve(None)
    for kind in ("status", "info"):
        for i, (_, what, payload) in enumerate(junk_for(bodies, [kind], "x", key)):
            device, message = f"junk-{kind}-{i:04d}", json.loads(payload)
            if message["device"] == "x":  # on its own device's topic, signed again (unless the signature is the junk)
                message["device"] = device
                message = message if " sig=" in what else signed(message, key)
            retained.append((TOPICS.device(device, kind), json.dumps(message).encode()))
    client = publisher(mosquitto.url)
    publish_all(client, retained, retain=True)
    db = tmp_path / "c.db"
    agent = AgentProcess(mosquitto.url, "pi-real", tmp_path).start()
    try:
        proc = edgeperf("devices", "--broker", mosquitto.url, "--db", str(db), "--wait", "3", "--json")
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        listed = {d["id"] for d in json.loads(proc.stdout)}
        assert listed == {"pi-real"}, listed  # no junk device was registered
        assert f"ignored {len(retained)} message(s) that break the contract" in proc.stderr
        spec = campaign_file(tmp_path / "after-junk.yaml", variants=["int8.tflite"], scenarios=["SingleStream"],
                             modes=["performance"])
        proc = edgeperf("campaign", "run", str(spec), "--broker", mosquitto.url, "--db", str(db), "--json",
                        "--artifact-host", "127.0.0.1", "--artifact-advertise", "127.0.0.1")
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        summary = json.loads(proc.stdout)
        assert (summary["state"], summary["jobs"]) == ("finished", {"done": 1}), json.dumps(summary["failed"])
        with Store(db) as store:
            (campaign,) = store.campaigns()
            (result,) = store.results(campaign["id"])
            assert result.valid and result.device.id == "pi-real"
            assert {d["id"] for d in store.devices()} == {"pi-real"}
    finally:
        agent.terminate()
        publish_all(client, [(topic, b"") for topic, _ in retained], retain=True)  # clear them
        client.loop_stop()
        client.disconnect()
