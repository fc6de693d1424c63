"""A phone tool's run as a result document of the same schema as an agent's, saying what measured it.

The engine is the tool (``benchmark_model`` or ``onnxruntime_perf_test``), and a ``loadgen`` check
fails with the reason: the tool's own loop issued the queries, not LoadGen, so the run can be set
beside other SingleStream rows but is not an MLPerf result. The run is judged by the same two
minimums an agent's SingleStream run is (queries and duration): the measured runs' summed latency
is the measured time (the tool runs them back to back). The latency block holds only what the tool
reported (``agent.android.latency``); no early-stopping estimate is made from aggregate statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from agent import __version__, contract
from agent.android.latency import Latencies
from agent.model_file import ModelFile
from agent.scenarios.settings import RunSettings


@dataclass(frozen=True)
class Tool:
    """The phone's benchmark tool as it ran: its name, its file's sha256 on the phone, the version it
    reports where it reports one, and the command line."""

    name: str
    sha256: str | None
    version: str
    argv: tuple[str, ...]


def _checks(settings: RunSettings, latencies: Latencies, tool: Tool) -> list[dict[str, Any]]:
    measured_s = (latencies.latency_ms["mean"] or 0.0) * latencies.runs / 1000
    return [
        {"name": "min_queries", "ok": latencies.runs >= settings.min_query_count,
         "detail": f"{latencies.runs} runs, at least {settings.min_query_count} required"},
        {"name": "min_duration", "ok": measured_s >= settings.min_duration_ms / 1000,
         "detail": f"{measured_s:.3f} s of measured runs, at least {settings.min_duration_ms / 1000:g} s required"},
        {"name": "loadgen", "ok": False, "detail": f"measured by {tool.name}'s own loop on the phone, not LoadGen: "
                                                   f"comparable to other SingleStream rows, not an MLPerf result"},
    ]


def document(run_id: str, device_id: str, facts: dict[str, Any], model: ModelFile, precision: str, tool: Tool,
             settings: RunSettings, latencies: Latencies, load_ms: float, first_ms: float,
             window_unix_ns: tuple[int, int], memory_mb: float | None = None, threads: int | None = None,
             accelerator: str = "cpu") -> dict[str, Any]:
    """The result document of one tool run on a phone (valid when both minimums were met)."""
    checks = _checks(settings, latencies, tool)
    failed = [f"{c['name']}: {c['detail']}" for c in checks[:2] if not c["ok"]]
    effective = settings.to_dict() | {"expected_latency_ns": 0}
    runtime_name = "litert" if tool.name == "benchmark_model" else "onnxruntime"
    return {
        "schema": contract.RESULT_SCHEMA,
        "run_id": run_id,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "agent_version": __version__,
        "device": {"id": device_id, "facts": facts},
        "model": {"name": model.name, "path": str(model.path), "sha256": model.sha256, "size_bytes": model.size_bytes,
                  "format": model.format, "precision": precision},
        "runtime": {"name": runtime_name, "version": tool.version, "threads": threads,
                    "threads_rule": "given" if threads is not None else f"{tool.name}'s default",
                    "accelerator": accelerator, "details": {"tool": tool.name, "tool_sha256": tool.sha256}},
        "scenario": settings.scenario.value,
        "mode": settings.mode.value,
        "engine": tool.name,
        "profile": settings.profile,
        "settings": {"requested": settings.to_dict(), "effective": effective,
                     "derived": {"latency_basis": latencies.basis}},
        "valid": not failed,
        "invalid_reasons": failed,
        "checks": checks,
        "ended_by": "the tool finished",
        "window": {"begin_unix_ns": window_unix_ns[0], "end_unix_ns": window_unix_ns[1]},
        "kpis": {
            "latency_ms": latencies.latency_ms,
            "early_stopping_latency_ms": None,
            "throughput_sps": latencies.throughput_sps,
            "query_count": latencies.runs,
            "sample_count": latencies.runs,
            "duration_s": (window_unix_ns[1] - window_unix_ns[0]) / 1e9,
            "accuracy": None,
            "energy": None,
            "memory": {"peak_rss_mb": memory_mb},
            "model_size_mb": model.size_bytes / (1 << 20),
            "load_time_ms": load_ms,
            "first_inference_ms": first_ms,
            "latency_histogram": latencies.histogram,
        },
        "logs": {"engine": tool.name, "engine_rule": f"a phone: {tool.name} runs the model on the device"},
        "reproduce": {"argv": list(tool.argv), "command": " ".join(tool.argv)},
    }
