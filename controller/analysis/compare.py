"""Edge against datacenter: each edge row next to the baseline's row for the same job, as ratios.

Ratios read "edge ÷ baseline": latency × 12 means the device is twelve times slower than the
GPU; inferences per joule × 3 means it does three times the work per joule. Accuracy is a
difference in percentage points (edge − baseline), because the baseline runs the same model
file (or its ONNX sibling) and any gap is the runtime's or the quantisation's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.analysis.scorecard import ACCURACY_KPI, Row

# label -> (KPI, how it compares)
RATIOS = {
    "p90 latency ×": "latency_ms.p90",
    "throughput ×": "throughput_sps",
    "energy/inference ×": "energy.energy_per_inference_mj",
    "inferences/J ×": "energy.inferences_per_joule",
}


@dataclass
class Comparison:
    """One edge row and the baseline row it is set against."""

    edge: Row
    baseline: Row | None
    ratios: dict[str, float | None]
    accuracy_delta_pp: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"edge": self.edge.to_dict(), "baseline": None if self.baseline is None else self.baseline.to_dict(),
                "ratios": self.ratios, "accuracy_delta_pp": self.accuracy_delta_pp}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def compare(edge_rows: list[Row], baseline_rows: list[Row]) -> list[Comparison]:
    """Every edge row with its baseline row (None where the baseline did not run that job)."""
    base = {row.match_key: row for row in baseline_rows}
    out = []
    for row in sorted(edge_rows, key=lambda r: (r.family, r.match_key, r.device)):
        other = base.get(row.match_key)
        ratios = {label: _ratio(row.value(kpi), other.value(kpi) if other else None) for label, kpi in RATIOS.items()}
        delta = None
        if other and row.value(ACCURACY_KPI) is not None and other.value(ACCURACY_KPI) is not None:
            delta = (row.value(ACCURACY_KPI) - other.value(ACCURACY_KPI)) * 100
        out.append(Comparison(row, other, ratios, delta))
    return out
