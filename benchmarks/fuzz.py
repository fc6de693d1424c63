"""Protocol fuzz under load: junk on every topic while a real campaign runs, and what must still hold.

What it runs, all on this machine and in one temporary folder (nothing is downloaded):

- Debian's mosquitto on a free loopback port (``persistence false``, ``max_queued_messages 0`` so the
  broker itself drops nothing for a slow subscriber: a loss would then be ours);
- two real agents (``python -m agent.cli run``) and the real controller as a separate process
  (``edgeperf campaign run … --json``), all holding one fleet key made here;
- a campaign of ``--repeats`` SingleStream performance runs of the zoo's int8 TFLite model per device;
- once the campaign exists, a fuzzer process (a plain paho client) publishes ``--messages`` junk
  messages at about ``--rate`` per second on every topic kind (status, info, jobs, events, results,
  acks, telemetry) of the real devices and of invented ones, and on the fleet-wide announce topic.

The junk, from one seeded generator: (a) every wrong-typed or out-of-bounds value of every field of
every message kind (generated from the contract's own schema, as tests/test_contract_fuzz.py does),
signed with the fleet key so it gets past the signature to the field checks; (b) valid bodies and
mutations unsigned, signed with another key or with a garbled signature; (c) valid bodies signed but
of another protocol version; (d) foreign schemas: random JSON values, deep nesting, other IoT apps'
envelopes; (e) bytes that are not JSON; (f) a few dozen payloads over 1 MiB; (g) real signed
messages captured from the live fleet, replayed on other devices' topics or topics of another kind;
(h) a few thousand of all these published retained (cleared with empty retained payloads at the
end). QoS 0 for most, QoS 1 for a fifth. Nothing it sends is a valid message for its topic: every
mutation is checked against ``contract.decode`` before the run. ``--seed`` fixes the sequence of
topics and junk; what a replay carries is whatever the live fleet said at that moment.

What it checks, each printed PASS/FAIL with its figures (exit 1 if any fails): the controller exited 0
and its JSON summary says ``finished`` with every job done; the database holds exactly one result per
job, each an attempt of its job (``results.run_id`` = ``attempts.run_id``), from the job's own device,
valid, decoding through the contract; ``devices`` holds only the two agents; both agents are alive
after the fuzz and exit 0 on SIGTERM; no ``Traceback`` in any log; no junk left retained on the broker;
no fleet client lost its broker connection; the fuzz ran while the campaign ran. RSS (psutil, every
0.2 s; peak from /proc VmHWM) of the controller and each agent daemon at the fuzz's start, at its peak
and at the end is printed with the growth; a controller whose peak grew more than 50 MB over its RSS at
the fuzz's start fails.

    python benchmarks/fuzz.py [--messages 100000] [--seed 1] [--rate 2000] [--repeats 40] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil

from agent import contract, fleet_key
from agent.cli import run_command
from agent.contract import BODIES, MAX_PAYLOAD_BYTES, TYPES, ProtocolError, Topics
from agent.contract_mutations import MI, mutated, mutations
from controller.fleet.broker import free_port

MB = 1 << 20
REAL_IDS = ("fuzz-pi-a", "fuzz-pi-b")
CAMPAIGN_MODEL = "int8.tflite"
BODY_MODEL = "zoo:fashion-mnist-cnn/int8.onnx"
TEMPLATE_DEVICE = "fuzz-template"
CONTROLLER_RSS_LIMIT_MB = 50.0
TOPICS = Topics()
KIND_OF_TYPE = {t: kind for kind, types in TYPES.items() for t in types}
DEVICE_KINDS = tuple(contract.TOPICS)
clock = time.monotonic


# ---- building payloads ------------------------------------------------------------------------------
def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()


def sign(key: bytes, v: Any, kind: Any, device: Any, data: bytes) -> str:
    """The envelope signature over whatever fields it has (a wrong one is signed as it stands: junk that
    gets past the signature to the contract's own checks)."""
    return hmac.new(key, f"{v}\n{kind}\n{device}\n".encode() + data, hashlib.sha256).hexdigest()


def envelope(head: dict[str, Any], data: bytes, sig: Any = None) -> bytes:
    """The payload: ``head`` (v, type, device, seq, ts), the body's exact bytes, and ``sig`` unless None."""
    tail = b"" if sig is None else b',"sig":' + dumps(sig)
    return dumps(head)[:-1] + b',"data":' + data + tail + b"}"


@dataclass(frozen=True)
class Mutant:
    """One signed schema mutation: its message type, what changed, and the pieces of its envelope."""

    type: str
    what: str
    head: dict[str, Any]  # v, type, device, seq, ts: the device is filled in per target unless it is the mutation
    data: bytes
    device_mutated: bool
    sig: Any = None  # set when the signature itself is the mutation

    def payload(self, key: bytes, device: str) -> bytes:
        head = self.head if self.device_mutated else self.head | {"device": device}
        if self.what.startswith("sig="):
            return envelope(head, self.data, self.sig)
        return envelope(head, self.data, sign(key, head["v"], head["type"], head["device"], self.data))


def valid_bodies(workdir: Path) -> dict[str, dict[str, Any]]:
    """One valid body per message type, the way the real agent and controller make them: the result from a
    short real bench of the zoo's ONNX model, the device facts from this machine."""
    from agent import __version__, bench, device_info
    from agent.scenarios.settings import Scenario, for_profile, with_overrides

    settings = with_overrides(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=100, min_query_count=64)
    result = bench.run(bench.BenchRequest(model=BODY_MODEL, settings=settings, engine="native", device_id=TEMPLATE_DEVICE,
                                          warmup_runs=2, log_dir=workdir / "runs"))
    result |= {"job": {"campaign": "c1", "key": "k/r0", "attempt": 1}}
    run_id, owner, session = uuid.uuid4().hex, "controller-0123456789ab", uuid.uuid4().hex[:16]
    info = contract.to_builtins(device_info.collect(__version__, ("lab-a",), MAX_PAYLOAD_BYTES))
    job = {"run_id": run_id, "campaign": "c1", "key": "k", "attempt": 1, "model_name": "m/v", "runtime": "litert",
           "artifact": {"url": "http://127.0.0.1:1/a/m.tflite", "sha256": "a" * 64, "size": 10, "name": "m.tflite",
                        "token": "T" * 43},
           "options": {"threads": 1, "providers": ["CPUExecutionProvider"],
                       "provider_options": {"CPUExecutionProvider": {"a": "1"}}, "optimization": "basic", "xnnpack": False,
                       "delegates": ["lib.so"], "compute_units": "cpu_only",
                       "shapes": {"image": [1, 1, 28, 28]}},
           "overrides": {"min_duration_s": 0.5, "max_duration_s": 5.0, "min_queries": 10, "max_queries": 100, "target_qps": 10.0,
                         "target_latency_ms": 5.0, "batch_size": 2},
           "scenario": "SingleStream", "mode": "performance", "profile": "smoke", "dataset": "synthetic", "engine": "native",
           "timeout_s": 60.0, "power": "estimate", "power_idle_s": 0.5, "controller": owner}
    bodies = {
        "status": {"state": "busy", "session": session, "heartbeat_s": 10.0, "agent_version": __version__, "job": run_id,
                   "tags": ["rpi5", "lab-a"], "uptime_s": 12.5},
        "info": info | {"power_sources": [p | {"detail": {"k": 1}} for p in info["power_sources"]] or
                        [{"name": "estimate", "available": True, "reason": "", "detail": {"k": 1}}]},
        "job": job, "cancel": {"run_id": run_id, "controller": owner},
        "ack": {"run_ids": [run_id, uuid.uuid4().hex], "controller": owner},
        "announce": {"controller": owner}, "accepted": {"run_id": run_id, "duplicate": False},
        "progress": {"run_id": run_id, "phase": "running", "details": {"engine": "native", "min_duration_s": 1.0}},
        "finished": {"run_id": run_id, "duplicate": True, "reason": "already finished"},
        "failed": {"run_id": run_id, "reason": "boom", "retryable": True, "duplicate": False},
        "rejected": {"run_id": run_id, "reason": "busy", "retryable": True},
        "cancelled": {"run_id": run_id, "reason": "cancelled by the controller"},
        "duplicate": {"session": session, "other_session": uuid.uuid4().hex[:16], "detail": "two agents"},
        "telemetry": {"run_id": run_id, "cpu_pct": 12.5, "temperatures_c": {"cpu-thermal": 48.5}},
        "result": result,
    }
    bodies = json.loads(json.dumps(bodies))  # plain JSON values: lists, not tuples
    for kind, body in bodies.items():
        contract.convert(kind, body)  # every base is valid: each mutation is what breaks it
    return bodies


def mutants(bodies: dict[str, dict[str, Any]], key: bytes) -> tuple[dict[str, list[Mutant]], list[str]]:
    """Every signed mutation of every valid body, by the topic kind it belongs on, each checked to be refused
    by ``contract.decode``; and the descriptions of any the contract accepted (never published)."""
    head_type = MI.type_info(contract._Wire)
    by_kind: dict[str, list[Mutant]] = {kind: [] for kind in TYPES}
    accepted: list[str] = []
    for kind, body in bodies.items():
        base = {"v": 1, "type": kind, "device": TEMPLATE_DEVICE, "seq": 3, "ts": 1_800_000_000.0, "data": body}
        for f in head_type.fields:
            name = f.encode_name
            found = (mutations(MI.type_info(BODIES[kind]), body, "data") if name == "data"
                     else mutations(f.type, base.get(name, "0" * 64), name))
            for path, value in found:
                if path == "v" and value == 1:
                    continue
                message = mutated(base | {"sig": ""}, path, value)
                data = dumps(message.pop("data"))
                head = {k: message[k] for k in ("v", "type", "device", "seq", "ts")}
                m = Mutant(kind, f"{path}={str(value)[:40]!r}", head, data, path == "device", message["sig"])
                payload = m.payload(key, TEMPLATE_DEVICE)
                if len(payload) > MAX_PAYLOAD_BYTES:
                    continue
                try:
                    contract.decode(KIND_OF_TYPE[kind], payload, key)
                    accepted.append(f"{kind} {m.what}")
                except ProtocolError:
                    by_kind[KIND_OF_TYPE[kind]].append(m)
    return by_kind, accepted


FOREIGN_APPS: list[Any] = [  # other applications' messages that might share a broker
    {"timestamp": 1_700_000_000_000, "metrics": [{"name": "bdSeq", "type": "Int64", "value": 0}], "seq": 0},  # Sparkplug-like
    {"Time": "2024-01-01T00:00:00", "ENERGY": {"Power": 12, "Voltage": 230}},  # Tasmota telemetry
    {"name": "kitchen", "state_topic": "home/kitchen/state", "unique_id": "k1", "device_class": "temperature"},  # HA discovery
    {"state": {"reported": {"temperature": 21.5}}, "version": 3, "timestamp": 1_700_000_000},  # AWS IoT shadow
    {"specversion": "1.0", "type": "com.example.status", "source": "/x", "id": "1", "data": {"state": "online"}},  # CloudEvents
    {"v": 1, "type": "status", "device": "x", "data": {"state": "online"}, "schema": "edgeperf.result/2"},
    {"v": 1, "type": "result", "payload": {"schema": "edgeperf.result/1"}},
    {"homie": "4.0", "$state": "ready"},
]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value; objects often use the envelope's own keys, so they look almost right."""
    roll = rng.random()
    if depth >= 5 or roll < 0.45:
        return rng.choice([None, True, False, 0, -1, 2**63, 1.5e300, -0.0, "", "online", "x" * rng.randint(1, 300),
                           rng.randint(-10**9, 10**9), rng.random(), "\u00fc\u2603\U0001f600"])
    if roll < 0.7:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    keys = ["v", "type", "device", "seq", "ts", "data", "sig", "state", "run_id", "schema", "controller", "x"]
    return {rng.choice(keys) if rng.random() < 0.7 else uuid.UUID(int=rng.getrandbits(128)).hex[:8]: random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 7))}


# ---- the fuzzer process -----------------------------------------------------------------------------
CATEGORIES = {  # weights; (f) oversized and (h) retained are counts, not weights
    "mutation": 40, "unsigned": 12, "version": 8, "foreign": 14, "bytes": 10, "replay": 12, "wrong-topic": 4,
}
VERSIONS = (0, 2, 3, 99, -1, 2**31, 2**70, "1", "v1", None, True, 1.5, [1], {"major": 1})
ODD_IDS = ("", "fuzz pi", "\u00fcber-pi", "x" * 100, "..", "a:b:c", "CAPS.and_under-score", "-", "0" * 64)


@dataclass
class Fuzzer:
    """Picks a topic and a junk payload for it, from one seeded generator."""

    rng: random.Random
    key: bytes
    real: tuple[str, ...]
    bodies: dict[str, dict[str, Any]]
    by_kind: dict[str, list[Mutant]]
    captured: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)  # topic kind -> (device, payload)
    invented: list[str] = field(default_factory=list)
    other_key: bytes = field(default_factory=lambda: bytes(range(32)))
    capture_rng: random.Random = field(default_factory=random.Random)  # paho's thread: must not draw from ``rng``
    seq: int = 0

    def __post_init__(self) -> None:
        self.invented = [f"ghost-{i:03d}" for i in range(200)]
        self.captured = {kind: [] for kind in TYPES}  # every key up front: the capture thread only appends

    def target(self) -> tuple[str, str, str]:
        """(topic, topic kind, device): real devices, invented ones (a pool and fresh ids), odd topic levels, announce."""
        roll = self.rng.random()
        if roll < 0.08:
            return TOPICS.announce(), "announce", self.rng.choice((*self.real, "ghost-000"))
        kind = self.rng.choice(DEVICE_KINDS)
        if roll < 0.48:
            device = self.rng.choice(self.real)
        elif roll < 0.88:
            device = self.rng.choice(self.invented)
        elif roll < 0.96:
            device = f"fresh-{self.rng.getrandbits(40):010x}"
        else:
            odd = self.rng.choice(ODD_IDS)
            return f"{TOPICS.prefix}/devices/{odd}/{kind}", kind, odd or "x"
        return TOPICS.device(device, kind), kind, device

    def body_for(self, kind: str, device: str) -> tuple[str, bytes]:
        """A valid body of a type that belongs on ``kind`` (its device block set to ``device``), encoded."""
        msg_type = self.rng.choice(TYPES[kind])
        body = self.bodies[msg_type]
        if msg_type == "result":
            body = body | {"device": body["device"] | {"id": device}}
        return msg_type, dumps(body)

    def head(self, msg_type: Any, device: Any, v: Any = 1) -> dict[str, Any]:
        self.seq += 1
        return {"v": v, "type": msg_type, "device": device, "seq": self.seq, "ts": time.time()}

    def mutation(self, kind: str, device: str) -> bytes:
        """(a) a signed schema mutation of a message that belongs on this topic: it reaches the field checks."""
        return self.rng.choice(self.by_kind[kind]).payload(self.key, device)

    def unsigned(self, kind: str, device: str) -> bytes:
        """(b) a valid message (or a mutation) without a signature, signed with another key, or garbled."""
        msg_type, data = self.body_for(kind, device)
        head, roll = self.head(msg_type, device), self.rng.random()
        if roll < 0.4:
            return envelope(head, data)
        if roll < 0.7:
            return envelope(head, data, sign(self.other_key, 1, msg_type, device, data))
        if roll < 0.85:
            good = sign(self.key, 1, msg_type, device, data)
            return envelope(head, data, self.rng.choice([good[:-1], good.upper(), good[::-1], "", "0" * 64, good + "0"]))
        return self.rng.choice(self.by_kind[kind]).payload(self.other_key, device)

    def version(self, kind: str, device: str) -> bytes:
        """(c) a valid body, signed, of another protocol version."""
        msg_type, data = self.body_for(kind, device)
        v = self.rng.choice(VERSIONS)
        return envelope(self.head(msg_type, device, v), data, sign(self.key, v, msg_type, device, data))

    def foreign(self, kind: str, device: str) -> bytes:
        """(d) another schema: random JSON, deep nesting, another app's envelope, our envelope with a foreign body."""
        roll = self.rng.random()
        if roll < 0.45:
            return dumps(random_json(self.rng))
        if roll < 0.6:
            depth = self.rng.choice([17, 64, 1000, 100_000])
            return (b'{"a":' * depth + b"1" + b"}" * depth) if self.rng.random() < 0.5 else b"[" * depth + b"]" * depth
        if roll < 0.8:
            return dumps(self.rng.choice(FOREIGN_APPS))
        msg_type = self.rng.choice(TYPES[kind])
        depth = self.rng.choice([17, 5000])  # past MAX_DEPTH, and past the decoder's recursion limit
        nested = b'{"facts":' + b'{"a":' * depth + b"1" + b"}" * (depth + 1)
        data = dumps(random_json(self.rng, 1)) if self.rng.random() < 0.5 else nested
        payload = envelope(self.head(msg_type, device), data, sign(self.key, 1, msg_type, device, data))
        try:  # a body of only unknown fields is a valid info or telemetry (unknown fields are ignored): sent unsigned
            contract.decode(kind, payload, self.key)
        except ProtocolError:
            return payload
        return envelope(self.head(msg_type, device), data)

    def raw_bytes(self, kind: str, device: str) -> bytes:
        """(e) bytes that are not a JSON envelope: random, invalid UTF-8, truncated, NaN literals, other encodings."""
        roll = self.rng.random()
        if roll < 0.3:
            return self.rng.randbytes(self.rng.choice([0, 1, 7, 64, 1000, 20_000]))
        if roll < 0.5:
            whole = self.mutation(kind, device)
            return whole[: self.rng.randrange(len(whole))]
        return self.rng.choice([
            b"", b"\xff\xfe\x00\x00", "\ufeff{}".encode(), b'{"v": NaN}', b'{"v": Infinity, "type": "status"}', b"null",
            b"<xml><status>online</status></xml>", b"\x82\xa1v\x01\xa4type\xa6status", b"{'v': 1}", b'{"v":1,', b"\x00" * 100,
            b'{"v":1e400,"type":"status","device":"x","data":{}}', b'"\xed\xa0\x80"', "online".encode("utf-16"),
        ])

    def replay(self, kind: str, device: str) -> bytes:
        """(g) a real signed message heard on the live fleet, replayed here: another device's topic, or another kind."""
        pool = [p for k, entries in self.captured.items() for d, p in entries if k != kind or (d != device and k != "announce")]
        if not pool:
            return self.wrong_topic(kind, device)
        return self.rng.choice(pool)

    def wrong_topic(self, kind: str, device: str) -> bytes:
        """A valid, signed message for this device whose type does not belong on this topic kind."""
        msg_type = self.rng.choice([t for t in BODIES if t not in TYPES[kind]])
        body = self.bodies[msg_type]
        if msg_type == "result":
            body = body | {"device": body["device"] | {"id": device}}
        data = dumps(body)
        return envelope(self.head(msg_type, device), data, sign(self.key, 1, msg_type, device, data))

    def oversized(self, kind: str, device: str) -> bytes:
        """(f) a message over 1 MiB: a signed valid body padded, or plain filler."""
        size = self.rng.randint(MAX_PAYLOAD_BYTES + 1, 3 * MB)
        if self.rng.random() < 0.3:
            return b"x" * size
        msg_type = self.rng.choice(TYPES[kind])
        body = self.bodies[msg_type] | {"padding": "p" * size}
        if msg_type == "result":
            body["device"] = body["device"] | {"id": device}
        data = dumps(body)
        return envelope(self.head(msg_type, device), data, sign(self.key, 1, msg_type, device, data))

    def capture(self, topic: str, payload: bytes) -> None:
        """Keep a few real signed messages per topic kind (valid, and on their own device's topic) to replay."""
        try:
            if topic == TOPICS.announce():
                device, kind = "", "announce"
            else:
                device, kind = TOPICS.parse(topic)
            env = contract.decode(kind, payload, self.key)
        except ProtocolError:
            return
        if kind != "announce" and env.device != device:
            return
        entries = self.captured[kind]
        if len(entries) < 64:
            entries.append((device, payload))
        else:
            entries[self.capture_rng.randrange(64)] = (device, payload)


def connect(url: str, name: str) -> mqtt.Client:
    """A plain paho client, network thread started; unlimited queue, 100 QoS 1 messages in flight."""
    host, port = url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.connect(host, int(port))
    client.loop_start()
    return client


def fuzzer_process(url: str, key_path: str, workdir: str, messages: int, seed: int, rate: float, retained: int,
                   oversized: int, ready: Any, go: Any, published: Any, report: Any) -> None:
    """Build the corpus, wait for go, publish ``messages`` junk messages at ``rate`` per second, clear the
    retained ones, and report what was sent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        key = fleet_key.load(Path(key_path))
        bodies = valid_bodies(Path(workdir))
        by_kind, accepted = mutants(bodies, key)
        rng = random.Random(seed)
        fuzz = Fuzzer(rng, key, REAL_IDS, bodies, by_kind, capture_rng=random.Random(seed + 1))
        listener = connect(url, "fuzz-capture")
        listener.on_message = lambda c, u, m: fuzz.capture(m.topic, m.payload)
        for device in REAL_IDS:
            listener.subscribe(f"{TOPICS.prefix}/devices/{device}/+", qos=0)
        listener.subscribe(TOPICS.announce(), qos=0)
        client = connect(url, "fuzz")
        ready.set()
        go.wait()
        makers: dict[str, Callable[[str, str], bytes]] = {
            "mutation": fuzz.mutation, "unsigned": fuzz.unsigned, "version": fuzz.version, "foreign": fuzz.foreign,
            "bytes": fuzz.raw_bytes, "replay": fuzz.replay, "wrong-topic": fuzz.wrong_topic,
        }
        names, weights = list(CATEGORIES), list(CATEGORIES.values())
        retain_at = set(rng.sample(range(messages), min(retained, messages)))
        big_at = set(range(messages // (oversized + 1), messages, max(1, messages // (oversized + 1)))[:oversized])
        counts: Counter[str] = Counter()
        retained_topics: set[str] = set()
        devices: set[str] = set()
        last_qos1 = None
        start = clock()
        for i in range(messages):
            if i % 50 == 0 and (ahead := i / rate - (clock() - start)) > 0:
                time.sleep(ahead)
            topic, kind, device = fuzz.target()
            category = "oversized" if i in big_at else rng.choices(names, weights)[0]
            payload = fuzz.oversized(kind, device) if category == "oversized" else makers[category](kind, device)
            qos, retain = (1 if rng.random() < 0.2 else 0), i in retain_at
            info = client.publish(topic, payload, qos=qos, retain=retain)
            last_qos1 = info if qos else last_qos1
            if retain:
                retained_topics.add(topic)
            counts[category] += 1
            counts[f"qos{qos}"] += 1
            devices.add(device)
            published.value = i + 1
        if last_qos1 is not None:
            last_qos1.wait_for_publish(120)
        seconds = clock() - start
        clears = [client.publish(t, b"", qos=1, retain=True) for t in sorted(retained_topics)]
        for c in clears:
            c.wait_for_publish(120)
        for c in (client, listener):
            c.disconnect()
            c.loop_stop()
        report.put({"published": messages, "seconds": seconds, "counts": dict(counts), "retained_topics": len(retained_topics),
                    "retained": len(retain_at), "mutants": sum(len(v) for v in by_kind.values()), "accepted_mutants": accepted,
                    "devices": len(devices), "captured": {k: len(v) for k, v in fuzz.captured.items()}})
    except Exception as exc:  # the orchestrator must hear it, not wait for its timeout
        import traceback

        report.put({"error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"})
        ready.set()


# ---- the real parts ---------------------------------------------------------------------------------
def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = clock() + timeout_s
    while clock() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout_s:g} s waiting for {what}")


class Mosquitto:
    """Debian's mosquitto on a free loopback port; no persistence, no per-client queue limit."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
        self.binary, self.port, self.log = binary, free_port(), workdir / "mosquitto.log"
        self.conf = workdir / "mosquitto.conf"
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n{user}"
                             f"max_queued_messages 0\nlog_dest file {self.log}\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: port_open(self.port), 10, "mosquitto to listen")
        return self

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[Any] | None, timeout_s: float = 30) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout_s``; the exit status (None if there was no process)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def start_agent(url: str, device_id: str, workdir: Path, key_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """One ``edgeperf-agent run`` process with its own data directory; its log file."""
    data_dir = workdir / device_id
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "agent.log"
    cmd = run_command(url, device_id, data_dir, "--fleet-key-file", str(key_path), "--log-level", "info")
    with log_path.open("ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log_path


def wait_online(url: str, key: bytes, device_ids: tuple[str, ...], timeout_s: float) -> None:
    """Until every agent has published a signed ``online`` status (it is connected and speaking)."""
    online: set[str] = set()

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            env = contract.decode("status", msg.payload, key)
        except ProtocolError:
            return
        if env.data.state == "online":
            online.add(env.device)

    client = connect(url, "fuzz-wait")
    client.on_message = on_message
    client.subscribe(TOPICS.all_devices("status"), qos=1)
    try:
        wait_for(lambda: online >= set(device_ids), timeout_s, f"agents {', '.join(device_ids)} to say online")
    finally:
        client.disconnect()
        client.loop_stop()


def campaign_yaml(path: Path, repeats: int) -> Path:
    path.write_text(textwrap.dedent(f"""\
        name: fuzz-campaign
        profile: smoke
        scenarios: [SingleStream]
        modes: [performance]
        repeats: {repeats}
        retries: 1
        timeout_s: 120
        dataset: synthetic
        devices: all
        overrides:
          min_duration_s: 0.5
        models:
          - name: fmnist
            variants:
              - artifact: zoo:fashion-mnist-cnn/{CAMPAIGN_MODEL}
                threads: 1
        """))
    return path


def db_rows(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` from the controller's database, read-only; [] while it does not exist yet."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql, args).fetchall()
    except sqlite3.Error:
        return []


# ---- memory -----------------------------------------------------------------------------------------
class RssSampler(threading.Thread):
    """RSS of named processes every 0.2 s, with their peak so far (VmHWM: a peak between samples is not missed)."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in pids}  # (time, RSS, peak so far)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.sample()

    def sample(self) -> None:
        for name, pid in self.pids.items():
            try:
                rss = psutil.Process(pid).memory_info().rss / MB
                status = Path(f"/proc/{pid}/status").read_text() if Path(f"/proc/{pid}/status").exists() else ""
            except (psutil.Error, OSError):
                continue  # it has exited: its last sample stands
            hwm = [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")]
            peak = max([rss, *hwm, *(s[2] for s in self.samples[name][-1:])])
            self.samples[name].append((clock(), rss, peak))

    def figures(self, name: str, start_at: float) -> tuple[float, float, float, float]:
        """MB: RSS at the fuzz's start, the peak before it (start-up), the peak over the whole run, and the last RSS."""
        samples = self.samples[name]
        if not samples:
            return 0.0, 0.0, 0.0, 0.0
        first = ([s for s in samples if s[0] <= start_at] or samples[:1])[-1]
        return first[1], first[2], samples[-1][2], samples[-1][1]


# ---- the checks -------------------------------------------------------------------------------------
@dataclass
class Report:
    checks: list[tuple[bool, str]] = field(default_factory=list)

    def check(self, ok: bool, text: str) -> None:
        self.checks.append((ok, text))
        print(f"{'PASS' if ok else 'FAIL'}  {text}", flush=True)

    @property
    def ok(self) -> bool:
        return all(ok for ok, _ in self.checks)


def check_database(report: Report, db: Path) -> None:
    """Exactly the campaign's results: one per job, an attempt of it, from its own (real) device, valid, decodable."""
    jobs = {row[0]: row[1:] for row in db_rows(db, "SELECT id, device_id, key, state, result_run_id FROM jobs")}
    results = db_rows(db, "SELECT r.run_id, r.job_id, r.device_id, r.valid, r.doc, a.job_id FROM results r "
                          "LEFT JOIN attempts a ON a.run_id = r.run_id")
    attempts = db_rows(db, "SELECT state, count(*) FROM attempts GROUP BY state")
    report.check(bool(jobs) and len(results) == len(jobs),
                 f"results stored: {len(results)} for {len(jobs)} jobs (attempts by state: {dict(attempts)})")
    wrong: list[str] = []
    for run_id, job_id, device, valid, doc, attempt_job in results:
        job = jobs.get(job_id)
        problem = ""
        if job is None or attempt_job != job_id:
            problem = "not an attempt of a campaign job"
        elif device not in REAL_IDS or device != job[0] or job[3] != run_id or job[2] != "done":
            problem = f"device {device!r} for job of {job[0]!r} ({job[2]}, result {job[3]})"
        else:
            try:
                result = contract.decode_body("result", doc.encode())
            except ProtocolError as exc:
                problem = f"does not decode: {exc}"
            else:
                expected = {"valid": (bool(valid), result.valid, True), "run id": (result.run_id, run_id),
                            "device": (result.device.id, device), "job": (result.job and result.job.key, job[1]),
                            "scenario": (result.scenario, "SingleStream"), "mode": (result.mode, "performance"),
                            "queries": (result.kpis.query_count > 0, True), "duration": (result.kpis.duration_s > 0, True),
                            "p90": ((result.kpis.latency_ms.p90 or 0) > 0, True)}
                problem = ", ".join(f"{name} {got}" for name, (*got, want) in expected.items() if set(got) != {want})
        if problem:
            wrong.append(f"{run_id}: {problem}")
    report.check(not wrong and bool(results),
                 f"every result is an attempt of its job, from its device, valid and decodable ({len(wrong)} wrong)"
                 + "".join(f"\n      {w}" for w in wrong[:10]))
    devices = sorted(row[0] for row in db_rows(db, "SELECT id FROM devices"))
    report.check(devices == sorted(REAL_IDS), f"devices table holds only the real agents: {devices[:10]} ({len(devices)} rows)")
    campaigns = db_rows(db, "SELECT count(*) FROM campaigns")
    report.check(campaigns == [(1,)], f"one campaign in the database: {campaigns}")


def retained_left(url: str, key: bytes, listen_s: float = 2.0) -> list[str]:
    """Topics holding a retained message that is not a real, valid one of its own device (the junk's leftovers)."""
    found: list[str] = []

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if not msg.retain:
            return
        try:
            device, kind = TOPICS.parse(msg.topic)
            if contract.decode(kind, msg.payload, key).device == device and device in REAL_IDS:
                return
        except ProtocolError:
            pass
        found.append(msg.topic)

    client = connect(url, "fuzz-retained")
    client.on_message = on_message
    client.subscribe(f"{TOPICS.prefix}/#", qos=0)
    time.sleep(listen_s)
    client.disconnect()
    client.loop_stop()
    return found


def tracebacks(paths: list[Path]) -> dict[str, int]:
    return {p.name if p.name != "agent.log" else f"{p.parent.name}/agent.log": p.read_text(errors="replace").count("Traceback")
            for p in paths}


def drop_lines(path: Path) -> int:
    text = path.read_text(errors="replace")
    return text.count("dropped a message") + text.count("more message(s)")


# ---- the run ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="junk messages to publish (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the junk generator")
    parser.add_argument("--rate", type=float, default=2000.0, help="target messages per second (a throttle, not a flood)")
    parser.add_argument("--repeats", type=int, default=40, help="runs per device (must outlast the fuzz)")
    parser.add_argument("--retained", type=int, default=3000, help="messages published retained")
    parser.add_argument("--oversized", type=int, default=40, help="messages over 1 MiB")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, database)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="edgeperf-fuzz-"))
    os.environ["XDG_DATA_HOME"] = str(workdir / "xdg")  # nothing of this run lands in the user's data folder
    try:
        return run(args, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: Path) -> int:
    key_path = workdir / "fleet.key"
    key = fleet_key.generate(key_path)
    broker = Mosquitto(workdir).start()
    ctx = mp.get_context("spawn")
    ready, go, published, reports = ctx.Event(), ctx.Event(), ctx.Value("q", 0, lock=False), ctx.Queue()
    fuzzer = ctx.Process(target=fuzzer_process, daemon=True,
                         args=(broker.url, str(key_path), str(workdir), args.messages, args.seed, args.rate, args.retained,
                               args.oversized, ready, go, published, reports))
    agents: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    controller: subprocess.Popen[str] | None = None
    sampler: RssSampler | None = None
    try:
        fuzzer.start()  # builds its corpus (a short real bench) while the agents start
        for device in REAL_IDS:
            agents[device] = start_agent(broker.url, device, workdir, key_path)
        wait_online(broker.url, key, REAL_IDS, 90)
        ready.wait(300)
        if not fuzzer.is_alive() and reports.empty():
            raise SystemExit("the fuzzer process died while building its corpus")
        db, spec = workdir / "controller.db", campaign_yaml(workdir / "fuzz-campaign.yaml", args.repeats)
        out, err = (workdir / "controller.out").open("w"), (workdir / "controller.err").open("w")
        controller = subprocess.Popen(
            [sys.executable, "-c", "from controller.cli import main; main()", "campaign", "run", str(spec),
             "--broker", broker.url, "--db", str(db), "--fleet-key", str(key_path), "--json", "--artifact-host", "127.0.0.1",
             "--artifact-advertise", "127.0.0.1"], stdout=out, stderr=err, text=True, env=os.environ | {"COLUMNS": "250"})
        sampler = RssSampler({"controller": controller.pid} | {d: p.pid for d, (p, _) in agents.items()})
        sampler.start()
        wait_for(lambda: db_rows(db, "SELECT count(*) FROM jobs") not in ([], [(0,)]) or controller.poll() is not None, 120,
                 "the controller to create the campaign")
        sampler.sample()
        go_at = clock()
        go.set()
        print(f"fuzz: {args.messages} messages at up to {args.rate:g}/s (seed {args.seed}) while campaign "
              f"{spec.name} runs {args.repeats} repeats on {len(REAL_IDS)} agents", flush=True)
        controller.wait(1800)
        campaign_s, during_campaign = clock() - go_at, published.value
        sampler.sample()
        fuzz = reports.get(timeout=max(600.0, args.messages / args.rate * 3))
        fuzzer.join(30)
        sampler.sample()
        time.sleep(0.5)
        sampler.stop.set()
        return verdict(args, workdir, broker.url, key, controller, agents, sampler, go_at, fuzz, campaign_s, during_campaign)
    finally:
        if sampler:
            sampler.stop.set()
        stop_process(controller)
        for proc, _ in agents.values():
            stop_process(proc)
        if fuzzer.is_alive():
            fuzzer.terminate()
        broker.stop()


def verdict(args: argparse.Namespace, workdir: Path, url: str, key: bytes, controller: subprocess.Popen[str],
            agents: dict[str, tuple[subprocess.Popen[bytes], Path]], sampler: RssSampler, go_at: float,
            fuzz: dict[str, Any], campaign_s: float, during_campaign: int) -> int:
    """Print the figures and every check; 0 if all pass."""
    report = Report()
    if "error" in fuzz:
        report.check(False, f"the fuzzer failed: {fuzz['error']}")
        return 1
    counts = fuzz["counts"]
    print(f"published {fuzz['published']} messages in {fuzz['seconds']:.1f} s: {fuzz['published'] / fuzz['seconds']:.0f}/s "
          f"(target {args.rate:g}/s); {fuzz['retained']} retained on {fuzz['retained_topics']} topics (cleared after); "
          f"{len(REAL_IDS)} real and {fuzz['devices'] - len(REAL_IDS)} other device ids")
    print("  by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"  {fuzz['mutants']} distinct signed schema mutations; real messages captured for replay: {fuzz['captured']}")
    report.check(not fuzz["accepted_mutants"], f"the contract refused every generated mutation ({len(fuzz['accepted_mutants'])} "
                 f"accepted{': ' + ', '.join(fuzz['accepted_mutants'][:5]) if fuzz['accepted_mutants'] else ''})")
    report.check(fuzz["published"] >= args.messages, f"fuzz messages published: {fuzz['published']} of {args.messages}")
    report.check(during_campaign >= args.messages,
                 f"the fuzz ran while the campaign ran: {during_campaign} of {fuzz['published']} published before the campaign "
                 f"ended ({campaign_s:.1f} s after the fuzz began; raise --repeats if short)")
    err = (workdir / "controller.err").read_text(errors="replace")
    summary: dict[str, Any] = {}
    with contextlib.suppress(json.JSONDecodeError):
        summary = json.loads((workdir / "controller.out").read_text())
    jobs = summary.get("jobs", {})
    report.check(controller.returncode == 0 and summary.get("state") == "finished" and set(jobs) == {"done"},
                 f"controller exit {controller.returncode}, campaign state {summary.get('state')!r}, jobs {jobs}, "
                 f"failed {summary.get('failed', '?')}" + ("" if controller.returncode == 0 else f"\n{err[-2000:]}"))
    check_database(report, workdir / "controller.db")
    alive = {d: p.poll() is None for d, (p, _) in agents.items()}
    report.check(all(alive.values()), f"both agents alive after the fuzz: {alive}")
    left = retained_left(url, key)
    report.check(not left, f"no junk left retained on the broker: {len(left)} topics {left[:5]}")

    print("RSS (MB) of each process: at the fuzz's start / peak / at the end (peak before the fuzz: start-up)")
    for name in ("controller", *REAL_IDS):
        before, early, peak, after = sampler.figures(name, go_at)
        print(f"  {name:<10} {before:6.1f} / {peak:6.1f} / {after:6.1f}  growth {after - before:+5.1f}, "
              f"peak {peak - before:+5.1f} (start-up peak {early:.1f})")
    before, _, peak, _ = sampler.figures("controller", go_at)
    report.check(peak - before <= CONTROLLER_RSS_LIMIT_MB, f"controller peak RSS {peak:.1f} MB, {peak - before:+.1f} MB over "
                 f"its RSS at the fuzz's start (limit +{CONTROLLER_RSS_LIMIT_MB:g} MB)")
    mosquitto = (workdir / "mosquitto.log").read_text(errors="replace")
    connects = Counter(line.split(" as ")[1].split()[0] for line in mosquitto.splitlines()
                       if "New client connected" in line and " as edgeperf-" in line)
    dropped = mosquitto.count("Outgoing messages are being dropped")
    report.check(len(connects) == 1 + len(REAL_IDS) and set(connects.values()) == {1} and not dropped,
                 f"no fleet client lost its broker connection (connects: {dict(connects)}); the broker dropped for a client "
                 f"{dropped} times")

    exits = {d: stop_process(p) for d, (p, _) in agents.items()}
    report.check(all(code == 0 for code in exits.values()), f"agents exit 0 on SIGTERM: {exits}")
    logs = [workdir / "controller.err", *(log for _, log in agents.values())]
    found = tracebacks(logs)
    report.check(not any(found.values()), f"no Traceback in the logs: {found}")
    print(f"drop warnings logged (rate-limited, one per device and reason): controller {drop_lines(workdir / 'controller.err')}, "
          + ", ".join(f"{d} {drop_lines(log)}" for d, (_, log) in agents.items()))
    failed = [text.splitlines()[0] for ok, text in report.checks if not ok]
    print(f"\n{'PASS' if report.ok else 'FAIL'}: {len(report.checks) - len(failed)} of {len(report.checks)} checks passed"
          + "".join(f"\n  failed: {f}" for f in failed))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
