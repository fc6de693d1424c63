"""Running a planned baseline: stored as a campaign of kind ``baseline``, driven by the fleet's
scheduler over the local executor; Ctrl-C leaves it ``interrupted`` and ``resume_baseline``
finishes it on the same host."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent import fleet_key
from agent.contract import Topics
from controller.baseline.executor import LocalArtifacts, LocalExecutor
from controller.baseline.plan import (
    DEFAULT_IDLE_S,
    BaselineError,
    Progress,
    announce,
    choose_providers,
    host_device_id,
    job_notes,
    ort_module,
    plan_baseline,
    probe_open,
    silent,
)
from controller.fleet.campaign import Campaign
from controller.fleet.scheduler import Fleet
from controller.store.database import Store


def run_baseline(
    campaign: Campaign,
    store: Store,
    *,
    providers: Sequence[str] | None = None,
    power: str | None = "auto",
    mapping: dict[str, str] | None = None,
    progress: Progress | None = None,
    idle_s: float = DEFAULT_IDLE_S,
    trt_cache_dir: Path | None = None,
) -> str:
    """Run ``campaign``'s jobs on this host as a ``baseline`` campaign; returns its id.

    ``providers``: ORT execution providers in priority order (None: TensorRT, CUDA where this
    onnxruntime has them, else CPU — labelled host-cpu). ``power``: ``auto``, a spec, or None.
    ``mapping``: ``{variant name | artifact: model.onnx}`` (paths relative to the current directory)
    for variants ORT cannot load; it wins over the zoo manifest's ONNX sibling.
    ``progress(message)`` hears the plan, its notes, and each job's start and end. ``idle_s``:
    the idle baseline each energy measurement takes first. Nothing is stored when planning fails.
    """
    progress = progress or silent
    plan = plan_baseline(campaign, providers=providers, power=power, mapping=mapping, idle_s=idle_s,
                         trt_cache_dir=trt_cache_dir)
    rows = []
    for job in plan.jobs:
        label = f"{job.model}/{job.variant.name}"
        planned = plan.models[label]
        extra = {"baseline": planned.to_dict() | {"notes": job_notes(job.variant, planned, plan.providers)}}
        rows.append((job.key, job.device_id, job.to_dict() | extra))
    spec = campaign.to_dict() | {"power": plan.power, "baseline": plan.settings()}
    campaign_id = store.create_campaign(plan.name, campaign.source, spec, rows, kind="baseline")
    announce(plan, f"{plan.name} ({campaign_id})", len(rows), progress)
    return _drive(store, campaign_id, spec, progress)


def resume_baseline(store: Store, ref: str, *, progress: Progress | None = None) -> str:
    """Finish an interrupted baseline on the host it started on; done jobs are not run again."""
    progress = progress or silent
    row = store.campaign(ref, kind="baseline")
    spec = row["spec"]
    if row.get("kind") != "baseline" or "baseline" not in spec:
        raise BaselineError(f"campaign {row['name']} ({row['id']}) is a {row.get('kind')} campaign, not a baseline")
    settings = spec["baseline"]
    here = host_device_id(settings["kind"])
    if here != settings["device_id"]:
        raise BaselineError(f"baseline {row['name']} ran on {settings['device_id']}; resume it there, not on {here}")
    choose_providers(settings["providers"], ort_module().get_available_providers())
    if settings["power"]:
        probe_open(settings["power"])
    for job in store.jobs(row["id"], ("sent", "running")):  # the process that ran them is gone
        store.end_attempt(job.run_id, "lost", "the controller stopped during this job", requeue=True)
    store.set_campaign_state(row["id"], "running")
    announce(settings, f"{row['name']} ({row['id']}, resumed)", len(store.jobs(row["id"], ("pending",))), progress)
    return _drive(store, row["id"], spec, progress)


def _drive(store: Store, campaign_id: str, spec: dict[str, Any], progress: Progress) -> str:
    """The fleet's scheduler over this host's executor until the campaign ends; Ctrl-C leaves it resumable."""
    jobs = store.jobs(campaign_id)
    key = secrets.token_bytes(fleet_key.KEY_BYTES)  # in process: no other party ever needs it
    executor = LocalExecutor(spec["baseline"], {j.key: j.spec["baseline"] for j in jobs},
                             {j.key: j.position for j in jobs}, int(spec["retries"]), progress, key)
    fleet = Fleet(store, executor, Topics(), LocalArtifacts(), key=key)
    try:
        state = fleet.run(campaign_id, on_tick=executor.run_queued, tick_s=0.0)
    except KeyboardInterrupt:
        if executor.running is not None:  # a no-op once its result is stored
            store.end_attempt(executor.running.run_id, "cancelled", "interrupted (Ctrl-C)", requeue=True)
        store.set_campaign_state(campaign_id, "interrupted")
        progress("interrupted; resume the baseline to finish it")
        raise
    if state == "cancelled":
        progress(f"baseline {campaign_id}: cancelled")
        return campaign_id
    jobs = store.jobs(campaign_id)
    failed = [j for j in jobs if j.state == "failed"]
    progress(f"baseline {campaign_id} {state}: {len(jobs) - len(failed)} done, {len(failed)} failed")
    return campaign_id
