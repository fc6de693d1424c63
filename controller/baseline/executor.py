"""The baseline host as a device of the fleet: the scheduler's jobs, run here by the agent's engine.

The fleet's scheduler (``controller.fleet.scheduler.Fleet``) drives a baseline exactly as it
drives devices — dispatch one job at a time, cooldowns, retries, cancels, the store — and talks
to this executor through the same contract: it "publishes" a ``contract.Job`` and hears back an
``accepted`` event and a ``result`` or ``failed`` message, each encoded and decoded through
``agent.contract`` like any device's. Only the transport differs: no broker; a job is queued by
``publish`` and run by ``run_queued`` between the scheduler's passes (outside its database
transaction, so ``edgeperf campaign cancel`` can write meanwhile, and Ctrl-C leaves a clean
record).

What runs is the job as a device would run it (``agent.jobs.request_from_job`` → ``agent.bench.run``)
with the baseline's changes, each recorded in the result's ``baseline`` block: the planned ONNX
model in place of the artifact, the baseline's providers and options in place of the variant's,
and the plan's idle baseline for energy.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from agent import bench, contract, model_file, result
from agent.contract import Envelope, Job, ProtocolError, Topics
from agent.errors import EdgeperfError
from agent.jobs import request_from_job
from agent.transport import Message

log = logging.getLogger("edgeperf.controller.baseline")
TENSORRT = "TensorrtExecutionProvider"


class LocalArtifacts:
    """Artifact blocks for jobs that never leave this host: a ``file://`` URL and the file's sha256, no token."""

    def add(self, path: Path) -> dict[str, Any]:
        model = model_file.resolve(str(path))
        return {"url": model.path.as_uri(), "sha256": model.sha256, "size": model.size_bytes, "name": model.path.name}

    def grant(self, block: dict[str, Any], ttl_s: float) -> dict[str, Any]:
        return block

    def revoke(self, token: str | None) -> None:
        """Nothing was granted."""


def summary(result: contract.Result) -> str:
    """One line per finished job for the progress view."""
    k = result.kpis

    def fmt(value: Any, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    if result.mode != "performance" and k.accuracy is not None:
        text = f"top-1 {fmt(k.accuracy.top1, '.4f')} (n={k.accuracy.n})"
    else:
        text = f"p90 {fmt(k.latency_ms.p90, '.3f')} ms, {fmt(k.throughput_sps, '.1f')} samples/s"
    energy = k.energy
    if energy is not None and energy.energy_per_inference_mj is not None:
        text += (f", {energy.energy_per_inference_mj:.3f} mJ/inference "
                 f"({'measured' if energy.measured else 'estimated'}, {energy.source})")
    return text + (", VALID" if result.valid else f", INVALID ({'; '.join(result.invalid_reasons)})")


class LocalExecutor:
    """A fleet link (``inbox`` + ``publish``) whose one device is this host, running jobs in process.

    ``settings`` is the plan's (``BaselinePlan.settings()``, kept in the campaign row); ``planned``
    maps each job key to its stored ``baseline`` block (the model that runs and the job's notes);
    ``positions`` numbers the jobs for the progress lines.
    """

    def __init__(self, settings: dict[str, Any], planned: dict[str, dict[str, Any]], positions: dict[str, int],
                 retries: int, progress: Callable[[str], None], key: bytes, topics: Topics | None = None) -> None:
        self.settings, self.planned, self.positions, self.retries = settings, planned, positions, retries
        self.progress, self.key, self.topics = progress, key, topics or Topics()
        self.device = settings["device_id"]
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.running: Job | None = None  # the job in progress (Ctrl-C ends its attempt)
        self._queued: list[Job] = []
        self._seq = 0
        # One status for the whole campaign: jobs run inside the scheduler's own loop, so this device
        # cannot fall silent while the scheduler watches; the longest heartbeat period says so.
        self._say("status", "status", contract.Status("online", secrets.token_hex(8), 86400.0, tags=("baseline",)))

    # the link the scheduler talks to
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """A message from the scheduler: jobs are queued, a cancel drops a queued job, acks need nothing."""
        kind = self.topics.parse(topic)[1]
        body = contract.decode(kind, payload, self.key).data
        if isinstance(body, Job):
            self._queued.append(body)
        elif isinstance(body, contract.Cancel):
            self._queued = [j for j in self._queued if j.run_id != body.run_id]

    def run_queued(self, *_: Any) -> None:
        """Run what the scheduler sent since the last pass (the ``on_tick`` of ``Fleet.run``)."""
        while self._queued:
            job = self._queued.pop(0)
            self.running = job
            self._run(job)
            self.running = None

    # one job
    def _say(self, topic_kind: str, kind: str, body: Any) -> None:
        """Hand the scheduler a message as a device would publish it: encoded, to be decoded by the contract."""
        self._seq += 1
        payload = Envelope(kind, self.device, body, seq=self._seq).encode(self.key)
        self.inbox.put(Message(self.topics.device(self.device, topic_kind), payload, False))

    def _run(self, job: Job) -> None:
        planned = self.planned[job.key or ""]
        what = f"[{self.positions.get(job.key or '', 0) + 1}/{len(self.positions)}] {(job.key or '').split('/', 1)[-1]}"
        ran = Path(planned["path"]).name + (f" for {Path(planned['substituted_for']).name}" if planned["substituted_for"] else "")
        self._say("events", "accepted", contract.Accepted(job.run_id))
        self.progress(f"{what}: running {ran}" + (f" (attempt {job.attempt})" if job.attempt > 1 else ""))
        try:
            doc = bench.run(self._request(job, planned))
        except EdgeperfError as exc:  # the user's to fix: the same job fails the same way again
            self._fail(job, str(exc), False, what)
            return
        except Exception as exc:  # ORT's own errors (a TensorRT build or a CUDA allocation that failed), bugs
            log.exception("baseline job %s failed", job.key)
            first_line = (str(exc).strip().splitlines() or [""])[0]
            self._fail(job, f"{type(exc).__name__}: {first_line}", True, what)
            return
        doc["job"] = {"campaign": job.campaign, "key": job.key, "attempt": job.attempt}
        doc["baseline"] = self._block(planned)
        used = doc["runtime"].get("details", {}).get("providers") or []
        first = self.settings["providers"][0]
        if used and used[0] != first:  # onnxruntime's Python API falls back when an EP fails to load
            doc["baseline"]["notes"].append(f"asked for {first} first, but ONNX Runtime ran {', '.join(used)}")
        doc = json.loads(result.dumps(doc))  # what a device sends: plain JSON, NaN as null
        try:
            checked, _ = contract.checked_result(doc)
        except ProtocolError as exc:  # the engine broke its own contract: a bug, but one job's
            self._fail(job, f"the result breaks the contract: {exc}", False, what)
            return
        self._say("results", "result", doc)
        self.progress(f"{what}: {summary(checked)}")

    def _fail(self, job: Job, reason: str, retryable: bool, what: str) -> None:
        self._say("events", "failed", contract.Failed(job.run_id, reason[:4096], retryable))
        again = retryable and job.attempt < 1 + self.retries
        self.progress(f"{what}: failed: {reason}" + ("; retrying" if again else ""))

    def _request(self, job: Job, planned: dict[str, Any]) -> bench.BenchRequest:
        """The agent's request for this job, with the baseline's model, providers and idle baseline."""
        s = self.settings
        options = msgspec.structs.replace(job.options, providers=tuple(s["providers"]), provider_options=s["provider_options"])
        job = msgspec.structs.replace(job, runtime="onnxruntime", options=options, power_idle_s=float(s["idle_s"]))
        cache = s["provider_options"].get(TENSORRT, {}).get("trt_engine_cache_path")
        if cache:
            Path(cache).mkdir(parents=True, exist_ok=True)
        return request_from_job(job, Path(planned["path"]), bench.default_log_root(), self.device)

    def _block(self, planned: dict[str, Any]) -> dict[str, Any]:
        """The result's ``baseline`` block: what kind of baseline, on what, and what ran in whose place."""
        s = self.settings
        block: dict[str, Any] = {"kind": s["kind"], "providers": s["providers"]}
        if s["reason"]:
            block["reason"] = s["reason"]
        if s["kind"] == "gpu":
            block |= {"gpus": s["gpus"], "nvml_index": s["nvml_index"]}
        if planned["substituted_for"]:
            block |= {"substituted_for": planned["substituted_for"], "substituted_by": planned["substituted_by"]}
        return block | {"of_campaign": s["of"], "in_process": True, "power": s["power"], "power_note": s["power_note"],
                        "notes": [*s["notes"], *planned["notes"]]}
