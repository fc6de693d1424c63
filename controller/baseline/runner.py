"""Datacenter baseline: a campaign's jobs on this host's NVIDIA GPU (or, labelled, its CPU), in process.

Edge and datacenter numbers must come from the same measurement code, so the baseline does not
have a runner of its own: every job is turned into the very protocol message a device would get
(``controller.fleet.job_message``), into the very ``BenchRequest`` an agent would build from it
(``agent.jobs.request_from_job``), and run by the agent's engine (``agent.bench.run``) inside the
controller's process. Results go into the store like any device's, under a campaign of kind
``baseline`` named ``<campaign>-baseline``: the user's own campaign name keeps finding their edge
campaign, and ``compare`` pairs the two by job key (model / variant / scenario / mode).

What runs, and how it is labelled — never silently:

- **Providers.** By default ONNX Runtime's ``TensorrtExecutionProvider`` and
  ``CUDAExecutionProvider`` (those this onnxruntime has, in that order, then CPU for what they
  reject). The device is ``host-gpu:<hostname>`` and every result carries ``baseline.kind = "gpu"``
  with the providers and the GPU's NVML facts. Without either provider (plain ``onnxruntime``, no
  ``onnxruntime-gpu``) the jobs run on ``CPUExecutionProvider`` as ``host-cpu:<hostname>`` with
  ``baseline.kind = "host-cpu"`` and the reason, and the progress callback says so before anything
  runs. Providers given explicitly are checked against this onnxruntime before the campaign is
  stored: a missing one is one ``SettingsError`` line, never a half-stored campaign or a silent CPU
  run. A variant's own provider list and options (meant for its edge device) are replaced by the
  baseline's, and each such result says so in ``baseline.notes``.
- **Precision.** The baseline runs the model's own precision: TensorRT with ``trt_fp16_enable``
  off (an fp16 engine would make an fp32 model's baseline faster and less accurate than the
  model), the CUDA provider with ``use_tf32=0``. INT8 QDQ models are handed over as they are (no
  calibration table, no ``trt_int8_enable``). TensorRT engines are cached (``trt_cache_dir``,
  default ``$XDG_CACHE_HOME/edgeperf/tensorrt``), so only a model's first job on a host pays the
  engine build — inside its ``load_time_ms``.
- **Models.** ONNX Runtime cannot load TFLite or Core ML, so such a variant runs an ONNX file of
  the same trained model: the user's mapping (``{variant name | model/variant | artifact | artifact
  file name: model.onnx}``) or the zoo manifest's ``onnx_sibling``. The result's ``model`` block
  describes the file that actually ran (its sha256, format ``onnx``, precision) and
  ``baseline.substituted_for`` names the artifact it stands in for; ``model.name`` stays the
  campaign's ``<model>/<variant>`` so the rows pair up. A variant with neither is refused, naming
  the fix, before anything is stored or run.
- **Energy.** ``power="auto"``: NVML on the GPU the run uses (the board's power, not the host's);
  for a CPU run the normal order of this host's device profile without NVML (a CPU run's energy is
  not the GPU's) — RAPL on x86, else the estimate, labelled estimated by the energy block itself,
  with the host's own CPU profile, never a GPU's figures. Any other spec is opened once up front,
  so a missing meter is one clear error. ``None``: no energy block.

Jobs run one at a time in the campaign's order with its cooldown. A job that fails (a model
TensorRT cannot build, say) is stored as a failed attempt with its reason and the run goes on:
user errors (``EdgeperfError``) are final, as on an agent; anything else is retried up to the
campaign's ``retries``. Being in process has two costs, recorded in every result's notes:
``memory.peak_rss_mb`` is the controller process's high-water mark so far, not one job's, and the
campaign's ``timeout_s`` cannot be enforced. Ctrl-C re-queues the running job and leaves the
campaign ``interrupted``; ``resume_baseline`` finishes it on the same host.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent import bench, model_file, result, zoo
from agent.energy import PowerPlan, auto_order
from agent.errors import EXIT_USAGE, EdgeperfError, ModelError, RuntimeMissing, SettingsError
from agent.jobs import request_from_job
from controller.fleet.campaign import Campaign, JobSpec, Variant, device_jobs
from controller.fleet.scheduler import artifact_path, job_message
from controller.store.database import Job, Store
from devices import power as power_sources
from devices import probe, profiles
from devices.power import nvml
from devices.power.base import PowerSourceError

log = logging.getLogger("edgeperf.controller.baseline")

Progress = Callable[[str], None]
TENSORRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
GPU_PROVIDERS = (TENSORRT, CUDA)  # the default, in priority order; NVIDIA's, so NVML meters them
NO_GPU_REASON = "no CUDA/TensorRT execution provider in this onnxruntime (install onnxruntime-gpu on a GPU host)"
NAME_SUFFIX = "-baseline"
DEFAULT_IDLE_S = PowerPlan().idle_s
IN_PROCESS_NOTE = ("run in the controller's process: memory.peak_rss_mb is the process's high-water mark so far, "
                   "not this job's alone, and the campaign's timeout_s is not enforced")


class BaselineError(EdgeperfError):
    """A baseline that cannot be planned as asked (a variant without an ONNX model, a bad mapping)."""

    exit_code = EXIT_USAGE


def _silent(message: str) -> None:
    """Default progress sink."""


# --- planning -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedModel:
    """The ONNX file one variant runs on the baseline host, and what it stands in for."""

    ref: str  # a zoo name or an absolute path
    path: Path
    sha256: str
    size_bytes: int
    substituted_for: str | None = None  # the variant's artifact, when another file runs in its place
    substituted_by: str | None = None  # "mapping" | "zoo manifest"

    @property
    def note(self) -> str | None:
        if not self.substituted_for:
            return None
        return f"runs {self.path.name} (from the {self.substituted_by}) in place of {Path(self.substituted_for).name}"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.ref, "path": str(self.path), "sha256": self.sha256, "size_bytes": self.size_bytes,
                "substituted_for": self.substituted_for, "substituted_by": self.substituted_by}


@dataclass(frozen=True)
class BaselinePlan:
    """Everything decided before a baseline runs; ``run_baseline`` stores and executes it.

    The CLI can show it first (a dry run): the device label, the providers, the energy source
    and every note are known here, and every check that can fail has already passed.
    """

    campaign: Campaign
    name: str
    device_id: str
    kind: str  # "gpu" | "host-cpu" | "host" (another accelerator provider, e.g. OpenVINO)
    providers: tuple[str, ...]
    provider_options: dict[str, dict[str, str]]
    power: str | None  # the resolved spec every job measures with; None: no energy
    power_note: str
    idle_s: float
    reason: str | None = None  # why this is not a GPU baseline
    gpus: tuple[dict[str, Any], ...] = ()
    nvml_index: int | None = None
    notes: tuple[str, ...] = ()
    models: dict[str, PlannedModel] = field(default_factory=dict)  # "<model>/<variant>" -> what runs
    jobs: tuple[JobSpec, ...] = ()

    def settings(self) -> dict[str, Any]:
        """What the campaign row keeps, so a resumed baseline runs exactly as planned."""
        return {
            "of": self.campaign.name, "device_id": self.device_id, "kind": self.kind, "providers": list(self.providers),
            "provider_options": self.provider_options, "power": self.power, "power_note": self.power_note,
            "idle_s": self.idle_s, "reason": self.reason, "gpus": list(self.gpus), "nvml_index": self.nvml_index,
            "notes": list(self.notes),
        }


def baseline_name(campaign_name: str) -> str:
    """``fmnist`` → ``fmnist-baseline``: a name lookup for ``fmnist`` keeps finding the edge campaign."""
    return campaign_name + NAME_SUFFIX


def parse_mapping(items: Sequence[str]) -> dict[str, str]:
    """``["int8-tflite=exports/int8.onnx", ...]`` (the CLI's repeated ``--map NAME=model.onnx``) → a mapping."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise BaselineError(f"--map {item!r}: write NAME=path/to/model.onnx (NAME: a variant name or its artifact)")
        out[name.strip()] = path.strip()
    return out


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeMissing(
            "ONNX Runtime is not installed: pip install 'edgeperf[onnx-gpu]' on a GPU host ('edgeperf[onnx]' runs a CPU baseline)"
        ) from None
    return onnxruntime


def choose_providers(requested: Sequence[str] | None, available: Sequence[str]) -> tuple[tuple[str, ...], str, str | None]:
    """(providers, kind, reason-it-is-not-a-GPU-run) for the providers asked for (None: the default).

    Explicit providers ORT lacks are refused here, in the words the agent's own ORT session uses,
    so the error comes before the campaign is stored rather than once per job.
    """
    if requested:
        providers = tuple(requested)
        missing = [p for p in providers if p not in available]
        if missing:
            raise SettingsError(
                f"ONNX Runtime here has no {', '.join(missing)}; available: {', '.join(available)} "
                "(GPU providers need onnxruntime-gpu: pip install 'edgeperf[onnx-gpu]')"
            )
    else:
        providers = (*(p for p in GPU_PROVIDERS if p in available), CPU)
    if any(p in GPU_PROVIDERS for p in providers):
        return providers, "gpu", None
    if set(providers) == {CPU}:
        gpu_here = [p for p in GPU_PROVIDERS if p in available]
        reason = (f"CPUExecutionProvider asked for explicitly (this onnxruntime also has {', '.join(gpu_here)})"
                  if gpu_here else NO_GPU_REASON)
        return providers, "host-cpu", reason
    return providers, "host", f"no CUDA/TensorRT execution provider asked for ({', '.join(providers)})"


def default_trt_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/edgeperf/tensorrt`` (~/.cache/edgeperf/tensorrt): engines survive between baselines."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgeperf" / "tensorrt"


def provider_options_for(providers: Sequence[str], trt_cache_dir: Path) -> dict[str, dict[str, str]]:
    """The baseline's own provider options: the model's precision, engines cached across runs."""
    options: dict[str, dict[str, str]] = {}
    if TENSORRT in providers:
        options[TENSORRT] = {
            "trt_fp16_enable": "False",  # the model's own precision: fp16 would make an fp32 baseline another model
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(trt_cache_dir),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(trt_cache_dir),
        }
    if CUDA in providers:
        options[CUDA] = {"use_tf32": "0"}  # fp32 convolutions and GEMMs stay fp32 on Ampere and later
    return options


def host_device_id(kind: str, hostname: str | None = None) -> str:
    """``host-gpu:<host>`` / ``host-cpu:<host>`` / ``host:<host>``, fit for a device id (no / + #, 64 chars)."""
    prefix = {"gpu": "host-gpu", "host-cpu": "host-cpu"}.get(kind, "host") + ":"
    host = "".join(c if c.isprintable() and c not in "/+#" else "-" for c in (hostname or socket.gethostname()))
    return prefix + (host or "localhost")[: 64 - len(prefix)]


def nvml_index_for(cuda_device: int = 0) -> int:
    """The NVML index of CUDA device ``cuda_device`` as this process sees it.

    ``CUDA_VISIBLE_DEVICES`` renumbers devices for CUDA but not for NVML: ``2,3`` makes CUDA's
    device 0 NVML's GPU 2, and a ``GPU-<uuid>`` entry (or a unique prefix of it) is found by UUID.
    NVML counts in PCI bus order; CUDA does too on hosts of identical GPUs (set
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` on mixed ones).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    entries = [e.strip() for e in visible.split(",") if e.strip()] if visible else []
    if cuda_device >= len(entries):
        return cuda_device
    entry = entries[cuda_device]
    if entry.isdigit():
        return int(entry)
    matches = [g["index"] for g in nvml.all_gpu_facts() if str(g.get("uuid") or "").startswith(entry)]
    if len(matches) != 1:
        count = "no" if not matches else "more than one"
        raise SettingsError(f"CUDA_VISIBLE_DEVICES entry {entry!r} names {count} GPU that NVML sees")
    return matches[0]


def _probe_open(spec: str) -> None:
    """Open a power source and close it again: it works here, now (or raises its one-line error)."""
    power_sources.open_source(spec).close()


def choose_power(spec: str | None, kind: str, facts: dict[str, Any], nvml_index: int | None) -> tuple[str | None, str]:
    """(the spec every job measures with, what it measures) for the ``power`` argument."""
    if spec is None:
        return None, "no energy measurement (power=None)"
    if spec.strip().lower() != "auto":
        try:
            _probe_open(spec)
        except PowerSourceError as exc:
            raise PowerSourceError(f"power {spec!r} cannot be used on this host: {exc}") from None
        return spec, f"{spec}, as asked"
    if kind == "gpu" and nvml_index is not None:
        return f"nvml:index={nvml_index}", f"NVML: GPU {nvml_index}'s board power (not the host's CPU and memory)"
    # A CPU run's energy is the host's: never the GPU board's, nor an estimate from a GPU's figures.
    host_facts = {k: v for k, v in facts.items() if k != "gpus"}
    own, host = profiles.match(facts), profiles.match(host_facts)
    problems = []
    for name in (s for s in auto_order(host_facts) if s != "nvml"):
        candidate = name
        if name == "estimate" and own != host:  # the device profile is the GPU's
            if host is None:
                problems.append("estimate: no device profile describes this host's CPU (the GPU's figures are not the "
                                "CPU's); pass power='estimate:idle_w=..,max_w=..'")
                continue
            candidate = f"estimate:profile={host.name}"
        found = power_sources.availability(name)
        ok, why = found.available, found.reason
        if ok:
            try:
                _probe_open(candidate)
            except PowerSourceError as exc:
                ok, why = False, str(exc)
        if ok:
            prefix = "" if kind != "gpu" else "NVML unavailable, so the host's energy, not the GPU's: "
            return candidate, prefix + why
        problems.append(f"{name}: {why}")
    raise PowerSourceError("no power source works on this host (" + "; ".join(problems) + "); run the baseline without energy")


def _key_matches(key: str, model: str, variant: Variant) -> bool:
    """Whether a mapping key names this variant: its name, ``model/variant``, its artifact or that file's name."""
    if key in (variant.name, f"{model}/{variant.name}", variant.artifact):
        return True
    if variant.artifact.startswith(zoo.PREFIX):
        return key in (variant.artifact.removeprefix(zoo.PREFIX), variant.artifact.rsplit("/", 1)[-1])
    path = Path(variant.artifact)
    return key == path.name or Path(key).expanduser().resolve() == path.resolve()


def _zoo_entry(artifact: str) -> zoo.ZooEntry | None:
    """The zoo entry of an artifact given by zoo name or by the path of a committed zoo file."""
    if artifact.startswith(zoo.PREFIX):
        return zoo.resolve(artifact)
    path = Path(artifact).resolve()
    return next((e for e in zoo.entries() if e.path == path), None)


def _resolve_onnx(ref: str, what: str) -> model_file.ModelFile:
    model = model_file.resolve(ref)
    if model.format != "onnx":
        raise BaselineError(f"{what}: {model.path.name} is a {model.format} model; the baseline runs ONNX models (.onnx)")
    return model


def plan_models(campaign: Campaign, mapping: dict[str, str] | None = None) -> dict[str, PlannedModel]:
    """The ONNX file each variant runs, keyed ``<model>/<variant>``.

    Every refusal happens here, all variants at once, before anything is stored or run.
    """
    mapping = dict(mapping or {})
    used: set[str] = set()
    planned: dict[str, PlannedModel] = {}
    lacking: list[str] = []
    for spec in campaign.models:
        for variant in spec.variants:
            label = f"{spec.name}/{variant.name}"
            keys = [k for k in mapping if _key_matches(k, spec.name, variant)]
            used.update(keys)
            if len(keys) > 1 and len({mapping[k] for k in keys}) > 1:
                raise BaselineError(f"--map: {', '.join(keys)} all name variant {label} with different models; keep one")
            original = artifact_path(variant.artifact)
            fmt = model_file.FORMATS.get(original.suffix.lower())
            if keys:
                value = mapping[keys[0]]
                ref = value if value.startswith(zoo.PREFIX) else str(Path(value).expanduser().resolve())
                model = _resolve_onnx(ref, f"--map {keys[0]}={value}")
                by: str | None = "mapping"
            elif fmt == "onnx":
                model, by = model_file.resolve(variant.artifact), None
            else:
                entry = _zoo_entry(variant.artifact) if original.exists() else None
                sibling = entry.facts.get("onnx_sibling") if entry else None
                if not sibling:
                    if not original.exists():
                        raise ModelError(f"{campaign.source}: variant {label}: model file {variant.artifact!r} not found")
                    beside = original.with_suffix(".onnx")
                    hint = f"; {beside} is next to it — if it is the same model, map it" if beside.is_file() else ""
                    lacking.append(f"{label} ({original.name}, {fmt or 'unknown format'}{hint})")
                    continue
                model_dir = entry.name.rsplit("/", 1)[0]
                model = _resolve_onnx(f"{zoo.PREFIX}{model_dir}/{sibling}", f"zoo manifest sibling of {variant.artifact}")
                by = "zoo manifest"
            substituted = model.path.resolve() != original.resolve()
            planned[label] = PlannedModel(
                ref=model.name if model.name.startswith(zoo.PREFIX) else str(model.path), path=model.path,
                sha256=model.sha256, size_bytes=model.size_bytes,
                substituted_for=variant.artifact if substituted else None, substituted_by=by if substituted else None,
            )
    if lacking:
        raise BaselineError(
            f"{campaign.source}: the baseline runs ONNX models and these variants have no ONNX model to run: "
            f"{'; '.join(lacking)}. Give each an ONNX export of the same model: --map NAME=model.onnx "
            "(NAME: the variant name or its artifact)"
        )
    unused = [k for k in mapping if k not in used]
    if unused:
        names = ", ".join(f"{m.name}/{v.name}" for m in campaign.models for v in m.variants)
        raise BaselineError(f"--map {', '.join(unused)}: names no variant of {campaign.source}; variants: {names}")
    return planned


def _job_notes(variant: Variant, planned: PlannedModel, providers: Sequence[str]) -> list[str]:
    """What differs from the variant as written: the file that runs, and providers meant for the edge device."""
    notes = [planned.note] if planned.note else []
    if variant.providers and tuple(variant.providers) != tuple(providers):
        notes.append(f"the variant's providers ({', '.join(variant.providers)}) are replaced by the baseline's "
                     f"({', '.join(providers)})")
    if variant.provider_options:
        notes.append(f"the variant's provider options for {', '.join(variant.provider_options)} are not used; "
                     "the baseline sets its own")
    return notes


def plan_baseline(
    campaign: Campaign,
    *,
    providers: Sequence[str] | None = None,
    power: str | None = "auto",
    mapping: dict[str, str] | None = None,
    idle_s: float = DEFAULT_IDLE_S,
    trt_cache_dir: Path | None = None,
) -> BaselinePlan:
    """Decide and check everything a baseline needs, touching nothing; raises one-line errors."""
    ort = _ort()
    chosen, kind, reason = choose_providers(providers, ort.get_available_providers())
    device_id = host_device_id(kind)
    models, notes = plan_models(campaign, mapping), []
    facts = probe.collect()
    nvml_index, gpus = None, ()
    if kind == "gpu":
        ok, why = nvml.available()
        if ok:
            nvml_index = nvml_index_for(0)
            gpus = (nvml.gpu_facts(nvml_index),)
        else:
            notes.append(f"no GPU facts or GPU energy: {why}")
    power_spec, power_note = choose_power(power, kind, facts, nvml_index)
    cache = Path(trt_cache_dir or default_trt_cache_dir())
    options = provider_options_for(chosen, cache)
    if TENSORRT in chosen:
        notes.append(f"TensorRT with fp16 off (the model's own precision); engines cached in {cache}, so a model's "
                     "first job includes the engine build in load_time_ms")
    if CUDA in chosen:
        notes.append("CUDA provider with use_tf32=0: fp32 math stays fp32")
    notes.append(IN_PROCESS_NOTE)
    jobs = tuple(replace(j, power=power_spec) for j in device_jobs(campaign, device_id))
    return BaselinePlan(
        campaign=campaign, name=baseline_name(campaign.name), device_id=device_id, kind=kind, providers=chosen,
        provider_options=options, power=power_spec, power_note=power_note, idle_s=idle_s, reason=reason, gpus=gpus,
        nvml_index=nvml_index, notes=tuple(notes), models=models, jobs=jobs,
    )


def announce(plan: BaselinePlan | dict[str, Any], name: str, count: int, progress: Progress) -> None:
    """Tell the user what runs where before anything does — above all when it is not a GPU."""
    s = plan.settings() if isinstance(plan, BaselinePlan) else plan
    progress(f"baseline {name}: {count} jobs on {s['device_id']} with {', '.join(s['providers'])}")
    if s["kind"] != "gpu":
        progress(f"NOTE: not a GPU baseline: {s['reason']}; results are labelled {s['kind']}")
    if s["gpus"]:
        progress(f"GPU: {', '.join(str(g.get('name')) for g in s['gpus'])}")
    progress(f"energy: {s['power_note']}")
    for note in s["notes"]:
        progress(f"note: {note}")
    if isinstance(plan, BaselinePlan):
        for label, planned in plan.models.items():
            if planned.note:
                progress(f"note: {label} {planned.note}")


# --- running ------------------------------------------------------------------------------------


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
    progress = progress or _silent
    plan = plan_baseline(campaign, providers=providers, power=power, mapping=mapping, idle_s=idle_s,
                         trt_cache_dir=trt_cache_dir)
    rows = []
    for job in plan.jobs:
        label = f"{job.model}/{job.variant.name}"
        planned = plan.models[label]
        extra = {"baseline": planned.to_dict() | {"notes": _job_notes(job.variant, planned, plan.providers)}}
        rows.append((job.key, job.device_id, job.to_dict() | extra))
    spec = campaign.to_dict() | {"power": plan.power, "baseline": plan.settings()}
    campaign_id = store.create_campaign(plan.name, campaign.source, spec, rows, kind="baseline")
    announce(plan, f"{plan.name} ({campaign_id})", len(rows), progress)
    return _drive(store, campaign_id, spec, progress)


def resume_baseline(store: Store, ref: str, *, progress: Progress | None = None) -> str:
    """Finish an interrupted baseline on the host it started on; done jobs are not run again."""
    progress = progress or _silent
    row = store.campaign(ref)
    spec = row["spec"]
    if row.get("kind") != "baseline" or "baseline" not in spec:
        raise BaselineError(f"campaign {row['name']} ({row['id']}) is a {row.get('kind')} campaign, not a baseline")
    settings = spec["baseline"]
    here = host_device_id(settings["kind"])
    if here != settings["device_id"]:
        raise BaselineError(f"baseline {row['name']} ran on {settings['device_id']}; resume it there, not on {here}")
    choose_providers(settings["providers"], _ort().get_available_providers())
    if settings["power"]:
        _probe_open(settings["power"])
    for job in store.jobs(row["id"], ("sent", "running")):  # the process that ran them is gone
        store.end_attempt(job.run_id, "lost", "the controller stopped during this job", requeue=True)
    store.set_campaign_state(row["id"], "running")
    announce(settings, f"{row['name']} ({row['id']}, resumed)", len(store.jobs(row["id"], ("pending",))), progress)
    return _drive(store, row["id"], spec, progress)


def _drive(store: Store, campaign_id: str, spec: dict[str, Any], progress: Progress) -> str:
    """Run pending jobs in order until none is left, honouring cooldowns, retries and cancels."""
    total = len(store.jobs(campaign_id))
    first = True
    while True:
        if store.cancel_requested(campaign_id):
            store.cancel_pending(campaign_id, "campaign cancelled")
            store.set_campaign_state(campaign_id, "cancelled")
            progress(f"baseline {campaign_id}: cancelled")
            return campaign_id
        pending = store.jobs(campaign_id, ("pending",))
        if not pending:
            break
        if not first and spec["cooldown_s"]:
            time.sleep(float(spec["cooldown_s"]))
        first = False
        _attempt(store, campaign_id, pending[0], spec, progress, total)
    store.set_campaign_state(campaign_id, "finished")
    jobs = store.jobs(campaign_id)
    failed = [j for j in jobs if j.state == "failed"]
    progress(f"baseline {campaign_id}: {len(jobs) - len(failed)} done, {len(failed)} failed")
    return campaign_id


def _attempt(store: Store, campaign_id: str, job: Job, spec: dict[str, Any], progress: Progress, total: int) -> None:
    """One attempt of one job; Ctrl-C at any point of it re-queues the job and leaves the campaign resumable."""
    what = f"[{job.position + 1}/{total}] {job.key.split('/', 1)[1]}"
    run_id = store.start_attempt(job)
    store.mark_running(run_id)
    try:
        _run_and_store(store, campaign_id, job, run_id, spec, progress, what)
    except KeyboardInterrupt:
        store.end_attempt(run_id, "cancelled", "interrupted (Ctrl-C)", requeue=True)  # a no-op once its result is stored
        store.set_campaign_state(campaign_id, "interrupted")
        progress(f"{what}: interrupted; resume the baseline to finish it")
        raise


def _run_and_store(store: Store, campaign_id: str, job: Job, run_id: str, spec: dict[str, Any], progress: Progress,
                   what: str) -> None:
    """The agent's request, the agent's engine, then the result stored — or the failure with its reason."""
    settings, planned = spec["baseline"], job.spec["baseline"]
    attempt = job.attempts + 1
    ran = Path(planned["path"]).name + (f" for {Path(planned['substituted_for']).name}" if planned["substituted_for"] else "")
    progress(f"{what}: running {ran}" + (f" (attempt {attempt})" if attempt > 1 else ""))
    try:
        doc = bench.run(_request(JobSpec.from_dict(job.spec), run_id, attempt, campaign_id, planned, settings))
    except EdgeperfError as exc:  # the user's to fix: the same job fails the same way again
        _fail(store, run_id, str(exc), False, int(spec["retries"]), attempt)
        progress(f"{what}: failed: {exc}")
        return
    except Exception as exc:  # ORT's own errors (a TensorRT build or a CUDA allocation that failed), bugs
        log.exception("baseline job %s failed", job.key)
        first_line = (str(exc).strip().splitlines() or [""])[0]
        reason = f"{type(exc).__name__}: {first_line}"
        requeued = _fail(store, run_id, reason, True, int(spec["retries"]), attempt)
        progress(f"{what}: failed: {reason}" + ("; retrying" if requeued else ""))
        return
    doc["job"] = {"campaign": campaign_id, "key": job.key, "attempt": attempt}
    doc["baseline"] = _block(settings, planned)
    used = doc["runtime"].get("details", {}).get("providers") or []
    if used and used[0] != settings["providers"][0]:  # onnxruntime's Python API falls back when an EP fails to load
        doc["baseline"]["notes"].append(f"asked for {settings['providers'][0]} first, but ONNX Runtime ran {', '.join(used)}")
    doc = json.loads(result.dumps(doc))  # what a device sends: plain JSON, NaN as null
    problems = result.check(doc)
    if problems:  # the engine broke its own contract: a bug, but one job's
        _fail(store, run_id, f"result lacks {', '.join(problems[:5])}", False, 0, attempt)
        progress(f"{what}: failed: result lacks {', '.join(problems[:5])}")
        return
    store.add_result(doc, settings["device_id"])
    progress(f"{what}: {_summary(doc)}")


def _request(spec: JobSpec, run_id: str, attempt: int, campaign_id: str, planned: dict[str, Any],
             settings: dict[str, Any]) -> bench.BenchRequest:
    """The agent's request for this job: its protocol message, with the baseline's model, providers and power."""
    path = Path(planned["path"])
    artifact = {"url": path.as_uri(), "sha256": planned["sha256"], "size": planned["size_bytes"], "name": path.name}
    message = job_message(spec, run_id, attempt, campaign_id, artifact)
    message["runtime"] = "onnxruntime"
    message["options"]["providers"] = list(settings["providers"])
    message["options"]["provider_options"] = settings["provider_options"]
    cache = settings["provider_options"].get(TENSORRT, {}).get("trt_engine_cache_path")
    if cache:
        Path(cache).mkdir(parents=True, exist_ok=True)
    req = request_from_job(message, path, bench.default_log_root(), settings["device_id"])
    return replace(req, power=PowerPlan(req.power.spec, idle_s=float(settings["idle_s"]))) if req.power else req


def _fail(store: Store, run_id: str, reason: str, retryable: bool, retries: int, attempt: int) -> bool:
    """Close a failed attempt; re-queue it when retrying can help and attempts are left. True if re-queued."""
    requeue = retryable and attempt < 1 + retries
    store.end_attempt(run_id, "failed", reason, requeue)
    return requeue


def _block(settings: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
    """The result's ``baseline`` block: what kind of baseline, on what, and what ran in whose place."""
    block: dict[str, Any] = {"kind": settings["kind"], "providers": settings["providers"]}
    if settings["reason"]:
        block["reason"] = settings["reason"]
    if settings["kind"] == "gpu":
        block |= {"gpus": settings["gpus"], "nvml_index": settings["nvml_index"]}
    if planned["substituted_for"]:
        block |= {"substituted_for": planned["substituted_for"], "substituted_by": planned["substituted_by"]}
    block |= {"of_campaign": settings["of"], "in_process": True, "power": settings["power"],
              "power_note": settings["power_note"], "notes": [*settings["notes"], *planned["notes"]]}
    return block


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _summary(doc: dict[str, Any]) -> str:
    """One line per finished job for the progress view."""
    k = doc["kpis"]
    if doc["mode"] == "accuracy" and k.get("accuracy"):
        text = f"top-1 {_fmt(k['accuracy'].get('top1'), '.4f')} (n={k['accuracy'].get('n')})"
    else:
        text = f"p90 {_fmt(k['latency_ms'].get('p90'), '.3f')} ms, {_fmt(k.get('throughput_sps'), '.1f')} samples/s"
    energy = k.get("energy")
    if energy and energy.get("energy_per_inference_mj") is not None:
        text += (f", {energy['energy_per_inference_mj']:.3f} mJ/inference "
                 f"({'measured' if energy['measured'] else 'estimated'}, {energy['source']})")
    return text + (", VALID" if doc["valid"] else f", INVALID ({'; '.join(doc['invalid_reasons'])})")
