"""``edgeperf-agent run``: the device daemon that takes jobs over MQTT and delivers their results.

One job at a time, each in a child process (``agent.worker``) so a crash or a hang costs one
failed run. A job's terminal message — its result, or why it failed — goes into a durable
SQLite outbox before it is published, and is re-published after reconnects and restarts until
the controller acks it; a re-delivered job is answered from the outbox, never run twice. On
SIGTERM the daemon stops the running job, records it as failed, publishes ``offline`` itself
(a clean disconnect sends no last will) and exits.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import psutil

from agent import __version__, contract, device_info, origins
from agent.artifacts import ArtifactCache, ArtifactError
from agent.config import AgentConfig
from agent.contract import MAX_PAYLOAD_BYTES, TOPICS, Envelope, Job, ProtocolError, Topics
from agent.drops import DropLog
from agent.outbox import Outbox
from agent.transport import BrokerUrl, Connection, Message, TlsFiles

log = logging.getLogger("edgeperf.agent")
HOUSEKEEPING_S = 2.0
STDERR_TAIL = 2000


class JobRun(threading.Thread):
    """Fetch the artifact, run the worker, and hand the terminal message to the outbox."""

    def __init__(self, daemon: AgentDaemon, job: Job) -> None:
        super().__init__(name=f"job-{job.run_id}", daemon=True)
        self.agent, self.job, self.run_id = daemon, job, job.run_id
        self._proc: subprocess.Popen[str] | None = None
        self._stopped_because = ""

    def stop(self, reason: str) -> None:
        """Kill the worker (cancel, timeout or shutdown); ``run`` then reports ``reason``."""
        self._stopped_because = reason
        if self._proc and self._proc.poll() is None:
            self._proc.kill()

    def run(self) -> None:
        try:
            terminal = self._execute()
        except Exception as exc:  # a bug here must fail the job, not leave the device busy forever
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
        cmd = [
            sys.executable,
            "-m",
            "agent.worker",
            "--job",
            str(workdir / "job.json"),
            "--model",
            str(model),
            "--out",
            str(out),
            "--log-dir",
            str(self.agent.config.storage / "logs"),
            "--device-id",
            self.agent.device,
        ]
        if self.agent.config.threads is not None:
            cmd += ["--threads", str(self.agent.config.threads)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stderr: list[str] = []
        reader = threading.Thread(target=lambda: stderr.append(self._proc.stderr.read()), daemon=True)
        reader.start()
        timeout = threading.Timer(self.job.timeout_s, self.stop, args=("timed out on the device",))
        timeout.start()
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
        reader.join(5)
        text = "".join(stderr)
        if self._stopped_because:
            return self.agent.failure(self.run_id, self._stopped_because)
        if code == 0:
            return self.agent.result_message(self.run_id, json.loads(out.read_bytes()))
        errors = [line[len("error: ") :] for line in text.splitlines() if line.startswith("error: ")]
        if errors:  # the worker's one-line user error (exit 2): the same job fails the same way again
            return self.agent.failure(self.run_id, errors[-1], retryable=False)
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
        self._seq = itertools.count(1)
        self._job: JobRun | None = None
        self._stop = stop or threading.Event()
        self._connected = threading.Event()
        self.drops = DropLog(log)
        self._info: contract.Info | None = None
        offline = self._envelope("status", self._status_data("offline")).encode()
        broker = BrokerUrl.parse(config.broker).with_credentials(config.username, config.password)
        self.origins = origins.resolve(config.artifact_origins, broker.host)
        self.conn = Connection(
            f"edgeperf-agent-{self.device}",
            broker,
            subscriptions=[(self.topics.device(self.device, "jobs"), 1), (self.topics.device(self.device, "acks"), 1)],
            will=(self.topics.device(self.device, "status"), offline, 1, True),
            on_connected=self._connected.set,
            tls=TlsFiles(config.ca_file, config.cert_file, config.key_file),
            mqtt_version=config.mqtt_version,
            keepalive_s=config.keepalive_s,
            reconnect_s=(1, config.reconnect_max_s),
        )

    # ---- building and sending messages -------------------------------------------------------
    def _envelope(self, kind: str, data: Any) -> Envelope:
        return Envelope(kind, self.device, data, seq=next(self._seq))

    def _status_data(self, state: str) -> contract.Status:
        job = self._job.run_id if self._job else None
        return contract.Status(state, __version__, job, tuple(self.config.tags))

    def _send(self, topic_kind: str, envelope: Envelope) -> None:
        qos, retain, _ = TOPICS[topic_kind]
        self.conn.publish(self.topics.device(self.device, topic_kind), envelope.encode(), qos=qos, retain=retain)

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

    def result_message(self, run_id: str, doc: dict[str, Any]) -> tuple[str, Envelope, str]:
        """The ``result`` message for the worker's document, checked against the contract before it leaves."""
        try:
            contract.convert("result", doc)
        except ProtocolError as exc:  # the engine broke the contract: a bug, but this job's alone
            return self.failure(run_id, f"the result breaks the contract: {exc}")
        envelope = self._envelope("result", doc)
        try:
            envelope.encode()
        except ProtocolError:
            doc.setdefault("logs", {}).pop("summary", None)  # the file stays on the device
            envelope = self._envelope("result", doc)
            try:
                envelope.encode()
            except ProtocolError as exc:
                return self.failure(run_id, f"result too large to send: {exc}")
        return "results", envelope, "finished"

    def deliver(self, run_id: str, topic_kind: str, envelope: Envelope, state: str) -> None:
        """Make the terminal message durable, then publish it; the outbox re-sends until acked."""
        topic, payload = self.topics.device(self.device, topic_kind), envelope.encode()
        self.outbox.put(run_id, topic, payload)
        self.outbox.set_job_state(run_id, state)
        self.conn.publish(topic, payload, qos=1)
        self.outbox.mark_sent([run_id])

    def _publish_presence(self) -> None:
        state = "busy" if self._job else "online"
        self._send("status", self._envelope("status", self._status_data(state)))
        if self._info is None:  # facts do not change while the agent runs: gathered once, in a child process
            self._info = device_info.collect(__version__, tuple(self.config.tags), MAX_PAYLOAD_BYTES)
        self._send("info", self._envelope("info", self._info))

    def _resend(self, everything: bool = False) -> None:
        """Re-publish unacknowledged messages: all of them after a (re)connect, else those due."""
        due = self.outbox.pending() if everything else self.outbox.due(self.config.resend_after_s)
        for entry in due:
            self.conn.publish(entry.topic, entry.payload, qos=1)
        if due:
            self.outbox.mark_sent([e.run_id for e in due])
            log.info("re-sent %d unacknowledged message(s)", len(due))

    # ---- handling what arrives ---------------------------------------------------------------
    def _handle(self, msg: Message) -> None:
        """Decode one message through the contract and act on it; anything invalid is counted and dropped."""
        try:
            device, kind = self.topics.parse(msg.topic)
            if device != self.device:
                raise ProtocolError(f"a message for device {device!r} reached {self.device}")
            envelope = contract.decode(kind, msg.payload)
            if envelope.device != self.device:
                raise ProtocolError(f"a message for device {envelope.device!r} on {msg.topic}")
        except ProtocolError as exc:
            self.drops.drop("controller", str(exc), msg.topic)
            if msg.topic == self.topics.device(self.device, "jobs"):
                self._reject_malformed(msg.payload, exc)
            return
        log.debug("%s message on %s (%d bytes)", envelope.type, msg.topic, len(msg.payload))  # no payload: jobs hold tokens
        body = envelope.data
        if isinstance(body, contract.Ack):
            self.outbox.ack(body.run_ids)
        elif isinstance(body, contract.Cancel):
            if self._job and self._job.run_id == body.run_id:
                self._job.stop("cancelled by the controller")
        elif isinstance(body, Job):
            self._take(body)

    def _reject_malformed(self, payload: bytes, problem: ProtocolError) -> None:
        """Tell the controller a job it sent cannot be read, when its run id can be: it fails it at once, not by timeout.
        A message of another protocol version or for another device is only dropped (``peek_run_id``)."""
        run_id = contract.peek_run_id(payload, self.device)
        if run_id is not None:
            self.event("rejected", contract.Rejected(run_id, f"malformed job: {problem}"[:4096], retryable=False))

    def _take(self, job: Job) -> None:
        run_id = job.run_id
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
        if self._job is not None:
            log.warning("rejected job %s: busy with %s", run_id, self._job.run_id)
            self.event("rejected", contract.Rejected(run_id, f"busy with {self._job.run_id}"))
            return
        self.outbox.set_job_state(run_id, "accepted", contract.to_builtins(job.without_token()))
        self._job = JobRun(self, job)
        self.event("accepted", contract.Accepted(run_id))
        self._send("status", self._envelope("status", self._status_data("busy")))
        self._job.start()

    def _resend_one(self, run_id: str) -> bool:
        """Re-publish ``run_id``'s unacknowledged terminal message; False if there is none."""
        for entry in self.outbox.pending():
            if entry.run_id == run_id:
                self.conn.publish(entry.topic, entry.payload, qos=1)
                self.outbox.mark_sent([run_id])
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
        next_housekeeping = next_telemetry = time.monotonic()
        while not self._stop.is_set():
            if self._connected.is_set():
                self._connected.clear()
                self._publish_presence()
                self._resend(everything=True)
            try:
                message = self.conn.inbox.get(timeout=0.1)
            except queue.Empty:
                message = None
            if message is not None:
                try:
                    self._handle(message)
                except Exception:  # one bad message must not stop the agent
                    log.exception("error while handling a message on %s; continuing", message.topic)
            now = time.monotonic()
            if self._job and not self._job.is_alive():
                self._job = None
                self._send("status", self._envelope("status", self._status_data("online")))
            if self._job and now >= next_telemetry and self.config.telemetry_interval_s > 0:
                next_telemetry = now + self.config.telemetry_interval_s
                self._telemetry()
            if now >= next_housekeeping:
                next_housekeeping = now + HOUSEKEEPING_S
                self._resend()
        self._shutdown()

    def _shutdown(self) -> None:
        job = self._job
        if job and job.is_alive():
            job.stop("the agent was stopped (SIGTERM) during the job")
            job.join(30)
        self._job = None
        offline = self._envelope("status", self._status_data("offline")).encode()
        self.conn.stop(final=[(self.topics.device(self.device, "status"), offline, 1, True)])
        self.outbox.close()
        log.info("agent %s stopped", self.device)


def serve(config: AgentConfig) -> int:
    """Run the daemon in the foreground with SIGTERM/SIGINT wired to a clean stop."""
    stop = threading.Event()  # wired first: a SIGTERM during start-up still ends cleanly
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    AgentDaemon(config, stop).run()
    return 0
