"""The controller's side of the fleet: hear devices, schedule jobs, store results, ack them.

One thread owns the state. Paho's thread only queues messages; ``pump`` drains the queue and
handles a batch inside one database transaction, and acks go out only after that transaction
commits, so an ack always means "on disk". ``tick`` is the scheduler: one job at a time per
device, devices in parallel, cooldowns, re-sends of jobs nobody accepted, timeouts, retries,
and devices whose last will fired mid-job or whose heartbeat stopped (after a grace period,
because a restarted broker also makes everyone look offline for a moment).

Liveness is heard, not remembered (``controller.fleet.devices``). Ownership: every job carries
this database's controller id; results and failures of run ids this database never issued are
left for their owner (not stored, not acked), and a ``read_only`` fleet (``edgeperf devices``)
stores and acks nothing at all.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from agent import contract, datasets, zoo
from agent.contract import TOPICS, Envelope, ProtocolError, Topics
from agent.drops import DropLog
from agent.errors import ModelError
from agent.transport import Connection, Message
from controller.fleet.campaign import Campaign, JobSpec, expand
from controller.fleet.devices import DeviceView
from controller.fleet.link import Link
from controller.store.database import TERMINAL, Job, Store

log = logging.getLogger("edgeperf.controller")
RUN_TIMEOUT_MARGIN_S = 30.0  # the agent enforces the job timeout; the controller waits a little longer
# An artifact token lives for the job's timeout plus this: time for re-sends of an unaccepted job
# (accept_timeout_s x max_resends, 60 s by default) and for the download to start.
ARTIFACT_FETCH_ALLOWANCE_S = 300.0
IDLE_RESEND_AFTER_S = 1.0  # a job unanswered this long after its device said it is idle was lost on the way


@dataclass
class Counters:
    """What went through; the ingest benchmark and the CLI report these."""

    results_stored: int = 0
    results_duplicate: int = 0
    not_ours: int = 0  # results and failures of run ids this database never issued, left for their owner
    telemetry: int = 0
    events: int = 0
    drops: DropLog = field(default_factory=lambda: DropLog(log))  # messages that broke the contract, by reason

    @property
    def dropped(self) -> int:
        return self.drops.total


def artifact_path(reference: str) -> Path:
    """A variant's artifact on the controller's disk: a zoo name or a path."""
    return zoo.resolve(reference).path if reference.startswith(zoo.PREFIX) else Path(reference)


def _stamp(path: Path) -> tuple[Any, ...]:
    """What changes when a model file (or a directory model's files) changes: sizes and modification times."""
    if path.is_dir():
        return tuple(sorted((str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns)
                            for f in path.rglob("*") if f.is_file()))
    stat = path.stat()
    return (stat.st_size, stat.st_mtime_ns)


def job_message(spec: JobSpec, run_id: str, attempt: int, campaign_id: str, artifact: dict[str, Any],
                controller: str) -> contract.Job:
    """The contract's job for one attempt of ``spec``: the variant's options and the campaign's run length as they are."""
    v = spec.variant
    overrides = msgspec.structs.replace(spec.overrides, batch_size=v.batch_size) if v.batch_size else spec.overrides
    return contract.convert("job", {
        "run_id": run_id, "campaign": campaign_id, "controller": controller, "key": spec.key, "attempt": attempt,
        "model_name": f"{spec.model}/{v.name}",
        "artifact": artifact, "runtime": v.runtime, "options": v.options, "scenario": spec.scenario, "mode": spec.mode,
        "profile": spec.profile, "dataset": spec.dataset, "engine": spec.engine, "overrides": overrides,
        "timeout_s": spec.timeout_s, "power": spec.power, "corruptions": spec.corruptions, "groups": spec.groups,
        **_zoo_processing(v.artifact, spec.dataset),
    })


def _zoo_processing(artifact: str, dataset: str) -> dict[str, Any]:
    """A zoo model's preprocessing (for a dataset by path) and post-processing, as the job carries them: the
    agent runs the artifact by its hash and cannot look its zoo entry up."""
    if not artifact.startswith(zoo.PREFIX):
        return {}
    model = zoo.resolve(artifact).model
    out: dict[str, Any] = {}
    if model.preprocess and datasets.by_path(dataset) is not None:
        out["preprocess"] = model.preprocess
    if model.postprocess:
        out["postprocess"] = {"kind": model.postprocess["kind"], "class_offset": model.postprocess.get("class_offset", 0)}
    return out


class Fleet:
    """Message handling and scheduling for the campaigns in one database."""

    def __init__(
        self,
        store: Store,
        conn: Connection,
        topics: Topics,
        artifacts: Any = None,  # controller.artifact_server.ArtifactServer; None when only listening
        *,
        key: bytes,
        read_only: bool = False,
        offline_grace_s: float = 10.0,
        accept_timeout_s: float = 10.0,
        max_resends: int = 6,
        device_wait_s: float = 120.0,
        link: Link | None = None,
    ) -> None:
        self.store, self.conn, self.topics, self.artifacts, self.link = store, conn, topics, artifacts, link
        self.key, self.read_only, self.controller_id = key, read_only, store.controller_id
        self.offline_grace_s, self.accept_timeout_s = offline_grace_s, accept_timeout_s
        self.max_resends, self.device_wait_s = max_resends, device_wait_s
        self.devices: dict[str, DeviceView] = {}
        self.counters = Counters()
        self.notices: list[str] = []  # visible happenings for the live view (re-queues, failures)
        self._acks: dict[str, list[str]] = defaultdict(list)
        self._artifact_blocks: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}  # reference -> (stamp, block)
        self._grants: dict[str, dict[str, Any]] = {}  # run id -> its artifact block with its own token
        self._waiting_since: dict[str, float] = {}
        self._nudged: dict[str, float] = {}  # run id -> the idle status it was last re-sent for

    # ---- receiving ---------------------------------------------------------------------------
    def pump(self, wait_s: float = 0.1, batch: int = 250) -> int:
        """Handle queued messages (up to ``batch``) in one transaction; then send acks.

        Batches stay small so paho's network thread gets the GIL back often: while it waits, it
        acks nothing to the broker, and mosquitto starts dropping what it queued for us.
        """
        if self.link is not None:
            self.link.tick()
        messages: list[Message] = []
        try:
            messages.append(self.conn.inbox.get(timeout=wait_s))
            while len(messages) < batch:
                messages.append(self.conn.inbox.get_nowait())
        except queue.Empty:
            pass
        if messages:
            with self.store.transaction():
                for message in messages:
                    try:
                        self.handle(message)
                    except ProtocolError as exc:
                        self._drop(message, str(exc))
            self._flush_acks()
        return len(messages)

    def _drop(self, message: Message, reason: str) -> None:
        """Count and log (once per device and reason, rate-limited) a message that breaks the contract."""
        try:
            device = self.topics.parse(message.topic)[0]
        except ProtocolError:
            device = "?"
        self.counters.drops.drop(device, reason, message.topic)

    def handle(self, msg: Message) -> None:
        """Decode one message through the contract and act on it; raises ``ProtocolError`` for anything invalid."""
        device_id, kind = self.topics.parse(msg.topic)
        if TOPICS[kind][2] != "agent":
            return  # our own jobs/acks echoed by a wildcard subscription
        if not msg.payload and kind in ("status", "info"):
            return  # a cleared retained message
        # A result that breaks the contract is dropped without an ack: an ack means "stored" and deletes the
        # device's copy. A real agent signs its result and checks it against the same contract before sending
        # it, so only junk, a stranger or another protocol's agent sends one.
        envelope = contract.decode(kind, msg.payload, self.key)
        if envelope.device != device_id:
            raise ProtocolError(f"{kind} from {envelope.device!r} published on {device_id!r}'s topic")
        if kind == "results" and envelope.data.device.id != device_id:
            raise ProtocolError(f"a result of device {envelope.data.device.id!r} published by {device_id!r}")
        view = self.devices.setdefault(device_id, DeviceView(device_id, link=self.link))
        if kind == "status":
            self._on_status(view, envelope, msg.retain)
        else:
            getattr(self, f"_on_{kind}")(view, envelope)

    def _on_status(self, view: DeviceView, env: Envelope, retained: bool) -> None:
        """A status: live ones are heartbeats; a retained one only says what the device last claimed."""
        status: contract.Status = env.data
        applied, clash = view.hear(status, retained)
        if clash:
            self._note_duplicate(view, *clash)
        if not applied:
            return
        self.store.upsert_device(view.id, not retained, state=status.state, agent_version=status.agent_version,
                                 tags=list(status.tags), job=status.job)

    def _on_info(self, view: DeviceView, env: Envelope) -> None:
        info: contract.Info = env.data
        view.tags, view.measures = info.tags, info.measures
        self.store.upsert_device(view.id, info=contract.to_builtins(info), tags=list(view.tags))

    def _on_telemetry(self, view: DeviceView, env: Envelope) -> None:
        view.telemetry = env.data
        self.counters.telemetry += 1

    def _on_results(self, view: DeviceView, env: Envelope) -> None:
        doc: contract.Result = env.data
        view.phase = ""
        job = None if self.read_only else self.store.job_for_run(doc.run_id)
        if job is None:  # another controller's run (or a listener's view): its owner stores and acks it
            self.counters.not_ours += 1
            return
        if job is not None and job.run_id != doc.run_id and job.state in ("sent", "running"):
            # An earlier attempt (given up as lost) delivered after all: its re-run is not needed.
            self._cancel_attempt(job, "superseded by an earlier attempt's result")
        self._revoke(doc.run_id)
        if job is not None and job.state in ("sent", "running"):  # the device rests before its next job
            view.cooldown_until = time.time() + float(self.store.campaign(job.campaign_id)["spec"]["cooldown_s"])
        if self.store.add_result(doc, env.raw, view.id):
            self.counters.results_stored += 1
        else:
            self.counters.results_duplicate += 1
        self._acks[view.id].append(doc.run_id)

    def _on_events(self, view: DeviceView, env: Envelope) -> None:
        self.counters.events += 1
        event = env.data
        if isinstance(event, contract.Duplicate):
            self._note_duplicate(view, event.other_session, event.session, f" ({view.id} said: {event.detail})")
            return
        if isinstance(event, contract.Progress):
            view.phase, view.phase_since, view.phase_details = event.phase, time.time(), dict(event.details)
            return
        if self.read_only or self.store.job_for_run(event.run_id) is None:
            if isinstance(event, (contract.Failed, contract.Rejected, contract.Cancelled)):
                view.phase = ""
                self.counters.not_ours += not isinstance(event, contract.Rejected)
            return
        if isinstance(event, contract.Accepted):
            self.store.mark_running(event.run_id)
        elif isinstance(event, contract.Cancelled):  # durable on the agent like a failure, but no failure
            self._acks[view.id].append(event.run_id)
            self._end(event.run_id, "cancelled", f"{view.id}: {event.reason}", retryable=False)
            view.phase = ""
        elif isinstance(event, (contract.Failed, contract.Rejected)):
            if isinstance(event, contract.Failed):
                self._acks[view.id].append(event.run_id)  # failures are durable on the agent, like results
                if event.duplicate:
                    view.phase = ""
                    return
            busy = isinstance(event, contract.Rejected) and event.busy  # another controller's job got there first
            self._end(event.run_id, "busy" if busy else "failed", f"{view.id}: {event.reason}", event.retryable)
            view.phase = ""

    def _note_duplicate(self, view: DeviceView, first: str, second: str, said: str = "") -> None:
        """Say, once per pair of sessions, that two agents answer under one device id."""
        text = (f"two agents use device id {view.id} (sessions {first} and {second}; cloned images sharing a hostname?): "
                "the newer one stops itself; give each agent its own device_id")
        if view.duplicate != text:
            view.duplicate = text
            self.notices.append(text + said)
            log.warning(self.notices[-1])

    # ---- deciding ----------------------------------------------------------------------------
    def _end(self, run_id: str, state: str, reason: str, retryable: bool) -> None:
        self._revoke(run_id)
        job = self.store.job_for_run(run_id)
        if job is None or job.state in TERMINAL or job.run_id != run_id:
            return
        campaign = self.store.campaign(job.campaign_id)["spec"]
        # A device that was busy with another job refused nothing about this one: that costs no retry.
        counted = job.attempts - self.store.busy_refusals(job.id)
        requeue = retryable and (state == "busy" or counted < 1 + int(campaign["retries"]))
        self.store.end_attempt(run_id, state, reason, requeue)
        view = self.devices.get(job.device_id)
        if view:
            view.cooldown_until = time.time() + float(campaign["cooldown_s"])
        self.notices.append(f"{job.key}: attempt {job.attempts} {state} ({reason})" + ("; re-queued" if requeue else ""))
        log.warning(self.notices[-1])

    def _flush_acks(self) -> None:
        for device_id, run_ids in self._acks.items():
            if run_ids:
                self._publish(device_id, "acks", "ack", contract.Ack(tuple(run_ids), self.controller_id))
        self._acks.clear()

    def _publish(self, device_id: str, kind: str, msg_type: str, data: Any) -> None:
        qos, retain, _ = TOPICS[kind]
        self.conn.publish(
            self.topics.device(device_id, kind), Envelope(msg_type, device_id, data).encode(self.key), qos=qos, retain=retain
        )

    def _artifact(self, reference: str) -> dict[str, Any]:
        """The artifact block of ``reference`` as the file is now: hashed again whenever its size or
        modification time changed (a controller can run for days while someone edits a model)."""
        path = artifact_path(reference)
        stamp = _stamp(path)
        cached = self._artifact_blocks.get(reference)
        if cached is None or cached[0] != stamp:
            self._artifact_blocks[reference] = cached = (stamp, self.artifacts.add(path))
        return cached[1]

    def _artifact_changed(self, job: Job) -> str | None:
        """Why ``job`` cannot run its campaign's model any more (the file changed or went away since the
        campaign pinned its sha256), or None. Runs of two different files must never share a scorecard row."""
        reference = job.spec["variant"]["artifact"]
        pinned = self.store.campaign(job.campaign_id)["spec"].get("pins", {}).get(reference)
        if pinned is None:
            return None
        try:
            path = artifact_path(reference)
        except ModelError as exc:  # a fetched zoo model deleted from the zoo cache since the campaign started
            return str(exc)
        try:
            now = self._artifact(reference)["sha256"]
        except OSError as exc:
            return f"model file {path} cannot be read any more ({exc.strerror or exc}); start a new campaign"
        if now == pinned:
            return None
        return (f"model file {path} changed since the campaign started (sha256 {pinned[:12]}… then, {now[:12]}… now); "
                "start a new campaign to measure the new file")

    def _granted(self, run_id: str, spec: JobSpec) -> dict[str, Any]:
        """The attempt's artifact block with its own token; re-sends of the same attempt reuse it."""
        if run_id not in self._grants:
            block = self._artifact(spec.variant.artifact)
            self._grants[run_id] = self.artifacts.grant(block, float(spec.timeout_s) + ARTIFACT_FETCH_ALLOWANCE_S)
        return self._grants[run_id]

    def _cancel_attempt(self, job: Job, reason: str) -> None:
        """Tell the device to stop the job's current attempt and end it cancelled, not re-queued."""
        self._publish(job.device_id, "jobs", "cancel", contract.Cancel(job.run_id, self.controller_id))
        self.store.end_attempt(job.run_id, "cancelled", reason, requeue=False)
        self._revoke(job.run_id)

    def _revoke(self, run_id: str) -> None:
        """The attempt has ended (done, failed, lost, timed out, cancelled): its token opens nothing any more."""
        self._nudged.pop(run_id, None)
        granted = self._grants.pop(run_id, None)
        if granted is not None:
            self.artifacts.revoke(granted.get("token"))

    def _send(self, job: Job, run_id: str, attempt: int) -> None:
        spec = JobSpec.from_dict(job.spec)
        message = job_message(spec, run_id, attempt, job.campaign_id, self._granted(run_id, spec), self.controller_id)
        self._publish(job.device_id, "jobs", "job", message)

    def create_campaign(self, campaign: Campaign) -> str:
        """Expand ``campaign`` over the devices heard so far and store it with its job matrix."""
        heard = [d for d in self.devices.values() if d.heard]
        known = [(d.id, d.tags) for d in heard]
        jobs = expand(campaign, known)
        # Each model file's sha256 as it is now: every attempt, resumed ones too, must run exactly this file.
        pins = {v.artifact: self._artifact(v.artifact)["sha256"] for m in campaign.models for v in m.variants}
        return self.store.create_campaign(
            campaign.name, campaign.source, campaign.to_dict() | {"pins": pins}, [(j.key, j.device_id, j.to_dict()) for j in jobs]
        )

    def resume(self, campaign_id: str) -> None:
        """After a controller restart: jobs it had sent are sent again under the same run id.

        The agent answers from its own records — still running, or the result from its outbox —
        so nothing runs twice and nothing is stored twice. Jobs that failed for good stay failed: a
        ``finished_with_failures`` campaign resumed ends the same way (a new campaign runs them again).
        """
        self.store.set_campaign_state(campaign_id, "running")
        for job in self.store.jobs(campaign_id, ("sent", "running")):
            self._send(job, job.run_id, job.attempts)
            self.store.mark_resent(job)

    def tick(self, campaign_id: str) -> str:
        """One scheduling pass over a running campaign; returns its state afterwards: ``running``, or how it
        ended — ``finished``, ``finished_with_failures`` (a job failed for good, so "finished" alone would
        claim a complete measurement) or ``cancelled``."""
        now = time.time()
        if self.store.cancel_requested(campaign_id):  # before anything is dispatched: a cancel stops the next job
            return self.cancel(campaign_id)
        active = self.store.jobs(campaign_id, ("pending", "sent", "running"))
        if not active:
            state = "finished_with_failures" if self.store.jobs(campaign_id, ("failed",)) else "finished"
            self.store.set_campaign_state(campaign_id, state)
            return state
        busy = {j.device_id for j in active if j.state in ("sent", "running")}
        gangs: dict[str, list[Job]] = defaultdict(list)  # a sweep's device-count points: gang -> its pending members
        for job in active:
            if job.state == "pending" and job.spec.get("gang"):
                gangs[job.spec["gang"]].append(job)
        for job in active:
            view = self.devices.get(job.device_id)
            if job.state != "pending":
                self._watch(job, view, now)
            elif job.spec.get("gang"):
                if gangs[job.spec["gang"]][0] is job:  # once per gang, at its first member
                    self._maybe_dispatch_gang(gangs[job.spec["gang"]], busy, now)
            elif self._ready(job, view, busy, now):
                self._dispatch(job, view, busy, now)
        self._flush_acks()
        return "running"

    def _maybe_dispatch_gang(self, members: list[Job], busy: set[str], now: float) -> None:
        """The pending members of one gang (``JobSpec.gang``: one sweep point on k devices at once) go out
        together, in this tick, only when every member's device is ready; otherwise their devices are held
        (marked busy for the rest of the tick) so that no later job takes one while the gang waits for another.

        Only the members pending *together* are tied: a member whose attempt failed is re-queued alone and
        goes alone (its window then overlaps the others' less, which the scaling view reports), and a member
        whose device never comes online fails by itself after ``device_wait_s`` (``_ready``), releasing the
        rest. So no member's retries, timeouts or absence can hold the others forever."""
        ready = [self._ready(m, self.devices.get(m.device_id), busy, now) for m in members]
        if all(ready):
            for m in members:
                self._dispatch(m, self.devices[m.device_id], busy, now)
        else:
            busy.update(m.device_id for m in members)

    def _ready(self, job: Job, view: DeviceView | None, busy: set[str], now: float) -> bool:
        """Whether ``job`` can go to its device now; fails it when its device stayed away or its file changed."""
        if job.device_id in busy:
            return False
        if view is not None and view.state == "busy" and view.heard:
            self._waiting_since.pop(job.device_id, None)  # heard, running another controller's job: wait for it
            return False
        if view is None or not view.available:
            since = self._waiting_since.setdefault(job.device_id, now)
            if now - since > self.device_wait_s:
                reason = f"device {job.device_id} was not online for {self.device_wait_s:g} s"
                self.store.fail_pending(job.id, reason)
                self.notices.append(f"{job.key}: failed, {reason}")
            return False
        self._waiting_since.pop(job.device_id, None)
        unmeasurable = _not_measurable(job, view.measures)
        if unmeasurable:
            self.store.fail_pending(job.id, unmeasurable, state="not_measured")
            self.notices.append(f"{job.key}: not measured, {unmeasurable}")
            return False
        if now < view.cooldown_until:
            return False
        changed = self._artifact_changed(job)
        if changed:
            self.store.fail_pending(job.id, changed)
            self.notices.append(f"{job.key}: failed, {changed}")
            log.warning(self.notices[-1])
            return False
        return True

    def _dispatch(self, job: Job, view: DeviceView, busy: set[str], now: float) -> None:
        run_id = self.store.start_attempt(job)
        self._send(job, run_id, job.attempts + 1)
        busy.add(job.device_id)
        view.phase, view.phase_since, view.phase_details = "sent", now, {"key": job.key}

    def _watch(self, job: Job, view: DeviceView | None, now: float) -> None:
        """A job out on a device: re-send if unanswered, give up on lost devices and overruns."""
        silent = view.silent_since() if view is not None else None
        if silent is not None and time.monotonic() - silent > self.offline_grace_s:
            how = "went offline" if view.state == "offline" else f"stopped its heartbeat (every {view.heartbeat_s:g} s)"
            self._end(job.run_id, "lost", f"device {job.device_id} {how} mid-job", retryable=True)
        elif job.state == "sent" and (now - (job.sent_at or now) > self.accept_timeout_s or self._idle_after(job, view, now)):
            if job.resends >= self.max_resends:
                self._end(job.run_id, "failed", f"device {job.device_id} never accepted the job", retryable=True)
            elif view is not None and view.state != "offline":
                self._send(job, job.run_id, job.attempts)
                self.store.mark_resent(job)
        elif job.state == "running" and now - (job.accepted_at or now) > job.spec["timeout_s"] + RUN_TIMEOUT_MARGIN_S:
            self._publish(job.device_id, "jobs", "cancel", contract.Cancel(job.run_id, self.controller_id))
            self._end(job.run_id, "failed", f"timed out after {job.spec['timeout_s']:g} s", retryable=True)
        elif job.state == "running" and self._idle_after(job, view, now):
            self._send(job, job.run_id, job.attempts)

    def _idle_after(self, job: Job, view: DeviceView | None, now: float) -> bool:
        """The device said it is idle, without a job, after this attempt went out (or was accepted), and
        nothing has come of it ``IDLE_RESEND_AFTER_S`` later: the job or its answer was lost on the way (a
        broker restart between publish and delivery, a full broker queue). True once per status heard, so
        the job goes again now rather than after ``accept_timeout_s`` or the agent's re-send timer. A
        re-delivery is safe: the agent never runs a run id twice, and re-sends a result it still holds."""
        if view is None or view.state != "online" or view.agent_job is not None or view.heard_at is None:
            return False
        since_heard = time.monotonic() - view.heard_at
        went_out = job.accepted_at if job.state == "running" else job.sent_at
        if (now - (went_out or now)) - since_heard <= 0 or since_heard < IDLE_RESEND_AFTER_S:
            return False
        if self._nudged.get(job.run_id) == view.heard_at:
            return False
        self._nudged[job.run_id] = view.heard_at
        return True

    def cancel(self, campaign_id: str) -> str:
        """Stop a campaign: pending jobs cancelled, running ones told to stop."""
        self.store.cancel_pending(campaign_id, "campaign cancelled")
        for job in self.store.jobs(campaign_id, ("sent", "running")):
            self._cancel_attempt(job, "campaign cancelled")
        self.store.set_campaign_state(campaign_id, "cancelled")
        return "cancelled"

    def run(self, campaign_id: str, on_tick: Callable[[Fleet, str], None] | None = None, tick_s: float = 0.2) -> str:
        """Drive a campaign to its end: handle messages, schedule, repeat."""
        state, next_tick = "running", 0.0
        while state == "running":
            self.pump(wait_s=0.05)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + tick_s
                with self.store.transaction():
                    state = self.tick(campaign_id)
                if on_tick:
                    on_tick(self, campaign_id)
        self.pump(wait_s=0.2)  # acks for anything that arrived with the last result
        return state

    def device_rows(self) -> list[dict[str, Any]]:
        """Every device the database knows, its state as heard now: live, stale or never heard here."""
        rows = self.store.devices()
        for row in rows:
            view = self.devices.get(row["id"])
            said = row["state"] or "?"
            row["state"] = view.describe() if view else f"stale (last said {said}; not heard since this controller connected)"
        return rows

    def discover(self, seconds: float) -> None:
        """Listen for ``seconds`` so retained status/info of every device arrive before planning."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.pump(wait_s=min(0.1, max(0.0, end - time.monotonic())))


def _not_measurable(job: Job, limit: contract.Measures | None) -> str | None:
    """Why ``job``'s device cannot measure it (its scenario or mode is not among those the device measures), or None."""
    scenario, mode = job.spec["scenario"], job.spec["mode"]
    if limit is None or (scenario in limit.scenarios and mode in limit.modes):
        return None
    return (f"{job.device_id} measures {'/'.join(limit.scenarios)} {'/'.join(limit.modes)} only, not {scenario} {mode}: "
            f"{limit.reason}")
