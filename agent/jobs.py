"""A fleet job (protocol message) as a benchmark request, checked field by field.

Every value a job carries is validated and converted here; nothing from a job ever reaches a
shell or a file path except the cached, hash-verified artifact. A job the agent cannot run is
refused with the reason, before anything is timed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.bench import BenchRequest
from agent.energy import PowerPlan
from agent.errors import SettingsError
from agent.protocol import ProtocolError, check_job
from agent.runtimes.base import RuntimeOptions
from agent.scenarios.settings import for_profile, parse_mode, parse_scenario, with_overrides

OVERRIDES = {
    "min_duration_s": ("min_duration_ms", lambda v: int(float(v) * 1000)),
    "max_duration_s": ("max_duration_ms", lambda v: int(float(v) * 1000)),
    "min_queries": ("min_query_count", int),
    "max_queries": ("max_query_count", int),
    "target_qps": ("server_target_qps", float),
    "target_latency_ms": ("server_target_latency_ms", float),
    "batch_size": ("batch_size", int),
}


def _options(raw: dict[str, Any], default_threads: int | None) -> RuntimeOptions:
    threads = raw.get("threads", default_threads)
    providers = raw.get("providers") or ()
    shapes = raw.get("shapes") or {}
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)):
        raise SettingsError(f"job option threads={threads!r} is not an integer")
    if not all(isinstance(p, str) for p in providers):
        raise SettingsError("job option providers must be a list of names")
    try:
        shapes = {str(k): tuple(int(d) for d in v) for k, v in shapes.items()}
    except (TypeError, ValueError, AttributeError):
        raise SettingsError("job option shapes must map input names to lists of integers") from None
    return RuntimeOptions(
        threads=threads,
        providers=tuple(providers),
        provider_options={str(k): {str(a): str(b) for a, b in v.items()} for k, v in (raw.get("provider_options") or {}).items()},
        optimization_level=str(raw.get("optimization") or "all"),
        xnnpack=bool(raw.get("xnnpack", True)),
        compute_units=str(raw.get("compute_units") or "all"),
        shapes=shapes,
    )


def request_from_job(
    job: dict[str, Any], model_path: Path, log_dir: Path, device_id: str, default_threads: int | None = None
) -> BenchRequest:
    """The ``BenchRequest`` a job asks for, running the cached artifact at ``model_path``."""
    try:
        check_job(job)
    except ProtocolError as exc:
        raise SettingsError(f"malformed job: {exc}") from None
    scenario, mode = parse_scenario(job["scenario"]), parse_mode(job["mode"])
    overrides = {}
    for key, value in (job.get("overrides") or {}).items():
        if key not in OVERRIDES:
            raise SettingsError(f"unknown job override {key!r}; known: {', '.join(OVERRIDES)}")
        name, convert = OVERRIDES[key]
        try:
            overrides[name] = convert(value)
        except (TypeError, ValueError):
            raise SettingsError(f"job override {key}={value!r} is not a number") from None
    settings = with_overrides(for_profile(job["profile"], scenario, mode), **overrides)
    return BenchRequest(
        model=str(model_path),
        model_name=str(job.get("model_name") or job["artifact"]["name"]),
        settings=settings,
        runtime=job.get("runtime"),
        options=_options(job.get("options") or {}, default_threads),
        dataset=job["dataset"],
        engine=str(job.get("engine") or "auto"),
        log_dir=log_dir,
        device_id=device_id,
        power=PowerPlan(str(job["power"])) if job.get("power") else None,
        run_id=job["run_id"],
    )
