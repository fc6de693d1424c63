"""Rich tables of fleet state and flat CSV rows; pure functions, the CLI decides where they print."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from agent.contract import Result


def devices(rows: Sequence[dict[str, Any]]) -> Table:
    """The fleet as the controller last heard it."""
    table = Table(title="devices")
    for name in ("device", "state", "agent", "tags", "board / cpu", "runtimes", "last heard"):
        table.add_column(name)
    for row in rows:
        facts = row["info"].get("facts", {})
        installed = row["info"].get("installed", {})
        runtimes = ", ".join(name for name, version in installed.items() if version)
        heard = f"{time.time() - row['last_seen']:.0f} s ago" if row["last_seen"] else "never (retained status only)"
        table.add_row(
            row["id"],
            row["state"] or "?",
            row["agent_version"] or "?",
            ", ".join(row["tags"]),
            _hardware(facts),
            runtimes,
            heard,
        )
    return table


def _hardware(facts: dict[str, Any]) -> str:
    """The board (or CPU); for a phone, with its SoC, Android release and ABI, which tell two phones of one model apart."""
    what = facts.get("board") or facts.get("cpu_model", "?")
    if facts.get("os") == "Android":
        extra = [str(facts[k]) for k in ("soc", "os_release", "abi") if facts.get(k)]
        what += f" ({', '.join(extra)})" if extra else ""
    return what


FLAT_COLUMNS = (
    "run_id",
    "device",
    "model",
    "precision",
    "runtime",
    "accelerator",
    "threads",
    "scenario",
    "mode",
    "engine",
    "valid",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "early_stopping_ms",
    "throughput_sps",
    "top1",
    "top1_ci_lo",
    "top1_ci_hi",
    "peak_rss_mb",
    "model_size_mb",
    "load_time_ms",
)


def flat_row(result: Result) -> dict[str, Any]:
    """One result as a CSV row of its headline KPIs."""
    k, acc = result.kpis, result.kpis.accuracy
    lo, hi = acc.ci95 if acc is not None else (None, None)
    return {
        "run_id": result.run_id,
        "device": result.device.id,
        "model": result.model.name,
        "precision": result.model.precision,
        "runtime": result.runtime.name,
        "accelerator": result.runtime.accelerator,
        "threads": result.runtime.threads,
        "scenario": result.scenario,
        "mode": result.mode,
        "engine": result.engine,
        "valid": result.valid,
        "p50_ms": k.latency_ms.p50,
        "p90_ms": k.latency_ms.p90,
        "p99_ms": k.latency_ms.p99,
        "early_stopping_ms": k.early_stopping_latency_ms,
        "throughput_sps": k.throughput_sps,
        "top1": acc.top1 if acc is not None else None,
        "top1_ci_lo": lo,
        "top1_ci_hi": hi,
        "peak_rss_mb": k.memory.peak_rss_mb,
        "model_size_mb": k.model_size_mb,
        "load_time_ms": k.load_time_ms,
    }


def flash(results: Sequence[Any], check: bool) -> Table:
    """One line per inventory host after ``fleet flash`` / ``fleet status`` (``controller.flash.HostResult``)."""
    table = Table(title="fleet status" if check else "fleet flash")
    columns = ("host", "device", "address", "provisioned", "drift") if check else ("host", "device", "address", "changed")
    for name in (*columns, "service", "broker", "agent", "problem"):
        table.add_column(name, overflow="fold")
    for r in results:
        h = r.host
        if check:
            provisioned = "?" if not r.report else "yes" if r.report.get("provisioned") else "no"
            drift = ", ".join(r.changed_tasks) or "none"
            drift = drift if r.ran and r.report.get("provisioned") else "–"
            cells = [h.name, h.device_id, h.address, provisioned, drift]
        else:
            cells = [h.name, h.device_id, h.address, str(r.changed) if r.ran else "–"]
        service = r.report.get("service", "–") if r.report.get("provisioned", True) else "–"
        cells += [service, r.state or "never seen", r.agent_version or "–", r.failure or ""]
        table.add_row(*cells, style="red" if r.failure else None)
    return table

