"""Rich tables built from result documents; pure functions, the CLI decides where they print."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

SHORT_SCENARIO = {"SingleStream": "SS", "MultiStream": "MS", "Server": "Server", "Offline": "Offline"}


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _verdict(doc: dict[str, Any]) -> str:
    if doc["valid"]:
        return "VALID"
    return "INVALID: " + ", ".join(c["name"] for c in doc.get("checks", []) if not c["ok"])


def scorecard(results: Sequence[dict[str, Any]], title: str = "edgeperf scorecard") -> Table:
    """One row per result. Offline has no latency metric, so its latency cells stay empty."""
    table = Table(title=title)
    for name in ("device", "model", "runtime", "run", "p50 ms", "p90 ms", "ES ms", "samples/s", "top-1 [95% CI]", "verdict"):
        table.add_column(name, justify="right" if name.endswith(("ms", "/s")) else "left")
    for doc in results:
        k, rt = doc["kpis"], doc["runtime"]
        acc = k.get("accuracy")
        streamed = doc["scenario"] != "Offline" and doc["mode"] == "performance"
        table.add_row(
            doc["device"]["id"],
            f"{doc['model']['name'].rsplit('/', 1)[-1]} ({doc['model']['precision']})",
            f"{rt['name']} {rt['accelerator'].removesuffix('ExecutionProvider').removeprefix('cpu/')}",
            f"{SHORT_SCENARIO[doc['scenario']]} {'perf' if doc['mode'] == 'performance' else 'acc'}",
            _ms(k["latency_ms"].get("p50")) if streamed else "–",
            _ms(k["latency_ms"].get("p90")) if streamed else "–",
            _ms(k.get("early_stopping_latency_ms")),
            "–" if k["throughput_sps"] is None else f"{k['throughput_sps']:,.0f}",
            f"{acc['top1']:.4f} [{acc['ci95'][0]:.3f}, {acc['ci95'][1]:.3f}]" if acc else "–",
            _verdict(doc),
        )
    return table
