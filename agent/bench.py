"""One benchmark run end to end: model → session → samples → scenario → KPIs → result document.

This is the code both the device agent and the controller's datacenter baseline call, so edge
and datacenter numbers come from the same measurement. Failures the user can fix surface as
``EdgeperfError`` before anything is timed: the model, runtime, engine and dataset are all
resolved and checked first.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from agent import (
    __version__,
    capabilities,
    contract,
    corruptions,
    datasets,
    groups,
    kpi,
    model_file,
    model_provenance,
    postprocess,
    reproduce,
    robustness,
    runtimes,
    scenarios,
    scoring,
    threads,
    zoo,
)
from agent.contract import RuntimeOptions
from agent.energy_meter import EnergyMeter, PowerPlan, open_meter
from agent.errors import DatasetError, SettingsError
from agent.resources import CpuWindow, peak_rss_mb, rss_mb
from agent.runtimes.base import SessionInfo
from agent.scenarios import server_search
from agent.scenarios.settings import Mode, RunSettings, Scenario
from agent.scenarios.sut import ModelSut
from devices import probe, thermal

OFFLINE_QPS_SLACK = 1.5  # Offline's one query is sized from this many times the fastest warm-up rate
Progress = Callable[[str, dict[str, Any]], None]  # (phase, details), e.g. ("running", {"expected_s": 10})


def _silent(phase: str, details: dict[str, Any]) -> None:
    """Default progress sink."""


@dataclass(frozen=True)
class BenchRequest:
    """What to run; everything a CLI flag or a fleet job can set."""

    model: str
    settings: RunSettings = field(default_factory=RunSettings)
    model_name: str | None = None  # name in the result when ``model`` is a cached artifact path
    runtime: str | None = None
    options: RuntimeOptions = field(default_factory=RuntimeOptions)
    dataset: str = "synthetic"
    preprocess: str | None = None  # a dataset by path's preprocessing id (default: the zoo manifest's, else the kind's)
    inputs_cache: Path | None = None  # keep by-path datasets preprocessed here (agent.datasets.inputs_cache)
    postprocess: dict[str, Any] | None = None  # how outputs are read (agent.postprocess); default: the zoo manifest's
    corruptions: tuple[str, ...] = ()  # --mode robustness: NAME or NAME:1,3,5 entries (agent.corruptions.plan); () all
    groups: tuple[str, ...] | None = None  # fairness: a job's group per dataset sample ("" for none; agent.groups)
    groups_file: Path | None = None  # fairness: --groups FILE, read against the dataset once it is loaded
    engine: str = "auto"
    warmup_runs: int = 20
    device_id: str | None = None
    log_dir: Path | None = None
    power: PowerPlan | None = None  # None: no energy measurement
    cooldown_below_c: float | None = None  # wait until the hottest zone is this cool before running
    cooldown_timeout_s: float = 300.0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def default_log_root() -> Path:
    """Where LoadGen logs are kept: $XDG_DATA_HOME/edgeperf/runs (~/.local/share/edgeperf/runs)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "edgeperf" / "runs"


def _calibrate(sut: ModelSut, settings: RunSettings,
               warmup_runs: int) -> tuple[RunSettings, dict[str, Any], server_search.OperatingPoint | None]:
    """Warm up and size the run from what the model does here, as LoadGen's expected latency / QPS.

    LoadGen pre-generates queries from the expected latency (SingleStream/MultiStream: 2× the
    minimum duration's worth) or QPS (Offline: 1.1× in one query); a steady state faster than the
    guess runs out of queries before the minimum duration and the run is INVALID. A warm-up slowed
    by a busy machine must not do that, so the guesses come from the fastest warm-up sample.
    Server also times a SingleStream pass after the warm-up: its p99 sets the latency bound where
    none is given, and its median the search's first rate (``server_search``).
    """
    group = sut.batch_size if settings.scenario == Scenario.OFFLINE else 1
    timings = []
    for i in range(max(warmup_runs, 1)):
        chunk = [(i * group + k) % sut.sample_count for k in range(group)]
        t0 = time.perf_counter_ns()
        sut.process(chunk)
        timings.append((time.perf_counter_ns() - t0) / group)
    median_ns = max(int(np.median(timings)), 1)
    fastest_ns = max(int(min(timings)), 1)
    derived: dict[str, Any] = {"warmup_runs": len(timings), "warmup_median_latency_ms": median_ns / 1e6,
                               "warmup_min_latency_ms": fastest_ns / 1e6}
    out = replace(settings, expected_latency_ns=fastest_ns)
    if settings.scenario == Scenario.OFFLINE and not settings.offline_expected_qps:
        # Offline runs every sample of its query, so extra samples cost run time; the slack covers a
        # steady state up to 1.65× faster than the fastest warm-up sample.
        out = replace(out, offline_expected_qps=OFFLINE_QPS_SLACK * 1e9 / fastest_ns)
    if settings.scenario != Scenario.SERVER:
        return out, derived, None
    out, point = server_search.operating_point(out, server_search.single_stream(sut))
    if settings.server_target_qps or settings.mode.scored:
        out = server_search.unsearched_rate(out, point)
    return out, derived, point


def _model_block(model: model_file.ModelFile, info: SessionInfo) -> dict[str, Any]:
    """The result's ``model`` block. ``provenance`` is the record ``edgeperf quantize`` put in the file's
    own metadata; one that breaks the contract is left out and ``provenance_warning`` says so (the
    printed result shows it as a warning)."""
    record, warning = model_provenance.from_metadata(info.metadata)
    return {
        "name": model.name, "path": str(model.path), "sha256": model.sha256, "size_bytes": model.size_bytes,
        "format": model.format, "precision": info.precision, "parameters": info.parameters,
        "inputs": [s.to_dict() for s in info.inputs], "outputs": [s.to_dict() for s in info.outputs],
        "provenance": msgspec.to_builtins(record) if record is not None else None,
    } | ({"provenance_warning": warning} if warning else {})


def run(req: BenchRequest, progress: Progress = _silent) -> dict[str, Any]:
    """Run ``req`` and return its result document; ``progress`` hears each phase as it starts."""
    model = model_file.resolve(req.model)
    if req.model_name:
        model = replace(model, name=req.model_name)
    runtime = runtimes.runtime_for(model, req.runtime)
    engine = scenarios.choose_engine(req.engine)
    threads.check_threads(req.options.threads)
    corruption_plan = _corruption_plan(req)  # a bad --corruptions or an uncorruptible dataset fails before anything loads
    if req.cooldown_below_c is not None and thermal.hottest() is None:
        raise SettingsError(f"--cooldown-below {req.cooldown_below_c:g}: this device reports no temperatures (no "
                            "/sys/class/thermal zone), so there is nothing to wait for; drop --cooldown-below")
    facts = probe.collect() | {"installed": capabilities.installed()}
    meter = open_meter(req.power, facts)  # before anything is loaded: a named meter that is absent fails fast
    try:
        return _measure(req, progress, model, runtime, engine, facts, meter, corruption_plan)
    except BaseException:
        if meter:
            meter.abort()
        raise


def _measure(req: BenchRequest, progress: Progress, model: model_file.ModelFile, runtime: str, engine: str,
             facts: dict[str, Any], meter: EnergyMeter | None,
             corruption_plan: list[tuple[str, int]]) -> dict[str, Any]:
    settings = req.settings
    progress("loading", {"model": model.name, "runtime": runtime})
    runtimes.preload(runtime)  # imports are not loading: outside load time and model RSS
    rss_before = rss_mb()
    options = req.options
    if options.threads is None and runtime != "coreml":  # "default" is one number for every runtime, and recorded
        options = msgspec.structs.replace(options, threads=threads.default_threads())
    session = runtimes.open_session(model, runtime, options)
    load_ms = session.info.load_ms  # the runtime's own session creation, timed by the session
    model_rss = rss_mb() - rss_before

    progress("preparing", {"dataset": req.dataset})
    preprocess = datasets.preprocess_for(req.dataset, req.model, req.preprocess)
    samples = datasets.load(req.dataset, session.info.inputs, req.options.shapes, values=req.options.inputs,
                            preprocess=preprocess, inputs_cache=req.inputs_cache)
    grouping = groups.resolve(req.groups, req.groups_file, samples, settings.mode.scored)  # before anything is timed
    if settings.mode.scored and samples.labels is None:
        raise DatasetError(f"accuracy mode needs a labelled dataset and {req.dataset} has no labels; use fashion-mnist, "
                           "a dataset by path (imagenet:DIR, coco:DIR, … docs/datasets.md) or a folder of .npy files with labels")
    reading = req.postprocess or _zoo_postprocess(req.model)
    if settings.mode.scored:
        postprocess.check(reading)
    if corruption_plan:
        robustness.check(samples, datasets.family_of(req.dataset))
    sut = ModelSut(session, samples, settings.batch_size)

    t0 = time.perf_counter_ns()
    sut.process([0])
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    effective, derived, server = _calibrate(sut, settings, req.warmup_runs)
    engine, engine_rule = scenarios.fit_to_memory(req.engine, engine, effective)

    log_dir = (req.log_dir or default_log_root()) / req.run_id
    search = server is not None and not effective.server_target_qps  # Server without a given rate
    if search:
        server_search.find(engine, sut, effective, log_dir, server, progress)
    cooled = None
    if req.cooldown_below_c is not None:
        progress("cooling", {"target_c": req.cooldown_below_c})
        cooled = thermal.cooldown(req.cooldown_below_c, req.cooldown_timeout_s)
    if meter:
        progress("idle", {"source": meter.monitor.info.source, "seconds": req.power.idle_s})
        meter.start()
    heat = thermal.ThermalRecord()
    heat.start()
    progress("running", {"engine": engine, "min_duration_s": effective.min_duration_ms / 1e3,
                         "max_duration_s": effective.max_duration_ms / 1e3})
    cpu = CpuWindow()
    cpu.start()
    if search:
        outcome = server_search.measure(engine, sut, effective, log_dir, server)
    else:
        outcome = scenarios.run(engine, sut, effective, log_dir)
    effective = outcome.settings  # a searched Server run: the rate it ran at
    cpu.stop()
    thermals = heat.finish(cooled)
    energy = meter.finish(outcome) if meter else None

    progress("scoring", {"valid": outcome.valid})
    scores = scoring.score_all(outcome.outputs or {}, samples, session.info.outputs, reading, grouping)
    accuracy, task_accuracy = scores.accuracy, scores.task_accuracy
    kpis = kpi.kpis_of(outcome, accuracy, {
        "task_accuracy": task_accuracy,
        "fairness": scores.fairness,
        "class_balance": scores.class_balance,
        "memory": {"peak_rss_mb": None, "model_rss_mb": model_rss},  # peak: read last, below
        "model_size_mb": model.size_bytes / (1 << 20),
        "model_parameters": session.info.parameters,
        "load_time_ms": load_ms,
        "first_inference_ms": first_ms,
        "cpu": {"process_pct": cpu.process_pct, "system_pct": cpu.system_pct},
        "energy": energy,
        "thermals": thermals,
    })
    if corruption_plan:  # after the clean score: each corruption and severity, one untimed pass each

        def reload(perturb: corruptions.Perturb) -> datasets.Samples:
            return datasets.load(req.dataset, session.info.inputs, req.options.shapes, values=req.options.inputs,
                                 preprocess=preprocess, perturb=perturb)

        kpis["robustness"] = robustness.run(session, samples, outcome.outputs or {}, accuracy, corruption_plan, reload,
                                            reading, settings.batch_size, progress)
    info = session.info
    doc = {
        "schema": contract.RESULT_SCHEMA,
        "run_id": req.run_id,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "agent_version": __version__,
        "device": {"id": req.device_id or facts.get("hostname", "unknown"), "facts": facts},
        "model": _model_block(model, info),
        "runtime": {"name": info.runtime, "version": info.version, "threads": info.threads,
                    "threads_rule": "given" if req.options.threads is not None else "default: one per CPU this process may use",
                    "accelerator": info.accelerator, "details": info.details},
        "scenario": effective.scenario.value,
        "mode": effective.mode.value,
        "engine": engine,
        "profile": effective.profile,
        "dataset": {"name": samples.name, "source": samples.source, "samples": len(samples), "inputs": list(samples.inputs)}
        | (samples.origin or {}),  # a dataset by path: kind, path, limit, preprocess, inputs_cache {dir, key, hit}
        "settings": {"requested": settings.to_dict(), "effective": effective.to_dict(), "derived": derived}
        | ({"server": server.to_dict()} if server else {}),
        "valid": outcome.valid,
        "invalid_reasons": outcome.invalid_reasons,
        "checks": [c.to_dict() for c in outcome.checks],
        "ended_by": outcome.ended_by,
        "window": {"begin_unix_ns": outcome.window_unix_ns[0], "end_unix_ns": outcome.window_unix_ns[1]},
        "kpis": kpis,
        "logs": {"engine": engine, "engine_rule": engine_rule} | outcome.logs,
        "reproduce": reproduce.block(reproduce.argv(req.model, runtime, engine, req.dataset, req.warmup_runs, settings,
                                                    options, samples.inputs, _energy_flags(req),
                                                    [*datasets.reproduce_flags(samples),
                                                     *reproduce.corruption_flags(corruption_plan)],
                                                    groups=req.groups_file)),
    }
    # the high-water mark after everything the run costs: scoring, histograms and sorts, this document
    kpis["memory"]["peak_rss_mb"] = peak_rss_mb()
    return doc


def _corruption_plan(req: BenchRequest) -> list[tuple[str, int]]:
    """The (corruption, severity) pairs of a robustness run; [] for other modes. One line for corruptions
    outside robustness mode, a dataset that cannot be corrupted, or a bad entry."""
    if req.settings.mode != Mode.ROBUSTNESS:
        if req.corruptions:
            raise SettingsError(f"--corruptions applies to --mode robustness, but the mode is {req.settings.mode.value}; "
                                "add --mode robustness or drop --corruptions")
        return []
    family = datasets.family_of(req.dataset)
    if family is None:
        raise datasets.not_corruptible(req.dataset)
    return corruptions.plan(req.corruptions, family)


def _zoo_postprocess(ref: str) -> dict[str, Any] | None:
    """The zoo manifest's post-processing for a zoo model (None for the user's own file)."""
    if not ref.startswith(zoo.PREFIX):
        return None
    return zoo.resolve(ref).model.postprocess


def _energy_flags(req: BenchRequest) -> list[str]:
    """The energy and cooldown flags of ``req``, for its reproduce line."""
    out = []
    if req.power:
        out += ["--power", req.power.spec, "--idle-seconds", repr(req.power.idle_s),
                "--grid-intensity", repr(req.power.grid_g_per_kwh)]
    if req.cooldown_below_c is not None:
        out += ["--cooldown-below", repr(req.cooldown_below_c), "--cooldown-timeout", repr(req.cooldown_timeout_s)]
    return out
