"""A campaign in MLflow: one experiment per campaign name, one MLflow run per result.

Teams that already track training in MLflow want benchmark numbers next to their models, with
MLflow's run comparison, charts and search. Each result becomes a run named
``<device>/<model>/<scenario>/<mode>`` carrying:

- tags: ``edgeperf.run_id`` (the key that makes the export idempotent), ``edgeperf.campaign_id``,
  ``edgeperf.campaign_name``, ``edgeperf.device_id``, ``edgeperf.model``, ``edgeperf.scenario``,
  ``edgeperf.mode``, ``edgeperf.valid`` (``true``/``false``), ``edgeperf.engine``,
  ``edgeperf.profile``, ``edgeperf.job_key``, ``edgeperf.baseline_kind`` (datacenter baseline
  runs only), ``edgeperf.invalid_reasons`` (INVALID runs only), and a run description;
- params: the run's conditions, named by their dotted paths in the result: ``settings.*`` (the
  effective settings; ``settings.requested.*`` only where the request differed, e.g. the
  calibrated expected latency; ``settings.derived.*``), ``runtime.*``, ``model.*`` (name,
  sha256, precision, format, size, parameters, input and output specs), ``dataset.*``,
  ``device.*`` (the id and every probed fact: board, cpu_model, os_release, kernel, python,
  memory_total_mb, cpu_governor, ``device.gpus.0.name``, ``device.gpus.0.driver_version``, …),
  ``energy.*`` descriptors (source, measured, rail, method, grid intensity), ``baseline.*``;
- metrics: every numeric KPI of ``agent.kpi.KPIS`` under its dictionary key, unchanged
  (``latency_ms.p90``, ``energy.energy_per_inference_mj``, ``energy.mlperf.mj_per_query``, …;
  MLflow allows dots in metric names), the Wilson interval as ``accuracy.ci95.lo`` /
  ``accuracy.ci95.hi``; KPIs that are None (no energy block, no accuracy) are left out, not
  logged as 0. Non-numeric KPIs (``energy.source``, ``thermals.throttled``) are params;
- artifacts: ``edgeperf_result.json`` (the document itself, the full record: histogram,
  confusion matrix, power trace) and ``mlperf_logs/``: LoadGen's own files where its log
  folder is readable here, else its summary as carried inline in the result; for native-engine
  runs, the summary and detail log generated in LoadGen's format (``controller.exports.mlperf``),
  which say in them that edgeperf's native engine produced the run.

Names: MLflow accepts alphanumerics and ``_ - . / :`` and space in param and metric keys, but a
``/`` makes a key a file path in the file store and ``:`` is refused on Windows, so every
character outside ``A-Za-z0-9_.-`` becomes ``_`` and keys are cut at MLflow's 250 characters.
Param values are strings (JSON for numbers, booleans and lists) of at most 6,000 characters; a
longer one is cut and ends in ``...[truncated]``, never rejected, since MLflow refuses a whole
batch for one long value.

Idempotency: runs are found by their ``edgeperf.run_id`` tag among the experiment's active runs.
A finished run is left as it is (a stored result never changes, and MLflow params cannot be
rewritten); a run left RUNNING by an interrupted export is deleted and logged again, so
exporting a campaign twice, or after adding results to it, adds only the missing runs.
Campaigns of the same name (the same campaign file run again) share an experiment, told apart
by ``edgeperf.campaign_id``, so MLflow can chart them over time.

``mlflow`` (``mlflow-skinny`` is enough for ``file:`` and ``http(s):`` tracking URIs) is imported
only here, when an export runs.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from agent import __version__, contract
from agent.contract import Result
from agent.kpi import KPIS
from agent.result import dumps
from controller.analysis.scorecard import kpi_value
from controller.reports.exports import ExportError, mlperf

MAX_KEY = 250  # mlflow.utils.validation.MAX_ENTITY_KEY_LENGTH
MAX_PARAM_VALUE = 6000  # MAX_PARAM_VAL_LENGTH
MAX_TAG_VALUE = 8000  # MAX_TAG_VAL_LENGTH
MAX_EXPERIMENT_NAME = 500  # MAX_EXPERIMENT_NAME_LENGTH
TRUNCATED = "...[truncated]"
RUN_ID_TAG = "edgeperf.run_id"
RESULT_ARTIFACT = "edgeperf_result.json"
LOGS_ARTIFACT_DIR = "mlperf_logs"
MISSING = "MLflow export needs mlflow: pip install 'edgeperf[mlflow]'"
REACH_TIMEOUT_S = 5.0  # a tracking server that has not accepted a connection by then is reported unreachable


class MlflowMissing(ExportError):
    """mlflow is not installed; the message names the extra that brings it."""


@dataclass(frozen=True)
class ExportedRun:
    """One result's MLflow run, and whether this export created it or found it there."""

    edgeperf_run_id: str
    mlflow_run_id: str
    created: bool


def default_experiment(campaign: dict[str, Any]) -> str:
    """``edgeperf/<campaign name>``: the experiment a campaign goes to unless the user names one."""
    return f"edgeperf/{campaign.get('name') or campaign.get('id') or 'campaign'}"


def export_campaign(results: list[Result], documents: list[dict[str, Any]], campaign: dict[str, Any], tracking_uri: str,
                    experiment: str | None = None) -> list[str]:
    """Export ``results`` (one campaign's) to MLflow at ``tracking_uri``; the MLflow run id of each result.

    ``documents`` are the same results as stored (``Store.documents``, in the same order): each
    is attached whole, extra fields included. Ids are returned for every result, in order,
    whether this call created the run or found it from an earlier export (``export_runs`` says
    which). For a ``file:`` URI (or a plain path) ``MLFLOW_ALLOW_FILE_STORE=true`` is set while
    the export runs, because MLflow 3.17 put the file store in maintenance mode and refuses it
    otherwise; the previous value is restored.
    """
    return [run.mlflow_run_id for run in export_runs(results, documents, campaign, tracking_uri, experiment)]


def export_runs(results: list[Result], documents: list[dict[str, Any]], campaign: dict[str, Any], tracking_uri: str,
                experiment: str | None = None) -> list[ExportedRun]:
    """``export_campaign`` with, for each result, whether its run was created now (for the CLI's count)."""
    if len(results) != len(documents):
        raise ValueError(f"{len(results)} results but {len(documents)} stored documents: read both in one Store.snapshot()")
    mlflow = _mlflow()
    from mlflow.exceptions import MlflowException

    name = (experiment or default_experiment(campaign)).strip()
    if not name or len(name) > MAX_EXPERIMENT_NAME:
        raise ExportError(f"MLflow experiment names are 1 to {MAX_EXPERIMENT_NAME} characters; got {len(name)}")
    _check_reachable(tracking_uri)
    try:
        with _file_store_allowed(tracking_uri):
            client = mlflow.MlflowClient(tracking_uri=tracking_uri)
            experiment_id = _experiment(client, name, campaign)
            existing = _existing_runs(client, experiment_id)
            exported: list[ExportedRun] = []
            for run, document in zip(results, documents, strict=True):
                found = existing.get(run.run_id)
                if found is not None and found[1] == "FINISHED":
                    exported.append(ExportedRun(run.run_id, found[0], created=False))
                    continue
                if found is not None:  # left RUNNING by an interrupted export: log it again, whole
                    client.delete_run(found[0])
                mlflow_run_id = _log_run(client, experiment_id, run, document, campaign)
                existing[run.run_id] = (mlflow_run_id, "FINISHED")
                exported.append(ExportedRun(run.run_id, mlflow_run_id, created=True))
            return exported
    except MlflowException as exc:
        raise ExportError(f"MLflow at {tracking_uri}: {exc.message}") from None


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise MlflowMissing(MISSING) from None
    return mlflow


def _check_reachable(uri: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """An http(s) tracking server that does not answer fails in seconds: MLflow's own client retries a
    refused connection with backoff for about four minutes (248 s measured) before it says anything."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        socket.create_connection((parsed.hostname, port), timeout=timeout_s).close()
    except (OSError, ValueError) as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (getattr(exc, "strerror", None) or str(exc))
        raise ExportError(f"MLflow at {uri} is unreachable ({reason}); start the tracking server or fix --tracking-uri") from None


def _is_file_store(uri: str) -> bool:
    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or (os.name == "nt" and len(scheme) == 1)  # C:\mlruns is a path


@contextmanager
def _file_store_allowed(uri: str) -> Iterator[None]:
    """``MLFLOW_ALLOW_FILE_STORE=true`` for a file-store URI while the block runs, then the old value back."""
    if not _is_file_store(uri):
        yield
        return
    before = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = before


def _experiment(client: Any, name: str, campaign: dict[str, Any]) -> str:
    """The experiment's id, created with the campaign's name and source the first time."""
    found = client.get_experiment_by_name(name)
    if found is None:
        kind, source = campaign.get("kind", "fleet"), campaign.get("source") or "n/a"
        note = f"edgeperf campaign {campaign.get('name')} ({kind}), from {source}"
        return client.create_experiment(name, tags={
            "edgeperf.campaign_name": _cut(str(campaign.get("name")), MAX_TAG_VALUE), "mlflow.note.content": note})
    if found.lifecycle_stage != "active":
        raise ExportError(f"MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore --experiment-id "
                          f"{found.experiment_id}) or pass another experiment name")
    return found.experiment_id


def _existing_runs(client: Any, experiment_id: str) -> dict[str, tuple[str, str]]:
    """edgeperf run id → (MLflow run id, status) of the experiment's active runs; a finished copy wins."""
    runs: dict[str, tuple[str, str]] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        for run in page:
            key = run.data.tags.get(RUN_ID_TAG)
            if key and (key not in runs or run.info.status == "FINISHED"):
                runs[key] = (run.info.run_id, run.info.status)
        token = page.token
        if not token:
            return runs


# ---- what a run carries ------------------------------------------------------------------------
def clean_key(key: str) -> str:
    """An MLflow param/metric key: characters outside ``A-Za-z0-9_.-`` become ``_``, at most 250 of them."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", key)[:MAX_KEY]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return _cut(text, MAX_PARAM_VALUE)


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    """Dicts and lists of dicts become dotted keys (``device.gpus.0.name``); other values one param; None none."""
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            _flatten(f"{prefix}.{i}", v, out)
    elif value is not None:
        out.setdefault(clean_key(prefix), _param_text(value))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# a record of every sample, not a condition: the result JSON artifact carries it
PER_SAMPLE = frozenset({"accuracy.correct_bits"})


def run_params(result: Result) -> dict[str, str]:
    """The conditions of a run, flattened to MLflow params (see the module docstring for the names)."""
    out: dict[str, str] = {}
    settings = result.settings
    effective = contract.to_builtins(settings.effective)
    run = {"scenario": result.scenario, "mode": result.mode, "engine": result.engine, "profile": result.profile,
           "agent_version": result.agent_version, "ended_by": result.ended_by}
    for key, value in run.items():
        _flatten(key, value, out)
    _flatten("settings", effective, out)
    _flatten("settings.requested", {k: v for k, v in settings.requested.items() if effective.get(k) != v}, out)
    _flatten("settings.derived", settings.derived, out)
    _flatten("runtime", contract.to_builtins(result.runtime), out)
    model = result.model
    _flatten("model", contract.to_builtins({"name": model.name, "sha256": model.sha256, "precision": model.precision,
                                            "format": model.format, "size_bytes": model.size_bytes,
                                            "parameters": model.parameters, "inputs": model.inputs,
                                            "outputs": model.outputs}), out)
    _flatten("dataset", contract.to_builtins(result.dataset), out)
    _flatten("device", {"id": result.device.id} | result.device.facts, out)
    _flatten("baseline", result.baseline, out)
    if (energy := result.kpis.energy) is not None:
        _flatten("energy", contract.to_builtins({
            "source": energy.source, "measured": energy.measured, "rail": energy.rail,
            "nominal_rate_hz": energy.nominal_rate_hz, "method": energy.method,
            "grid_intensity_g_per_kwh": energy.grid_intensity_g_per_kwh, "warnings": energy.warnings}), out)
    for kpi in KPIS:  # descriptive KPIs (a source name, a throttled flag) are conditions, not measurements
        value = kpi_value(result, kpi.key)
        if isinstance(value, (str, bool)) and kpi.key not in PER_SAMPLE:
            _flatten(kpi.key, value, out)
    return out


def run_metrics(result: Result) -> dict[str, float]:
    """Every numeric KPI under its KPI-dictionary key (``accuracy.ci95`` as ``.lo`` / ``.hi``); None and NaN left out."""
    out: dict[str, float] = {}
    for kpi in KPIS:
        value = kpi_value(result, kpi.key)
        if kpi.key == "accuracy.ci95" and isinstance(value, (list, tuple)) and len(value) == 2:
            for end, bound in zip(("lo", "hi"), value, strict=True):
                if _finite(bound):
                    out[clean_key(f"{kpi.key}.{end}")] = float(bound)
        elif _finite(value):
            out[clean_key(kpi.key)] = float(value)
    return out


def run_name(result: Result) -> str:
    return f"{result.device.id}/{result.model.name}/{result.scenario}/{result.mode}"


def run_tags(result: Result, campaign: dict[str, Any]) -> dict[str, str]:
    """The tags runs are searched and filtered by; the first is the idempotency key."""
    job, baseline = result.job, result.baseline or {}
    tags = {
        RUN_ID_TAG: result.run_id,
        "edgeperf.campaign_id": campaign.get("id"),
        "edgeperf.campaign_name": campaign.get("name"),
        "edgeperf.device_id": result.device.id,
        "edgeperf.model": result.model.name,
        "edgeperf.scenario": result.scenario,
        "edgeperf.mode": result.mode,
        "edgeperf.valid": "true" if result.valid else "false",
        "edgeperf.engine": result.engine,
        "edgeperf.profile": result.profile,
        "edgeperf.job_key": job.key if job else None,
        "edgeperf.baseline_kind": baseline.get("kind"),
        "edgeperf.invalid_reasons": "; ".join(result.invalid_reasons) or None,
        "edgeperf.exporter": f"edgeperf {__version__}",
    }
    verdict = "VALID" if result.valid else "INVALID: " + "; ".join(result.invalid_reasons)
    tags["mlflow.note.content"] = (f"edgeperf result `{result.run_id}`: {result.model.name} on {result.device.id}, "
                                   f"{result.scenario} {result.mode}, {result.engine} engine, {result.profile} profile. "
                                   f"{verdict}")
    return {k: _cut(str(v), MAX_TAG_VALUE) for k, v in tags.items() if v not in (None, "")}


def _times_ms(result: Result) -> tuple[int, int]:
    """The measured window in epoch ms (start, end); the result's creation time where there is none."""
    window = result.window
    if window is not None and window.begin_unix_ns > 0 and window.end_unix_ns >= window.begin_unix_ns:
        return window.begin_unix_ns // 1_000_000, window.end_unix_ns // 1_000_000
    created = int(datetime.fromisoformat(result.created_at).timestamp() * 1000)
    return created, created


def _log_files(result: Result, tmp: Path) -> list[Path]:
    """The MLPerf log files to attach: LoadGen's own, else its inline summary, else generated (native engine)."""
    if files := mlperf.loadgen_files(result):
        return files
    tmp.mkdir(parents=True, exist_ok=True)
    inline = mlperf.inline_summary(result)
    if inline:
        (tmp / mlperf.SUMMARY).write_text(inline, encoding="utf-8")
        return [tmp / mlperf.SUMMARY]
    if result.mode != "performance":
        return []
    (tmp / mlperf.SUMMARY).write_text(mlperf.summary_log(result), encoding="utf-8")
    (tmp / mlperf.DETAIL).write_text(mlperf.detail_log(result, mlperf.native_note(result)), encoding="utf-8")
    return [tmp / mlperf.SUMMARY, tmp / mlperf.DETAIL]


def _log_run(client: Any, experiment_id: str, result: Result, document: dict[str, Any], campaign: dict[str, Any]) -> str:
    """Create the run, log everything, and only then mark it FINISHED (what makes a re-export skip it)."""
    from mlflow.entities import Metric, Param

    start_ms, end_ms = _times_ms(result)
    run = client.create_run(experiment_id, start_time=start_ms, tags=run_tags(result, campaign), run_name=run_name(result))
    run_id = run.info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric(key, value, end_ms, 0) for key, value in run_metrics(result).items()],
        params=[Param(key, value) for key, value in run_params(result).items()],
    )
    with tempfile.TemporaryDirectory(prefix="edgeperf-mlflow-") as tmp:
        path = Path(tmp) / RESULT_ARTIFACT
        path.write_text(dumps(document), encoding="utf-8")
        client.log_artifact(run_id, str(path))
        for file in _log_files(result, Path(tmp) / LOGS_ARTIFACT_DIR):
            client.log_artifact(run_id, str(file), LOGS_ARTIFACT_DIR)
    client.set_terminated(run_id, "FINISHED", end_time=end_ms)
    return run_id
