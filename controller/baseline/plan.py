"""Planning a baseline: the providers, the device label, the power source and the ONNX file of each
variant, every check that can fail done before anything is stored or run (``controller.baseline``
says what runs and how it is labelled)."""


from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent import model_file, zoo
from agent.energy_meter import PowerPlan, auto_order
from agent.errors import EXIT_USAGE, EdgeperfError, ModelError, RuntimeMissing, SettingsError
from controller.fleet.campaign import Campaign, JobSpec, Variant, device_jobs
from controller.fleet.scheduler import artifact_path
from devices import power as power_sources
from devices import probe, profiles
from devices.power import nvml
from devices.power.base import PowerSourceError

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


def silent(message: str) -> None:
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


def ort_module() -> Any:
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
    """``host-gpu:<host>`` / ``host-cpu:<host>`` / ``host:<host>``, fit for a device id (the contract's alphabet, 64 chars)."""
    prefix = {"gpu": "host-gpu", "host-cpu": "host-cpu"}.get(kind, "host") + ":"
    host = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in (hostname or socket.gethostname()))
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


def probe_open(spec: str) -> None:
    """Open a power source and close it again: it works here, now (or raises its one-line error)."""
    power_sources.open_source(spec).close()


def choose_power(spec: str | None, kind: str, facts: dict[str, Any], nvml_index: int | None) -> tuple[str | None, str]:
    """(the spec every job measures with, what it measures) for the ``power`` argument."""
    if spec is None:
        return None, "no energy measurement (power=None)"
    if spec.strip().lower() != "auto":
        try:
            probe_open(spec)
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
                probe_open(candidate)
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


def job_notes(variant: Variant, planned: PlannedModel, providers: Sequence[str]) -> list[str]:
    """What differs from the variant as written: the file that runs, and providers meant for the edge device."""
    notes = [planned.note] if planned.note else []
    if variant.options.providers and tuple(variant.options.providers) != tuple(providers):
        notes.append(f"the variant's providers ({', '.join(variant.options.providers)}) are replaced by the baseline's "
                     f"({', '.join(providers)})")
    if variant.options.provider_options:
        notes.append(f"the variant's provider options for {', '.join(variant.options.provider_options)} are not used; "
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
    ort = ort_module()
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

