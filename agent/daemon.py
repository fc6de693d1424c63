"""``edgeperf-agent run``: the device daemon that takes jobs over MQTT and delivers their results.

One job at a time, each in a child process (``agent.worker``) so a crash or a hang costs one
failed run. A job's terminal message — its result, or why it failed — goes into a durable
SQLite outbox before it is published, and is re-published after reconnects and restarts until
the controller acks it; a re-delivered job is answered from the outbox, never run twice. On
SIGTERM the daemon stops the running job, records it as failed, publishes ``offline`` itself
(a clean disconnect sends no last will) and exits.

The agent watches its own status topic (``agent.identity``): a second agent under its device id
is found, and the newer of the two says so (a ``duplicate`` event) and exits with code 2.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import psutil

from agent import __version__, contract, device_info, fleet_key, origins
from agent.artifacts import ArtifactCache, ArtifactError
from agent.clock_watch import ClockWatch, step_reason
from agent.config import AgentConfig
from agent.contract import MAX_PAYLOAD_BYTES, TOPICS, Envelope, Job, ProtocolError, Topics
from agent.drops import DropLog
from agent.errors import EXIT_USAGE
from agent.identity import Identity
from agent.outbox import Outbox
from agent.transport import BrokerUrl, Connection, Message, TlsFiles

log = logging.getLogger("edgeperf.agent")
HOUSEKEEPING_S = 2.0
STDERR_TAIL = 2000
NO_SPACE = "No space left on device"
RETRYABLE = "retryable: "  # a worker's one-line failure that running the job again may cure


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` means the agent's disk (or its quota) is full: from the OS or from SQLite."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc)


class JobRun(threading.Thread):
    """Fetch the artifact, run the worker, and hand the terminal message to the outbox."""

    def __init__(self, daemon: AgentDaemon, job: Job) -> None:
        super().__init__(name=f"job-{job.run_id}", daemon=True)
        self.agent, self.job, self.run_id = daemon, job, job.run_id
        self._proc: subprocess.Popen[str] | None = None
        self._stopped_because, self._cancelled = "", False

    def stop(self, reason: str, cancelled: bool = False) -> None:
        """Kill the worker (cancel, timeout or shutdown); ``run`` then reports ``reason``, as a cancellation
        when the job's owner asked for it, else as a failure."""
        self._stopped_because, self._cancelled = reason, cancelled
        if self._proc and self._proc.poll() is None:
            self._proc.kill()

    def run(self) -> None:
        try:
            terminal = self._execute()
        except Exception as exc:  # a bug here must fail the job, not leave the device busy forever
            if disk_full(exc):
                terminal = self.agent.failure(self.run_id, self.agent.disk_full_reason(exc))
            else:
                log.exception("job %s crashed the agent's job thread", self.run_id)
                terminal = self.agent.failure(self.run_id, f"agent error: {type(exc).__name__}: {exc}")
        self.agent.deliver(self.run_id, *terminal)

    def _execute(self) -> tuple[str, Envelope, str]:
        art = self.job.artifact
        refused = origins.refusal(art.url, self.agent.origins)  # before any request: no fetching for strangers
        if refused:
            return self.agent.failure(self.run_id, refused, retryable=False)
        self.agent.progress(self.run_id, "fetching", {"artifact": art.name})
        log.debug("job %s: artifact %s from %s", self.run_id, art.name, art.url)  # the token is in a header, not the URL
        try:
            model = self.agent.cache.fetch(art.url, art.sha256, art.size, art.name, art.archive, token=art.token)
        except ArtifactError as exc:
            return self.agent.failure(self.run_id, str(exc))
        workdir = self.agent.config.storage / "jobs" / self.run_id
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "job.json").write_bytes(msgspec.json.encode(self.job.without_token()))  # the worker never needs it
        out = workdir / "result.json"
        cmd = self.agent.worker_argv(workdir / "job.json", model, out)
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stderr: list[str] = []
        reader = threading.Thread(target=lambda: stderr.append(self._proc.stderr.read()), daemon=True)
        reader.start()
        timeout = threading.Timer(self.job.timeout_s, self.stop, args=("timed out on the device",))
        timeout.start()
        clock = ClockWatch(lambda step: self.stop(step_reason(step)))
        clock.start()
        if self._stopped_because:  # stopped while the worker was starting
            self._proc.kill()
        try:
            for line in self._proc.stdout:
                try:
                    said = json.loads(line)
                    self.agent.progress(self.run_id, str(said.pop("phase")), said)
                except (json.JSONDecodeError, KeyError, AttributeError, ProtocolError):
                    log.debug("worker said: %s", line.rstrip())
            code = self._proc.wait()
        finally:
            timeout.cancel()
            clock.stop()
        reader.join(5)
        text = "".join(stderr)
        if self._cancelled:
            return self.agent.cancellation(self.run_id, self._stopped_because)
        if self._stopped_because:
            return self.agent.failure(self.run_id, self._stopped_because)
        if code == 0:
            return self.agent.result_message(self.run_id, json.loads(out.read_bytes()))
        if NO_SPACE in text:  # the worker could not write its logs or its result
            return self.agent.failure(self.run_id, self.agent.disk_full_reason(OSError(errno.ENOSPC, NO_SPACE)))
        errors = [line[len("error: ") :] for line in text.splitlines() if line.startswith("error: ")]
        if errors:  # the worker's one-line user error (exit 2): the same job fails the same way again
            return self.agent.failure(self.run_id, errors[-1], retryable=False)
        passing = [line[len(RETRYABLE) :] for line in text.splitlines() if line.startswith(RETRYABLE)]
        if passing:  # a fault of the moment, in one line (a phone unplugged mid-run): the job may be run again
            return self.agent.failure(self.run_id, passing[-1])
        try:
            name = f" ({signal.Signals(-code).name})" if code < 0 else ""
        except ValueError:
            name = ""
        return self.agent.failure(self.run_id, f"worker exited with code {code}{name}: {text[-STDERR_TAIL:].strip()}")


class AgentDaemon:
    """The agent: a connection, an outbox, an artifact cache and at most one running job."""

    def __init__(self, config: AgentConfig, stop: threading.Event | None = None) -> None:
        self.config = config
        self.topics = Topics(config.prefix)
        self.device = config.device_id
        storage = config.storage
        storage.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(storage / "outbox.sqlite")
        self.cache = ArtifactCache(storage / "artifacts", config.max_artifact_bytes)
        self.key = fleet_key.resolve(config.fleet_key_file)
        self.identity = Identity(self.device)  # this run of the agent: its status, heartbeat and last will carry it
        self._seq = itertools.count(1)
        self._job: JobRun | None = None
        self._held: dict[str, Job] = {}  # jobs that arrived before this agent announced itself, by run id
        # The job thread delivers while the main thread re-sends: one publishes a new entry at a time,
        # so no terminal message goes out twice.
        self._publishing = threading.Lock()
        self._stop = stop or threading.Event()
        self._connected = threading.Event()
        self.drops = DropLog(log)
        self._info: contract.Info | None = None
        # The will is fixed at connect time: seq 0 marks it, and its session says which run of the agent ended.
        offline = Envelope("status", self.device, self._status_data("offline"), seq=0).encode(self.key)
        broker = BrokerUrl.parse(config.broker).with_credentials(config.username, config.password)
        tls = TlsFiles(config.ca_file, config.cert_file, config.key_file)
        name = tls.certificate_name()
        if name is not None and name != self.device:  # connects, and is then never seen: say why now
            log.warning("device id %r is not its client certificate's name %r (%s): a broker configured by 'edgeperf "
                        "broker config' lets a client use only the topics of its certificate's name; run it as "
                        "--device-id %s, or issue a certificate for %s ('edgeperf certs add %s')",
                        self.device, name, config.cert_file, name, self.device, self.device)
        self.origins = origins.resolve(config.artifact_origins, broker.host)
        self.conn = Connection(
            # Two agents on one id must not push each other off the broker; a broker from 'edgeperf broker config'
            # replaces this id with the certificate's name, and then they do (agent.identity).
            f"edgeperf-agent-{self.device}-{self.identity.session[:8]}",
            broker,
            subscriptions=[(self.topics.device(self.device, kind), 1) for kind in ("jobs", "acks", "status")]
            + [(self.topics.announce(), 1)],
            will=(self.topics.device(self.device, "status"), offline, 1, True),
            on_connected=self._connected.set,
            tls=tls,
            mqtt_version=config.mqtt_version,
            keepalive_s=config.keepalive_s,
            reconnect_s=(1, config.reconnect_max_s),
            max_packet_bytes=config.max_packet_bytes,
        )

    # ---- what a kind of device changes (agent.android.bridge serves a phone through these) ----
    def worker_argv(self, job_file: Path, model: Path, out: Path) -> list[str]:
        """The child process that runs one job (``agent.worker``: the model on this device's runtimes)."""
        cmd = [sys.executable, "-m", "agent.worker", "--job", str(job_file), "--model", str(model), "--out", str(out),
               "--log-dir", str(self.config.storage / "logs"), "--device-id", self.device]
        if self.config.threads is not None:
            cmd += ["--threads", str(self.config.threads)]
        return cmd

    def device_info(self) -> contract.Info:
        """The device facts, runtimes and power sources, gathered once, in a child process."""
        return device_info.collect(__version__, tuple(self.config.tags), MAX_PAYLOAD_BYTES)

    def unavailable(self) -> str | None:
        """Why this device cannot take a job now (None: it can); its status then says ``offline``."""
        return None

    def housekeeping(self) -> None:
        """Every few seconds while serving."""

    def job_ended(self) -> None:
        """After each job's thread has ended, whatever its outcome."""

    # ---- building and sending messages -------------------------------------------------------
    def _envelope(self, kind: str, data: Any) -> Envelope:
        return Envelope(kind, self.device, data, seq=next(self._seq))

    def _state(self) -> str:
        return "offline" if self.unavailable() else "busy" if self._job else "online"

    def _status_data(self, state: str) -> contract.Status:
        job = self._job.run_id if self._job else None
        return contract.Status(state, self.identity.session, self.config.heartbeat_s, __version__, job,
                               tuple(self.config.tags), round(self.identity.uptime_s, 3))

    def _send(self, topic_kind: str, envelope: Envelope) -> None:
        qos, retain, _ = TOPICS[topic_kind]
        topic, payload = self.topics.device(self.device, topic_kind), envelope.encode(self.key)
        if not self.conn.fits(topic, payload):  # only device facts can be this large: the broker would drop us
            log.warning("%s message of %d bytes is over the broker's packet limit (%s bytes); not sent", envelope.type,
                        len(payload), self.conn.max_packet_bytes)
            return
        self.conn.publish(topic, payload, qos=qos, retain=retain)

    def _publishable(self, run_id: str, topic: str, payload: bytes) -> tuple[str, bytes]:
        """A terminal message as it can go out: itself, or — over the broker's packet limit, where sending it
        would cost the connection on every re-send — the failure that says so, in its place."""
        if self.conn.fits(topic, payload):
            return topic, payload
        reason = (f"the result is {Connection.packet_bytes(topic, payload)} bytes, over the broker's packet limit of "
                  f"{self.conn.max_packet_bytes} bytes; raise the broker's max_packet_size (and this agent's "
                  "max_packet_bytes on MQTT 3.1.1), then run the job again")
        failed = Envelope("failed", self.device, contract.Failed(run_id, reason, retryable=False), seq=next(self._seq))
        log.warning("job %s: %s", run_id, reason)
        return self.topics.device(self.device, "events"), failed.encode(self.key)

    def event(self, kind: str, body: Any) -> None:
        self._send("events", self._envelope(kind, body))

    def progress(self, run_id: str, phase: str, details: dict[str, Any]) -> None:
        """A phase of the running job; details that are not plain scalars are left out."""
        plain = {str(k)[:256]: v for k, v in details.items() if isinstance(v, (str, int, float, bool)) or v is None}
        self.event("progress", contract.convert("progress", {"run_id": run_id, "phase": phase[:32], "details": plain}))

    def failure(self, run_id: str, reason: str, retryable: bool = True) -> tuple[str, Envelope, str]:
        """The terminal ``failed`` event; ``retryable`` False when running it again cannot help."""
        log.warning("job %s failed: %s", run_id, reason)
        return "events", self._envelope("failed", contract.Failed(run_id, reason[:4096], retryable)), "failed"

    def cancellation(self, run_id: str, reason: str) -> tuple[str, Envelope, str]:
        """The terminal ``cancelled`` event: the job's owner stopped it, so it is no failure."""
        log.info("job %s %s", run_id, reason)
        return "events", self._envelope("cancelled", contract.Cancelled(run_id, reason[:4096])), "cancelled"

    def result_message(self, run_id: str, doc: dict[str, Any]) -> tuple[str, Envelope, str]:
        """The ``result`` message for the worker's document, checked against the contract before it leaves."""
        try:
            contract.convert("result", doc)
        except ProtocolError as exc:  # the engine broke the contract: a bug, but this job's alone
            return self.failure(run_id, f"the result breaks the contract: {exc}")
        envelope = self._envelope("result", doc)
        try:
            envelope.encode(self.key)
        except ProtocolError:
            doc.setdefault("logs", {}).pop("summary", None)  # the file stays on the device
            envelope = self._envelope("result", doc)
            try:
                envelope.encode(self.key)
            except ProtocolError as exc:
                return self.failure(run_id, f"result too large to send: {exc}")
        return "results", envelope, "finished"

    def disk_full_reason(self, exc: BaseException) -> str:
        """The one line a full disk gets, naming where to make room."""
        return f"disk full on the device ({exc}); free space under {self.config.storage}, then run the job again"

    def deliver(self, run_id: str, topic_kind: str, envelope: Envelope, state: str) -> None:
        """Make the terminal message durable, then publish it; the outbox re-sends until the job's owner acks it.

        With the disk full it cannot be made durable: it is published once as it is (a result, or the
        failure that says why), so the controller hears about the job now rather than at its timeout.
        """
        topic, payload = self.topics.device(self.device, topic_kind), envelope.encode(self.key)
        with self._publishing:
            try:
                self.outbox.put(run_id, topic, payload, self._owner(run_id))
                self.outbox.set_job_state(run_id, state)
            except sqlite3.OperationalError as exc:
                if not disk_full(exc):
                    raise
                log.error("job %s: %s; its terminal message is sent once, not kept", run_id, self.disk_full_reason(exc))
                self.conn.publish(*self._publishable(run_id, topic, payload), qos=1)
                return
            self.conn.publish(*self._publishable(run_id, topic, payload), qos=1)
            self._mark_sent([run_id])

    def _owner(self, run_id: str) -> str | None:
        """The controller that sent ``run_id``, from the job this agent recorded when it took it."""
        job = self.outbox.job(run_id)
        return job.get("controller") if job else None

    def _publish_status(self) -> None:
        """The retained status; repeated every ``heartbeat_s``, it is also the heartbeat."""
        self._send("status", self._envelope("status", self._status_data(self._state())))

    def _publish_presence(self) -> None:
        """Status and device facts: after every (re)connect and when a controller announces itself. The status goes
        first: gathering an agent's facts takes a child process, and the device is available meanwhile."""
        self._publish_status()
        self._publish_info()

    def _publish_info(self) -> None:
        if self._info is None:  # facts do not change while the agent runs: gathered once
            self._info = self.device_info()
        info = self._envelope("info", self._info)
        if not self.conn.fits(self.topics.device(self.device, "info"), info.encode(self.key)):
            log.warning("device facts are over the broker's packet limit (%s bytes): announced without them",
                        self.conn.max_packet_bytes)
            info = self._envelope("info", msgspec.structs.replace(self._info, facts={}))
        self._send("info", info)

    def _resend(self, everything: bool = False) -> None:
        """Re-publish unacknowledged messages: all of them after a (re)connect, else those due."""
        with self._publishing:
            due = self.outbox.pending() if everything else self.outbox.due(self.config.resend_after_s)
            for entry in due:
                self.conn.publish(*self._publishable(entry.run_id, entry.topic, entry.payload), qos=1)
            if due:
                self._mark_sent([e.run_id for e in due])
                log.info("re-sent %d unacknowledged message(s)", len(due))

    def _mark_sent(self, run_ids: list[str]) -> None:
        """Record a publish; with the disk full the record is skipped (the entry is only re-sent sooner)."""
        try:
            self.outbox.mark_sent(run_ids)
        except sqlite3.OperationalError as exc:
            if not disk_full(exc):
                raise
            log.warning("could not record re-sends: %s", self.disk_full_reason(exc))

    # ---- handling what arrives ---------------------------------------------------------------
    def _handle(self, msg: Message) -> None:
        """Decode one message through the contract (the fleet key's signature first) and act on it;
        anything invalid is counted and dropped."""
        try:
            if msg.topic == self.topics.announce():  # a controller (re)subscribed: report now, re-send what it lacks
                contract.decode("announce", msg.payload, self.key)
                if self.identity.speaking:  # still settling: it announces itself anyway once it may speak
                    self._publish_presence()
                    self._resend(everything=True)
                return
            device, kind = self.topics.parse(msg.topic)
            if device != self.device:
                raise ProtocolError(f"a message for device {device!r} reached {self.device}")
            envelope = contract.decode(kind, msg.payload, self.key)
            if envelope.device != self.device:
                raise ProtocolError(f"a message for device {envelope.device!r} on {msg.topic}")
            if kind == "status":
                self._on_own_status(envelope.data, msg.retain, envelope.ts)
                return
        except ProtocolError as exc:
            self.drops.drop("controller", str(exc), msg.topic)
            if msg.topic == self.topics.device(self.device, "jobs"):
                self._reject_malformed(msg.payload, exc)
            return
        log.debug("%s message on %s (%d bytes)", envelope.type, msg.topic, len(msg.payload))  # no payload: jobs hold tokens
        body = envelope.data
        if isinstance(body, contract.Ack):
            self.outbox.ack(body.run_ids, body.controller)
        elif isinstance(body, contract.Cancel):
            job = self._job
            if job and job.run_id == body.run_id and job.job.controller == body.controller:
                job.stop("cancelled by the controller", cancelled=True)
            held = self._held.get(body.run_id)
            if held is not None and held.controller == body.controller:
                del self._held[body.run_id]
        elif isinstance(body, Job):
            self._take(body)

    def _on_own_status(self, status: contract.Status, retained: bool, sent_at: float) -> None:
        """A status on this agent's own topic: its own echo, or another agent using the same device id."""
        note = self.identity.heard(status, retained, sent_at)
        if note:
            log.warning("%s", note)
        if self.identity.duplicate:
            self.event("duplicate", contract.Duplicate(self.identity.session, status.session, self.identity.duplicate[:4096]))
            log.error("%s", self.identity.duplicate)
            self._stop.set()

    def _reject_malformed(self, payload: bytes, problem: ProtocolError) -> None:
        """Tell the controller a job it sent cannot be read, when its run id can be: it fails it at once, not by timeout.
        A message of another protocol version or for another device is only dropped (``peek_run_id``)."""
        run_id = contract.peek_run_id(payload, self.device, self.key)
        if run_id is not None:
            self.event("rejected", contract.Rejected(run_id, f"malformed job: {problem}"[:4096], retryable=False))

    def _take(self, job: Job) -> None:
        run_id = job.run_id
        if not self.identity.speaking:  # not yet sure this device id is ours alone: taken once it is, never before
            log.info("job %s arrived before this agent announced itself; held until it has", run_id)
            self._held[run_id] = job
            return
        state = self.outbox.job_state(run_id)
        if state is not None:  # a re-delivery: answer, never run twice
            if self._job and self._job.run_id == run_id:
                self.event("accepted", contract.Accepted(run_id, duplicate=True))
            elif not self._resend_one(run_id):
                reason = f"already {state} and acknowledged"
                if state == "finished":
                    self.event("finished", contract.Finished(run_id, True, reason))
                else:
                    self.event("failed", contract.Failed(run_id, reason, duplicate=True))
            return
        absent = self.unavailable()
        if absent:
            log.warning("rejected job %s: %s", run_id, absent)
            self.event("rejected", contract.Rejected(run_id, absent))
            return
        if self._job is not None:
            log.warning("rejected job %s: busy with %s", run_id, self._job.run_id)
            self.event("rejected", contract.Rejected(run_id, f"busy with {self._job.run_id}", busy=True))
            return
        try:
            self.outbox.set_job_state(run_id, "accepted", contract.to_builtins(job.without_token()))
        except sqlite3.OperationalError as exc:
            if not disk_full(exc):
                raise
            self.event("rejected", contract.Rejected(run_id, self.disk_full_reason(exc)))
            return
        self._job = JobRun(self, job)
        self.event("accepted", contract.Accepted(run_id))
        self._publish_status()
        self._job.start()

    def _take_held(self) -> None:
        """The jobs that arrived while this agent settled after a (re)connect (a broker with persistence
        delivers queued jobs first thing), now that the device id is known to be its own: taken at once,
        rather than left for the controller to re-send when its accept timeout runs out."""
        held, self._held = list(self._held.values()), {}
        for job in held:
            self._take(job)

    def _resend_one(self, run_id: str) -> bool:
        """Re-publish ``run_id``'s unacknowledged terminal message; False if there is none."""
        for entry in self.outbox.pending():
            if entry.run_id == run_id:
                self.conn.publish(*self._publishable(entry.run_id, entry.topic, entry.payload), qos=1)
                self._mark_sent([run_id])
                return True
        return False

    def _telemetry(self) -> None:
        from devices import probe  # only while a job runs

        temps: dict[str, Any] = {}
        probe.collect_thermal(temps, Path("/"))
        data = {"run_id": self._job.run_id if self._job else None, "cpu_pct": psutil.cpu_percent(interval=None),
                "temperatures_c": temps.get("temperatures_c", {})}
        self._send("telemetry", self._envelope("telemetry", contract.convert("telemetry", data)))

    # ---- the loop ----------------------------------------------------------------------------
    def _recover(self) -> None:
        """Jobs a previous run of this agent left half done (crash, power loss, SIGKILL)."""
        for run_id in self.outbox.interrupted():
            self.deliver(run_id, *self.failure(run_id, "the agent stopped while the job ran (crash, power loss or kill)"))

    def request_stop(self, *_: Any) -> None:
        self._stop.set()

    def run(self, connect_wait_s: float | None = None) -> None:
        """Serve jobs until ``request_stop`` (SIGTERM/SIGINT in the CLI)."""
        self._recover()
        self.conn.start(connect_wait_s)
        log.info(
            "agent %s serving %s (data in %s; artifacts from %s)",
            self.device,
            self.conn.broker,
            self.config.storage,
            origins.describe(self.origins),
        )
        next_housekeeping = next_telemetry = next_heartbeat = time.monotonic()
        while not self._stop.is_set():
            self._note_connect()
            if self.identity.may_speak():
                self._publish_presence()
                self._resend(everything=True)
                next_heartbeat = time.monotonic() + self.config.heartbeat_s
                self._take_held()
            try:
                message = self.conn.inbox.get(timeout=0.1)
            except queue.Empty:
                message = None
            if message is not None:
                self._note_connect()  # the retained own status follows a (re)connect: it belongs to the new one
                try:
                    self._handle(message)
                except Exception as exc:  # one bad message must not stop the agent
                    if disk_full(exc):
                        log.warning("could not act on a message on %s: %s", message.topic, self.disk_full_reason(exc))
                    else:
                        log.exception("error while handling a message on %s; continuing", message.topic)
            now = time.monotonic()
            if self._job and not self._job.is_alive():
                self._job = None
                self.job_ended()
                self._publish_status()
            if self._job and now >= next_telemetry and self.config.telemetry_interval_s > 0:
                next_telemetry = now + self.config.telemetry_interval_s
                self._telemetry()
            if self.identity.speaking and now >= next_heartbeat:
                next_heartbeat = now + self.config.heartbeat_s
                self._publish_status()
            if self.identity.speaking and now >= next_housekeeping:
                next_housekeeping = now + HOUSEKEEPING_S
                self.housekeeping()
                self._resend()
        self._shutdown()

    def _note_connect(self) -> None:
        """(Re)connected: listen for the retained own status first. paho sets the flag before it queues what
        arrives after the connect, so checking it again before each message never counts a message of the new
        connection under the old one."""
        if self._connected.is_set():
            self._connected.clear()
            self.identity.connected()

    def _shutdown(self) -> None:
        job = self._job
        if job and job.is_alive():
            job.stop("the agent was stopped (SIGTERM) during the job")
            job.join(30)
        self._job = None
        # A duplicate says nothing more on the shared status topic: it is the other agent's now.
        offline = self._envelope("status", self._status_data("offline")).encode(self.key)
        self.conn.stop(final=[] if self.identity.duplicate else [(self.topics.device(self.device, "status"), offline, 1, True)])
        self.outbox.close()
        log.info("agent %s stopped", self.device)


def serve(config: AgentConfig) -> int:
    """Run the daemon in the foreground with SIGTERM/SIGINT wired to a clean stop."""
    stop = threading.Event()  # wired first: a SIGTERM during start-up still ends cleanly
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    daemon = AgentDaemon(config, stop)
    daemon.run()
    return EXIT_USAGE if daemon.identity.duplicate else 0
