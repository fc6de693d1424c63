"""A fleet job (a ``contract.Job``, already checked field by field) as a benchmark request.

Nothing from a job ever reaches a shell or a file path except the cached, hash-verified artifact.
The job's runtime options are the runtime's own ``RuntimeOptions``; its run-length overrides
become the run's settings here, in the one place that maps them. A job the agent cannot run is
refused with the reason, before anything is timed.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from agent.bench import BenchRequest
from agent.contract import Job, RunLength, check_server_schedule
from agent.energy_meter import PowerPlan
from agent.errors import SettingsError
from agent.scenarios.settings import RunSettings, Scenario, for_profile, parse_mode, parse_scenario, with_overrides


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)  # 1.234 s is 1234 ms, not int(1233.99...)


def settings_for(profile: str, scenario: str, mode: str, run: RunLength) -> RunSettings:
    """A profile's settings for the scenario and mode, with the job's run-length overrides applied.

    A Server rate is checked here against the run's minimum duration, which may come from the
    profile: the arrival schedule both engines build holds rate × duration queries in memory."""
    settings = with_overrides(
        for_profile(profile, parse_scenario(scenario), parse_mode(mode)),
        min_duration_ms=_ms(run.min_duration_s), max_duration_ms=_ms(run.max_duration_s),
        min_query_count=run.min_queries, max_query_count=run.max_queries, server_target_qps=run.target_qps,
        server_target_latency_ms=run.target_latency_ms, batch_size=run.batch_size,
    )
    if settings.scenario == Scenario.SERVER and settings.server_target_qps:
        try:
            check_server_schedule(settings.server_target_qps, settings.min_duration_ms / 1000, settings.max_query_count)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
    return settings


def request_from_job(
    job: Job, model_path: Path, log_dir: Path, device_id: str, default_threads: int | None = None
) -> BenchRequest:
    """The ``BenchRequest`` a job asks for, running the cached artifact at ``model_path``."""
    options = job.options
    if options.threads is None and default_threads is not None:
        options = msgspec.structs.replace(options, threads=default_threads)
    power = None
    if job.power:
        power = PowerPlan(job.power) if job.power_idle_s is None else PowerPlan(job.power, idle_s=job.power_idle_s)
    return BenchRequest(
        model=str(model_path),
        model_name=job.model_name or job.artifact.name,
        settings=settings_for(job.profile, job.scenario, job.mode, job.overrides),
        runtime=job.runtime,
        options=options,
        dataset=job.dataset,
        preprocess=job.preprocess,
        postprocess=msgspec.to_builtins(job.postprocess) if job.postprocess else None,
        corruptions=tuple(job.corruptions),
        groups=job.groups or None,  # checked against the dataset's sample count once it is loaded (agent.groups)
        engine=job.engine,
        log_dir=log_dir,
        device_id=device_id,
        power=power,
        run_id=job.run_id,
    )
