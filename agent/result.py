"""The result document (schema ``edgeperf.result/1``): the contract with the controller and tools.

Field names listed in SPEC §5 are never renamed; new fields may be added. ``check`` is used on
both sides of the wire to refuse documents that lack the contract's fields.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

SCHEMA = "edgeperf.result/1"
REQUIRED = {
    "": ("schema", "run_id", "created_at", "device", "model", "runtime", "scenario", "mode", "engine",
         "profile", "settings", "valid", "invalid_reasons", "kpis", "logs"),
    "device": ("id", "facts"),
    "model": ("name", "path", "sha256", "size_bytes", "format", "precision"),
    "runtime": ("name", "version", "threads", "accelerator"),
    "kpis": ("latency_ms", "early_stopping_latency_ms", "throughput_sps", "query_count", "sample_count",
             "duration_s", "accuracy", "energy", "memory", "model_size_mb", "load_time_ms", "first_inference_ms"),
    "kpis.latency_ms": ("min", "mean", "p50", "p90", "p95", "p99", "p999", "max"),
}


def check(doc: dict[str, Any]) -> list[str]:
    """Missing contract fields of ``doc`` as dotted paths; empty when the document is complete."""
    if doc.get("schema") != SCHEMA:
        return [f"schema is {doc.get('schema')!r}, not {SCHEMA!r}"]
    missing = []
    for section, keys in REQUIRED.items():
        node: Any = doc
        for part in filter(None, section.split(".")):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            missing.append(section)
            continue
        missing += [f"{section}.{k}".lstrip(".") for k in keys if k not in node]
    return missing


def json_safe(value: Any) -> Any:
    """JSON has no NaN/Infinity; write them as null rather than produce an unreadable file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(json_safe(doc), indent=2, sort_keys=False) + "\n"


def write(doc: dict[str, Any], path: Path) -> None:
    """Write atomically, so an interrupted run never leaves half a JSON file behind."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(doc))
    tmp.replace(path)
