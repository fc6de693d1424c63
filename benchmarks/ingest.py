"""Controller ingest next to the broker's raw relay rate, plus the idle agent's footprint.

What it measures, in one run on one machine, against a mosquitto it starts itself (loopback, default
queue limits, because those are what users run; only ``sys_interval 1`` is set, to read its drop count):

1. The reference: the raw relay rate of that broker. A bare paho publisher (one process) sends
   ``agents x results-per-agent`` result-sized messages at QoS 1 to a bare paho subscriber (another
   process) that only counts them; then ``agents x telemetry-per-agent`` telemetry-sized messages at
   QoS 0. Rate = messages received / (first publish -> last arrival); the median of ``--relay-rounds``.
2. The controller: ``--agents`` simulated agents publish their results and telemetry through the same
   broker to one controller, the real ``Fleet`` opened by ``controller.session.fleet`` (as the campaign
   owner) and driven by ``pump()`` in its own process, so its CPU time and peak RSS are its own. It
   stores and acks only results of attempts it started, so before go it creates a campaign with one job
   per result and starts an attempt of each, whose run ids the agents answer. Results/s = results
   stored / (go -> the last new result committed); telemetry msgs/s likewise. Both streams run at once,
   as in a fleet, while the reference relays one stream at a time: a ratio of 1 would mean the
   controller keeps up with what the broker alone can carry. "First pass" is what was stored before
   any agent had to re-send. CPU % of the controller, mosquitto and the agents' processes are over the
   ingest window (go -> the controller handled its last message).
3. Loss: results sent minus rows in the controller's database (must be 0, and every outbox must end
   empty; the exit status is 1 otherwise), and telemetry sent minus telemetry counted. mosquitto drops
   messages for a subscriber whose queue (max_queued_messages, 1000) is full; results come back through
   the outbox's re-sends, which are counted, and telemetry (QoS 0, never re-sent) is lost. The broker's
   own count (``$SYS/broker/publish/messages/dropped``) is printed next to it.
4. The idle agent: a real ``python -m agent.cli run`` process, once connected and its status and info
   published, sampled with psutil for ``--idle-seconds`` (RSS; CPU % of one core).

The simulated agents are built from the agent's real parts, used as the daemon uses them: each has its
own ``agent.outbox.Outbox`` (SQLite, WAL, synchronous=FULL) in a temporary directory and its own
``agent.transport.Connection`` (a paho client with its network thread); every message is signed with
the run's own fleet key, which the controller holds too. Results are put in the outbox before the go
signal (jobs that finished: one per attempt the controller started, kept for that controller), published
at QoS 1 from the outbox on go (what the daemon does on connecting), marked sent, deleted when the
controller's ack names them, and re-published when no ack came within ``--resend-after-s`` (the
daemon's default is 30 s; a few seconds keeps the run short). Telemetry is an ``Envelope("telemetry")``
at QoS 0 with the daemon's fields (run_id, cpu_pct, temperatures_c), interleaved with the results in
proportion.

Scaling to 1,000 agents on two cores: a Connection is a paho client with its own network thread, so
agents are spread over worker processes (``--agent-processes``, default one per 250 agents) that each
host hundreds of Connections. One process cannot host many more: paho waits in ``select()``, which
cannot watch a descriptor numbered 1024 or more, and each client holds three (its socket and a wake-up
socket pair); so each worker connects its clients before it opens their outboxes (three more
descriptors each: database, WAL, shm), and more than 300 agents per process is refused. The soft
RLIMIT_NOFILE is raised to the hard limit for mosquitto (one descriptor per client) and the workers.
The load generator shares the machine's cores with the broker and the controller; its CPU is printed.

    python benchmarks/ingest.py [--agents 100] [--results-per-agent 20] [--telemetry-per-agent 50]
                                [--idle-seconds 60] [--payload real|small] [--agent-processes N]
"""

from __future__ import annotations

import argparse
import itertools
import math
import multiprocessing as mp
import os
import queue
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil

from agent import fleet_key
from agent.cli import run_command
from agent.contract import Envelope, Topics, decode
from agent.outbox import Outbox
from agent.transport import BrokerUrl, Connection
from controller.fleet.broker import free_port

MB = 1 << 20
MODEL = "zoo:fashion-mnist-cnn/int8.tflite"
AGENTS_PER_PROCESS = 250  # default share of one worker process
MAX_AGENTS_PER_PROCESS = 300  # three descriptors per paho client, and select() stops at 1024
SETTLE_S = 2.0  # telemetry is "done" once every agent has sent it and the count has not moved for this long
clock = time.monotonic  # CLOCK_MONOTONIC is system-wide on Linux and macOS: comparable across processes


# ---- shared state between processes ----------------------------------------------------------------
class Board:
    """Named doubles in shared memory: one writer process, the orchestrator reads."""

    def __init__(self, ctx: Any, fields: Sequence[str]) -> None:
        self.index = {name: i for i, name in enumerate(fields)}
        self.values = ctx.Array("d", len(fields), lock=False)

    def __getitem__(self, name: str) -> float:
        return self.values[self.index[name]]

    def __setitem__(self, name: str, value: float) -> None:
        self.values[self.index[name]] = value


CONTROLLER_FIELDS = (
    "ready", "go_seen", "results", "duplicates", "telemetry", "dropped",
    "t_last_result", "t_last_telemetry", "t_last_message", "cpu_at_go", "cpu_at_last", "max_batch",
)
WORKER_FIELDS = ("ready", "results_sent", "telemetry_sent", "publish_done", "resends", "first_resend", "acked", "pending")
RELAY_FIELDS = ("ready", "count", "t_first", "t_last", "t_start", "t_done")


def raise_fd_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by mosquitto and the worker processes)."""
    try:
        import resource
    except ImportError:  # Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else max(soft, 65536), hard))


def quiet_child() -> None:
    """Children leave Ctrl-C to the orchestrator, which stops them in order (the terminal signals the whole group)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def bare_client(client_id: str) -> mqtt.Client:
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)


# ---- the broker ----------------------------------------------------------------------------------------
class Mosquitto:
    """Debian's mosquitto on a free loopback port with default limits; ``sys_interval 1`` only refreshes $SYS."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
        self.port = free_port()
        self.binary, self.log = binary, workdir / "mosquitto.log"
        self.conf = workdir / "mosquitto.conf"
        user = "user root\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n{user}"
            f"sys_interval 1\nlog_dest file {self.log}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def version(self) -> str:
        out = subprocess.run([self.binary, "-h"], capture_output=True, text=True).stdout
        return out.splitlines()[0].strip() if out else "mosquitto"

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen(  # its own session: Ctrl-C is for us, and we stop it last
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = clock() + 10
        while clock() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise SystemExit(f"mosquitto did not listen on port {self.port}: {self.log.read_text(errors='replace')[-500:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def cpu_s(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times() if self.proc else None
        return times.user + times.system if times else 0.0

    def dropped(self) -> int:
        """The broker's count of publishes it dropped (full client queues), refreshed every second."""
        time.sleep(1.2)  # let the $SYS tree catch up with what just happened
        got: queue.Queue[int] = queue.Queue()
        client = bare_client(f"sys-{uuid.uuid4().hex[:6]}")
        client.on_message = lambda c, u, msg: got.put(int(msg.payload or b"0"))
        client.connect("127.0.0.1", self.port)
        client.subscribe("$SYS/broker/publish/messages/dropped", qos=0)
        client.loop_start()
        try:
            return got.get(timeout=5)
        except queue.Empty:
            return -1
        finally:
            client.disconnect()
            client.loop_stop()

    def drop_notices(self) -> int:
        """mosquitto logs once per episode per client when it starts dropping for that client."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text.count("Outgoing messages are being dropped")


# ---- payloads ------------------------------------------------------------------------------------------
def build_template(payload: str) -> dict[str, Any]:
    """A real result document from the zoo's int8 TFLite model (or its contract fields only, for ``small``)."""
    from agent import bench, contract
    from agent.contract import RuntimeOptions
    from agent.scenarios.settings import Scenario, for_profile, with_overrides

    doc = bench.run(
        bench.BenchRequest(
            model=MODEL,
            settings=with_overrides(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=100),
            options=RuntimeOptions(threads=1),
            engine="native",
            warmup_runs=1,
        )
    )
    checked = contract.to_builtins(contract.convert("result", doc))  # the contract's fields, nothing else
    if payload == "small":
        doc = checked | {"settings": {}, "logs": {}, "device": checked["device"] | {"facts": {}}}
        doc["kpis"] = checked["kpis"] | {"latency_histogram": None}
    return doc


def result_copy(template: dict[str, Any], device_id: str, run_id: str) -> dict[str, Any]:
    return template | {"run_id": run_id, "device": template["device"] | {"id": device_id}}


def campaign_yaml(device_ids: Sequence[str], repeats: int) -> str:
    """One performance job per result: the controller stores (and acks) only results of attempts it started."""
    return (
        f"name: ingest\nprofile: smoke\nscenarios: [SingleStream]\nmodes: [performance]\nrepeats: {repeats}\n"
        f"devices: {{ids: [{', '.join(device_ids)}]}}\nmodels:\n  - name: fmnist\n    variants:\n      - artifact: {MODEL}\n"
    )


def telemetry_data(run_id: str | None) -> dict[str, Any]:
    """What the daemon sends while a job runs (agent/daemon.py ``_telemetry``)."""
    return {"run_id": run_id, "cpu_pct": 37.5, "temperatures_c": {"cpu-thermal": 48.312, "gpu-thermal": 46.5}}


# ---- reference: bare paho publisher -> mosquitto -> bare paho subscriber ---------------------------------
def relay_subscriber(port: int, topic: str, qos: int, board: Board, stop: Any) -> None:
    quiet_child()
    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        now = clock()
        if not board["count"]:
            board["t_first"] = now
        board["count"] += 1
        board["t_last"] = now

    client = bare_client(f"relay-sub-{qos}")
    client.on_message = on_message
    client.on_subscribe = lambda *a: board.__setitem__("ready", 1)
    client.on_connect = lambda c, *a: c.subscribe(topic, qos=qos)
    client.connect("127.0.0.1", port)
    client.loop_start()
    stop.wait()
    client.disconnect()
    client.loop_stop()


def relay_publisher(port: int, topic: str, qos: int, payload: bytes, count: int, board: Board, go: Any) -> None:
    quiet_child()
    client = bare_client(f"relay-pub-{qos}")
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    board["ready"] = 1
    go.wait()
    board["t_start"] = clock()
    last = None
    for _ in range(count):
        last = client.publish(topic, payload, qos=qos)
    if last is not None:
        last.wait_for_publish(120)  # QoS 1: its PUBACK came (paho sends in order); QoS 0: it was written
    board["t_done"] = clock()
    client.disconnect()
    client.loop_stop()


@dataclass
class Relay:
    qos: int
    size: int
    sent: int  # per round
    received: list[int]  # per round
    seconds: list[float]  # per round: first publish -> last arrival
    broker_dropped: int  # over all rounds

    @property
    def rate(self) -> float:
        """The median round's rate: one round of a few thousand messages lasts well under a second."""
        rates = sorted(n / t for n, t in zip(self.received, self.seconds, strict=True) if t > 0)
        return rates[len(rates) // 2] if rates else 0.0

    @property
    def lost(self) -> int:
        return sum(self.sent - n for n in self.received)


def relay_round(ctx: Any, port: int, qos: int, payload: bytes, count: int, timeout_s: float) -> tuple[int, float]:
    topic = f"bench/relay/qos{qos}"
    sub, pub = Board(ctx, RELAY_FIELDS), Board(ctx, RELAY_FIELDS)
    go, stop = ctx.Event(), ctx.Event()
    procs = [
        ctx.Process(target=relay_subscriber, args=(port, topic, qos, sub, stop), daemon=True),
        ctx.Process(target=relay_publisher, args=(port, topic, qos, payload, count, pub, go), daemon=True),
    ]
    try:
        procs[0].start()
        wait_for(lambda: sub["ready"], 30, "the relay subscriber")
        procs[1].start()
        wait_for(lambda: pub["ready"], 30, "the relay publisher")
        go.set()
        deadline, last_count, last_change = clock() + timeout_s, -1.0, clock()
        while clock() < deadline and sub["count"] < count:
            if sub["count"] != last_count:
                last_count, last_change = sub["count"], clock()
            elif pub["t_done"] and clock() - last_change > SETTLE_S:
                break  # the publisher is done and nothing more arrives: the rest was dropped
            time.sleep(0.02)
    finally:
        stop.set()
        go.set()
        for proc in procs:
            end(proc)
    return int(sub["count"]), sub["t_last"] - pub["t_start"]


def measure_relay(ctx: Any, broker: Mosquitto, qos: int, payload: bytes, count: int, rounds: int, timeout_s: float) -> Relay:
    dropped0 = broker.dropped()
    runs = [relay_round(ctx, broker.port, qos, payload, count, timeout_s) for _ in range(rounds)]
    return Relay(qos, len(payload), count, [r[0] for r in runs], [r[1] for r in runs], broker.dropped() - dropped0)


# ---- the controller, in its own process -----------------------------------------------------------------
def controller_process(
    url: str, db: str, key_file: str, device_ids: list[str], results: int, board: Board, go: Any, stop: Any, report: Any,
) -> None:
    quiet_child()
    from agent.resources import peak_rss_mb
    from controller.fleet import campaign
    from controller.fleet.session import FleetOptions, fleet

    def note_go() -> None:  # the CPU and time at go, read the moment it is given
        go.wait()
        board["cpu_at_go"], board["go_seen"] = time.process_time(), clock()

    with fleet(FleetOptions(broker=url, db=Path(db), fleet_key_file=Path(key_file)), owner=True) as f:
        spec = campaign.loads(campaign_yaml(device_ids, results), "ingest.yaml", Path(db).parent)
        jobs = campaign.expand(spec, [(d, ()) for d in device_ids])
        runs: dict[str, list[str]] = {d: [] for d in device_ids}
        campaign_id = f.store.create_campaign(  # its own transaction
            spec.name, spec.source, spec.to_dict(), [(j.key, j.device_id, j.to_dict()) for j in jobs]
        )
        with f.store.transaction():  # every job out on its device, as the scheduler sends them
            for job in f.store.jobs(campaign_id):
                runs[job.device_id].append(f.store.start_attempt(job))
        report.put({"controller": f.controller_id, "runs": runs})  # the agents answer these attempts, and only these
        probe = f.topics.device("ingest-probe", "telemetry")
        while f.counters.telemetry == 0:  # proves the subscriptions are active before anyone publishes
            f.conn.publish(probe, Envelope("telemetry", "ingest-probe", {}).encode(f.key), qos=0)
            f.pump(wait_s=0.2)
        while f.pump(wait_s=0.3):  # probes still in flight
            pass
        base = (f.counters.results_stored, f.counters.telemetry)
        timeline: list[tuple[float, int]] = []  # (time, results stored so far) after each pump that stored some
        threading.Thread(target=note_go, daemon=True).start()
        board["ready"] = 1
        while not stop.is_set():
            handled = f.pump(wait_s=0.05)
            if not handled:
                continue
            now, c = clock(), f.counters
            board["max_batch"] = max(board["max_batch"], handled)
            if c.results_stored - base[0] != board["results"]:
                board["t_last_result"] = now
                timeline.append((now, c.results_stored - base[0]))
            if c.telemetry - base[1] != board["telemetry"]:
                board["t_last_telemetry"] = now
            board["results"], board["telemetry"] = c.results_stored - base[0], c.telemetry - base[1]
            board["duplicates"], board["dropped"] = c.results_duplicate, c.dropped
            board["t_last_message"], board["cpu_at_last"] = now, time.process_time()
    report.put({"peak_rss_mb": vm_hwm_mb() or peak_rss_mb(), "timeline": timeline})


def vm_hwm_mb() -> float | None:
    """Peak RSS of this process image from /proc (Linux); ``ru_maxrss`` can carry a parent's over fork+exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MB
    except OSError:
        pass
    return None


# ---- simulated agents, many per worker process ---------------------------------------------------------
class SimulatedAgent:
    """One agent's messaging: its own outbox and connection, acks applied, unacked results re-sent."""

    def __init__(self, broker: BrokerUrl, device_id: str, topics: Topics, key: bytes) -> None:
        self.device_id, self.key = device_id, key
        self.results_topic = topics.device(device_id, "results")
        self.telemetry_topic = topics.device(device_id, "telemetry")
        self.conn = Connection(f"sim-{device_id}", broker, subscriptions=[(topics.device(device_id, "acks"), 1)])
        self._outbox: Outbox | None = None  # opened after the connection is up: see agent_process
        self.seq = itertools.count(1)
        self.run_ids: list[str] = []
        self.acked = self.resends = 0
        self.first_resend_at = 0.0

    def finish_jobs(self, workdir: Path, template: dict[str, Any], run_ids: list[str], controller: str) -> None:
        """Results of the jobs ``controller`` sent as ``run_ids``, made durable the way the daemon's ``deliver`` does."""
        self._outbox = Outbox(workdir / self.device_id / "outbox.sqlite")
        for run_id in run_ids:
            envelope = Envelope("result", self.device_id, result_copy(template, self.device_id, run_id), next(self.seq))
            self.outbox.put(run_id, self.results_topic, envelope.encode(self.key), controller)
            self.run_ids.append(run_id)

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            raise RuntimeError(f"{self.device_id}: the outbox is opened by finish_jobs")
        return self._outbox

    def close(self) -> None:
        self.conn.stop(timeout_s=1)
        if self._outbox is not None:
            self._outbox.close()

    def telemetry(self, run_id: str | None) -> None:
        envelope = Envelope("telemetry", self.device_id, telemetry_data(run_id), next(self.seq))
        self.conn.publish(self.telemetry_topic, envelope.encode(self.key), qos=0)

    def take_acks(self) -> bool:
        got = False
        while True:
            try:
                message = self.conn.inbox.get_nowait()
            except queue.Empty:
                return got
            got = True
            ack = decode("acks", message.payload, self.key).data
            self.acked += self.outbox.ack(ack.run_ids, ack.controller)

    def resend(self, resend_after_s: float) -> None:
        due = self.outbox.due(resend_after_s)
        for entry in due:
            self.conn.publish(entry.topic, entry.payload, qos=1)
        if due:
            self.outbox.mark_sent([e.run_id for e in due])
            self.resends += len(due)
            self.first_resend_at = self.first_resend_at or clock()


def schedule(results: int, telemetry: int) -> list[str]:
    """Results and telemetry interleaved in proportion, like telemetry ticking while jobs finish."""
    marks = [((i + 0.5) / results, "r") for i in range(results)] + [((j + 0.5) / telemetry, "t") for j in range(telemetry)]
    return [kind for _, kind in sorted(marks)]


def agent_process(
    url: str, runs: dict[str, list[str]], template: dict[str, Any], results: int, telemetry: int, resend_after_s: float,
    workdir: str, controller: str, key_file: str, board: Board, go: Any, stop: Any, report: Any,
) -> None:
    """``runs``: each hosted device's run ids, attempts ``controller`` started; every message signed with the fleet key."""
    quiet_child()
    raise_fd_limit()
    broker, topics, key = BrokerUrl.parse(url), Topics(), fleet_key.resolve(Path(key_file))
    agents = [SimulatedAgent(broker, d, topics, key) for d in runs]
    try:
        # Sockets first: paho waits in select(), which cannot watch a descriptor numbered 1024 or more, so
        # the outboxes' SQLite files (three descriptors each) must not take the low numbers.
        for agent in agents:
            agent.conn.start(wait_s=60)
        for agent in agents:
            agent.finish_jobs(Path(workdir), template, runs[agent.device_id], controller)
        time.sleep(1.0)  # SUBACKs for the ack topics
        board["ready"] = 1
        go.wait()
        entries = {a.device_id: a.outbox.pending() for a in agents}  # what the daemon publishes on (re)connect
        steps = schedule(results, telemetry)
        r = 0
        for kind in steps:
            for agent in agents:
                if kind == "r":
                    entry = entries[agent.device_id][r]
                    agent.conn.publish(entry.topic, entry.payload, qos=1)
                else:
                    agent.telemetry(agent.run_ids[min(r, results - 1)] if results else None)
            if kind == "r":
                r += 1
                board["results_sent"] = r * len(agents)
            else:
                board["telemetry_sent"] += len(agents)
        for agent in agents:
            agent.outbox.mark_sent(e.run_id for e in entries[agent.device_id])
        board["publish_done"] = clock()
        next_resend = 0.0
        while not stop.is_set():
            busy = False
            for agent in agents:
                busy = agent.take_acks() or busy
            if clock() >= next_resend:
                next_resend = clock() + 0.5
                for agent in agents:
                    agent.resend(resend_after_s)
                board["resends"] = sum(a.resends for a in agents)
                board["first_resend"] = min((a.first_resend_at for a in agents if a.first_resend_at), default=0.0)
            board["acked"] = sum(a.acked for a in agents)
            board["pending"] = len(agents) * results - board["acked"]
            if not busy:
                time.sleep(0.01)
        left = sum(len(a.outbox) for a in agents)
        run_ids = [r for a in agents for r in a.run_ids]
        report.put({"run_ids": run_ids, "outbox_left": left, "resends": sum(a.resends for a in agents)})
    finally:
        for agent in agents:
            agent.close()


# ---- orchestration -------------------------------------------------------------------------------------
def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = clock() + timeout_s
    while not condition():
        if clock() > deadline:
            raise SystemExit(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


def end(proc: Any, timeout_s: float = 60, drain: Any = None) -> None:
    """Join a child we started, terminating it (by its own pid) if it does not finish.

    ``drain``: a queue the child writes to. A child does not exit until what it put has gone down the
    pipe, so when we stop early (an error, Ctrl-C) whatever is left there is read and thrown away.
    """
    if proc.pid is None:
        return
    deadline = clock() + timeout_s
    while proc.is_alive() and clock() < deadline:
        while drain is not None:
            try:
                drain.get_nowait()
            except queue.Empty:
                break
        proc.join(0.1)
    if proc.is_alive():
        proc.terminate()
        proc.join(10)


def cpu_s(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


@dataclass
class Ingest:
    agents: int
    processes: int
    results_sent: int
    telemetry_sent: int
    results_stored: int  # the controller's count of new results stored after go
    results_rows: int  # rows in its database whose run id an agent sent
    results_extra: int  # rows nobody sent (must be 0)
    duplicates: int
    malformed: int  # messages the controller dropped as protocol errors (must be 0)
    resends: int
    outbox_left: int
    result_seconds: float  # go -> the last new result committed
    first_pass: int  # results stored before the first re-send left an agent
    first_pass_seconds: float
    telemetry_counted: int
    telemetry_seconds: float
    window_seconds: float  # go -> the controller handled its last message
    controller_cpu_s: float
    controller_peak_rss_mb: float
    broker_cpu_pct: float
    agents_cpu_pct: float
    broker_dropped: int
    max_batch: int
    timed_out: bool


def agent_processes(agents: int, asked: int) -> int:
    processes = asked or math.ceil(agents / AGENTS_PER_PROCESS)
    if math.ceil(agents / processes) > MAX_AGENTS_PER_PROCESS:
        raise SystemExit(
            f"{agents} agents in {processes} process(es) is more than {MAX_AGENTS_PER_PROCESS} paho clients per process "
            "(paho's select() cannot watch descriptors >= 1024); raise --agent-processes"
        )
    return max(1, min(processes, agents))


def measure_ingest(
    ctx: Any, broker: Mosquitto, template: dict[str, Any], args: argparse.Namespace, tmp: Path, key_file: Path
) -> Ingest:
    n, per_r, per_t = args.agents, args.results_per_agent, args.telemetry_per_agent
    processes = agent_processes(n, args.agent_processes)
    ids = [f"sim-{i:04d}" for i in range(n)]
    shares = [ids[k::processes] for k in range(processes)]
    go, stop = ctx.Event(), ctx.Event()
    ctrl_board, ctrl_report, agent_report = Board(ctx, CONTROLLER_FIELDS), ctx.Queue(), ctx.Queue()
    boards = [Board(ctx, WORKER_FIELDS) for _ in shares]
    db = tmp / "controller.db"
    controller = ctx.Process(
        target=controller_process,
        args=(broker.url, str(db), str(key_file), ids, per_r, ctrl_board, go, stop, ctrl_report),
        daemon=True,
    )
    workers: list[Any] = []
    reports: list[dict[str, Any]] = []
    ctrl_final: dict[str, Any] = {}
    samples: list[tuple[float, float, float]] = []  # (time, mosquitto CPU s, agent processes' CPU s)
    timed_out = False
    try:
        controller.start()
        wait_for(lambda: ctrl_board["ready"], 60, "the controller")
        plan = ctrl_report.get(timeout=60)  # put before ready: its id and the attempts it started, per device
        common = (template, per_r, per_t, args.resend_after_s, str(tmp / "agents"), plan["controller"], str(key_file))
        for share, board in zip(shares, boards, strict=True):
            runs = {d: plan["runs"][d] for d in share}
            worker = ctx.Process(
                target=agent_process, args=(broker.url, runs, *common, board, go, stop, agent_report), daemon=True
            )
            workers.append(worker)
            worker.start()
        print(f"  preparing {n} agents ({n * per_r} results in their outboxes) in {processes} process(es) ...", file=sys.stderr)
        wait_for(lambda: all(b["ready"] for b in boards), 120 + n * per_r * 0.05, "the simulated agents to connect")
        dropped0 = broker.dropped()
        pids = [w.pid for w in workers]
        samples.append((clock(), broker.cpu_s(), cpu_s(pids)))
        t_go = clock()
        go.set()
        expected_r, expected_t = n * per_r, n * per_t
        deadline, last_tel, tel_change = clock() + args.timeout_s, -1.0, clock()
        while True:
            results_done = ctrl_board["results"] >= expected_r and all(b["pending"] <= 0 for b in boards)
            if ctrl_board["telemetry"] != last_tel:
                last_tel, tel_change = ctrl_board["telemetry"], clock()
            sent_all = all(b["publish_done"] for b in boards)
            tel_done = ctrl_board["telemetry"] >= expected_t or (sent_all and clock() - tel_change > SETTLE_S)
            if results_done and tel_done:
                break
            if clock() > deadline:
                timed_out = True
                break
            time.sleep(0.05)
            samples.append((clock(), broker.cpu_s(), cpu_s(pids)))
        broker_dropped = broker.dropped() - dropped0
        stop.set()
        for _ in workers:
            reports.append(agent_report.get(timeout=120))
        ctrl_final = ctrl_report.get(timeout=60)
    finally:
        stop.set()
        go.set()
        for worker in workers:
            end(worker, drain=agent_report)
        end(controller, drain=ctrl_report)
    sent_ids = {r for rep in reports for r in rep["run_ids"]}
    conn = sqlite3.connect(db)
    try:
        stored_ids = {row[0] for row in conn.execute("SELECT run_id FROM results")}
    finally:
        conn.close()
    # the ingest window: go -> the controller handled its last message; everyone's CPU over that window
    t_last = ctrl_board["t_last_message"]
    window = max(t_last - ctrl_board["go_seen"], 1e-9)
    ctrl_cpu = ctrl_board["cpu_at_last"] - ctrl_board["cpu_at_go"]
    after = next((s for s in samples if s[0] >= t_last), samples[-1])
    others = ((after[1] - samples[0][1]) / (after[0] - samples[0][0]), (after[2] - samples[0][2]) / (after[0] - samples[0][0]))
    first_resend = min((b["first_resend"] for b in boards if b["first_resend"]), default=math.inf)
    before = [point for point in ctrl_final.get("timeline", []) if point[0] < first_resend]
    return Ingest(
        agents=n,
        processes=processes,
        results_sent=expected_r,
        telemetry_sent=int(sum(b["telemetry_sent"] for b in boards)),
        results_stored=int(ctrl_board["results"]),
        results_rows=len(stored_ids & sent_ids),
        results_extra=len(stored_ids - sent_ids),
        duplicates=int(ctrl_board["duplicates"]),
        malformed=int(ctrl_board["dropped"]),
        resends=sum(rep["resends"] for rep in reports),
        outbox_left=sum(rep["outbox_left"] for rep in reports),
        result_seconds=ctrl_board["t_last_result"] - t_go,
        first_pass=before[-1][1] if before else 0,
        first_pass_seconds=before[-1][0] - t_go if before else 0.0,
        telemetry_counted=int(ctrl_board["telemetry"]),
        telemetry_seconds=ctrl_board["t_last_telemetry"] - t_go,
        window_seconds=window,
        controller_cpu_s=ctrl_cpu,
        controller_peak_rss_mb=float(ctrl_final.get("peak_rss_mb", 0.0)),
        broker_cpu_pct=100 * others[0],
        agents_cpu_pct=100 * others[1],
        broker_dropped=broker_dropped,
        max_batch=int(ctrl_board["max_batch"]),
        timed_out=timed_out,
    )


@dataclass
class Idle:
    seconds: float
    rss_mb: float
    rss_max_mb: float
    cpu_pct: float


def measure_idle_agent(broker: Mosquitto, tmp: Path, key_file: Path, seconds: float) -> Idle:
    """A real ``edgeperf-agent run`` process, sampled once it is connected and has published its presence."""
    device, data = "idle-1", tmp / "idle-agent"
    data.mkdir()
    seen: set[str] = set()
    watcher = bare_client("idle-watcher")
    watcher.on_message = lambda c, u, msg: seen.add(msg.topic.rsplit("/", 1)[-1])
    watcher.on_connect = lambda c, *a: c.subscribe(f"{Topics().prefix}/devices/{device}/+", qos=1)
    watcher.connect("127.0.0.1", broker.port)
    watcher.loop_start()
    log = (data / "agent.log").open("wb")
    command = run_command(broker.url, device, data, "--fleet-key-file", str(key_file))
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: {"status", "info"} <= seen or proc.poll() is not None, 60, "the idle agent to connect")
        if proc.poll() is not None:
            raise SystemExit(f"the idle agent exited with {proc.returncode}: {(data / 'agent.log').read_text()[-800:]}")
        p = psutil.Process(proc.pid)
        t0, c0 = clock(), p.cpu_times()
        rss: list[float] = []
        while clock() - t0 < seconds:
            rss.append(p.memory_info().rss / MB)
            time.sleep(min(1.0, max(0.0, seconds - (clock() - t0))))
        c1, t1 = p.cpu_times(), clock()
        rss.append(p.memory_info().rss / MB)
        cpu = max(0.0, 100 * ((c1.user + c1.system) - (c0.user + c0.system)) / (t1 - t0))
        return Idle(t1 - t0, rss[-1], max(rss), cpu)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()
        watcher.disconnect()
        watcher.loop_stop()


# ---- report --------------------------------------------------------------------------------------------
def size(n: float) -> str:
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n:.0f} B"


def rate(n: float) -> str:
    return f"{n:,.0f}"


def ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}" if reference > 0 else "n/a"


def report(broker: Mosquitto, relays: tuple[Relay, Relay], ingest: Ingest, idle: Idle | None, args: argparse.Namespace) -> None:
    """The figures side by side: each controller rate next to the raw relay rate of the same broker."""
    r1, r0 = relays
    i = ingest
    results_rate = i.results_stored / i.result_seconds if i.result_seconds > 0 else 0.0
    tel_rate = i.telemetry_counted / i.telemetry_seconds if i.telemetry_seconds > 0 else 0.0
    loss_r = i.results_sent - i.results_rows + i.results_extra
    loss_t = i.telemetry_sent - i.telemetry_counted
    handled = i.results_stored + i.duplicates + i.telemetry_counted
    cpu_pct = 100 * i.controller_cpu_s / i.window_seconds
    lines = [
        "",
        f"{broker.version()} on loopback, default limits (max_queued_messages 1000, max_inflight_messages 20); "
        f"{os.cpu_count()} cores",
        f"load: {i.agents:,} agents in {i.processes} process(es), each {args.results_per_agent} results (QoS 1, from its "
        f"outbox) and {args.telemetry_per_agent} telemetry (QoS 0); {args.payload} payload; "
        f"re-send after {args.resend_after_s:g} s",
        f"results (QoS 1, {size(r1.size)} each): raw relay {rate(r1.rate)} msg/s | controller stored "
        f"{rate(results_rate)} results/s ({ratio(results_rate, r1.rate)} of relay) | loss {loss_r}",
        f"  {i.results_sent:,} sent, {i.results_rows:,} rows, outboxes left {i.outbox_left}; first pass {i.first_pass:,} "
        f"stored in {i.first_pass_seconds:.2f} s, all in {i.result_seconds:.2f} s; "
        f"re-sends {i.resends}, duplicates {i.duplicates}",
        f"telemetry (QoS 0, {size(r0.size)} each): raw relay {rate(r0.rate)} msg/s | controller {rate(tel_rate)} msgs/s "
        f"({ratio(tel_rate, r0.rate)} of relay) | loss {loss_t}",
        f"  {i.telemetry_sent:,} sent, {i.telemetry_counted:,} counted in {i.telemetry_seconds:.2f} s",
        f"controller CPU {cpu_pct:.0f} % of a core, peak RSS {i.controller_peak_rss_mb:.0f} MB "
        f"(over the {i.window_seconds:.2f} s ingest window: {i.controller_cpu_s:.2f} s CPU, "
        f"{1000 * i.controller_cpu_s / max(handled, 1):.2f} ms per message; largest pump batch {i.max_batch})",
        f"  same window: mosquitto {i.broker_cpu_pct:.0f} %, simulated agents {i.agents_cpu_pct:.0f} % of a core; "
        f"mosquitto dropped {i.broker_dropped} publish(es) ({broker.drop_notices()} drop notice(s) in its log)",
    ]
    for r in relays:
        rounds = ", ".join(f"{n:,} in {t:.2f} s" for n, t in zip(r.received, r.seconds, strict=True))
        lines.append(
            f"raw relay QoS {r.qos}: {len(r.received)} rounds of {r.sent:,} ({rounds}); lost {r.lost}, "
            f"mosquitto dropped {r.broker_dropped}"
        )
    if idle is not None:
        lines.append(
            f"idle agent (edgeperf-agent run, real process, {idle.seconds:.0f} s): RSS {idle.rss_mb:.1f} MB "
            f"(max {idle.rss_max_mb:.1f}), CPU {idle.cpu_pct:.2f} %"
        )
    if i.malformed:
        lines.append(f"warning: the controller dropped {i.malformed} message(s) that break the contract")
    if i.timed_out:
        lines.append(f"warning: the ingest run hit --timeout-s {args.timeout_s:g} before every result was stored and acked")
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100, help="simulated agents (1,000 supported)")
    parser.add_argument("--results-per-agent", type=int, default=20)
    parser.add_argument("--telemetry-per-agent", type=int, default=50)
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="how long to sample the idle agent (0: skip)")
    parser.add_argument("--payload", choices=("real", "small"), default="real", help="a full result, or its contract fields only")
    parser.add_argument("--resend-after-s", type=float, default=5.0, help="agents re-publish results not acked after this long")
    parser.add_argument(
        "--agent-processes", type=int, default=0, help=f"processes hosting the agents (default: one per {AGENTS_PER_PROCESS})"
    )
    parser.add_argument("--relay-rounds", type=int, default=3, help="rounds of the raw relay reference (median reported)")
    parser.add_argument("--timeout-s", type=float, default=300.0, help="give up on the ingest run after this long")
    args = parser.parse_args(argv)
    if args.agents < 1 or args.results_per_agent < 1 or args.telemetry_per_agent < 1:
        parser.error("--agents, --results-per-agent and --telemetry-per-agent must be at least 1")
    raise_fd_limit()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the clean-up below runs on SIGTERM too
    ctx = mp.get_context("spawn")  # children start clean: the controller's RSS is its own, not a fork of this one
    with tempfile.TemporaryDirectory(prefix="edgeperf-ingest-") as name, ExitStack() as stack:
        tmp = Path(name)
        broker = Mosquitto(tmp).start()
        stack.callback(broker.stop)
        print(f"building a real result document ({MODEL}) ...", file=sys.stderr)
        template = build_template(args.payload)
        key_file = tmp / "fleet.key"  # this run's own fleet: nothing is written outside its folder
        key = fleet_key.generate(key_file)
        sample = Envelope("result", "sim-0000", result_copy(template, "sim-0000", uuid.uuid4().hex), seq=1).encode(key)
        tel = Envelope("telemetry", "sim-0000", telemetry_data(uuid.uuid4().hex), seq=1).encode(key)
        n_r, n_t = args.agents * args.results_per_agent, args.agents * args.telemetry_per_agent
        print(f"raw relay: {n_r} x {len(sample)} B at QoS 1, then {n_t} x {len(tel)} B at QoS 0 ...", file=sys.stderr)
        relays = (
            measure_relay(ctx, broker, 1, sample, n_r, args.relay_rounds, args.timeout_s),
            measure_relay(ctx, broker, 0, tel, n_t, args.relay_rounds, args.timeout_s),
        )
        print(f"ingest: {args.agents} agents -> mosquitto -> controller ...", file=sys.stderr)
        ingest = measure_ingest(ctx, broker, template, args, tmp, key_file)
        idle = None
        if args.idle_seconds > 0:
            print(f"idle agent: sampling for {args.idle_seconds:g} s ...", file=sys.stderr)
            idle = measure_idle_agent(broker, tmp, key_file, args.idle_seconds)
        report(broker, relays, ingest, idle, args)
    lost = ingest.results_sent - ingest.results_rows + ingest.results_extra
    return 1 if lost or ingest.outbox_left or ingest.timed_out else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # everything started has been stopped and removed on the way out
        sys.exit(130)
