"""Scorecards: one row per device × model variant × scenario × mode, with intervals, and fleet rows.

Repeats of a row are summarised by their mean with a bootstrap interval (latency, throughput,
energy), accuracy by pooling every scored sample into one Wilson interval, and an int8 model's
accuracy is set against the fp32 variant of the same model on the same device (Newcombe's
interval for the difference). Fleet rows pool a device class: their latency percentiles come
from the merged latency histograms of every run — percentiles are never averaged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.kpi import BY_KEY
from agent.stats import REPORTED_PERCENTILES, LatencyHistogram
from controller.analysis.intervals import bootstrap_mean, difference, proportion
from devices import profiles

# KPIs a scorecard summarises per row (dotted paths inside a result's ``kpis``)
PERFORMANCE_KPIS = (
    "latency_ms.p50", "latency_ms.p90", "latency_ms.p99", "early_stopping_latency_ms", "throughput_sps",
    "energy.energy_per_inference_mj", "energy.energy_per_inference_above_idle_mj", "energy.inferences_per_joule",
    "energy.avg_power_w", "memory.peak_rss_mb", "model_size_mb", "load_time_ms",
)
ACCURACY_KPI, DELTA_KPI = "accuracy.top1", "accuracy_delta_pp"
# the percentiles a fleet row reads from merged histograms (and the gate bootstraps), at the result's fractions
HISTOGRAM_PERCENTILES = {f"latency_ms.{name}": REPORTED_PERCENTILES[name] for name in ("p50", "p90", "p99")}
TIMED_SCENARIOS = ("SingleStream", "MultiStream", "Server")  # scenarios whose per-query latency is their metric


@dataclass(frozen=True)
class Cell:
    """A KPI's value with its 95 % interval (None when there is nothing to base one on)."""

    value: float | None
    lo: float | None = None
    hi: float | None = None
    runs: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci95": None if self.lo is None else [self.lo, self.hi], "runs": self.runs}


@dataclass
class Row:
    """One line of a scorecard (or a fleet line: ``device`` is then a device class)."""

    device: str
    device_class: str
    model: str
    precision: str
    runtime: str
    accelerator: str
    threads: int | None
    scenario: str
    mode: str
    docs: list[dict[str, Any]] = field(default_factory=list)
    cells: dict[str, Cell] = field(default_factory=dict)
    fleet: bool = False
    baseline: str | None = None  # "gpu" | "host-cpu" for datacenter baseline rows

    @property
    def runs(self) -> int:
        return len(self.docs)

    @property
    def family(self) -> str:
        """The model without its variant: ``fashion-mnist-cnn`` for ``fashion-mnist-cnn/int8.tflite``."""
        return model_family(self.model)

    @property
    def timed(self) -> bool:
        """Latency is this row's metric: a performance run of a scenario other than Offline."""
        return self.mode == "performance" and self.scenario in TIMED_SCENARIOS

    @property
    def match_key(self) -> tuple[str, ...]:
        """What pairs an edge row with its baseline row: the campaign job key without the device
        (model / variant / scenario / mode), else the model name, scenario and mode."""
        job_key = (self.docs[0].get("job") or {}).get("key", "")
        parts = job_key.split("/")
        if len(parts) >= 6:
            return tuple(parts[1:5])
        return (self.model, self.scenario, self.mode)

    @property
    def energy_measured(self) -> bool | None:
        blocks = [d["kpis"].get("energy") for d in self.docs if d["kpis"].get("energy")]
        return all(b["measured"] for b in blocks) if blocks else None

    @property
    def verdict(self) -> str:
        invalid = [d for d in self.docs if not d["valid"]]
        if not invalid:
            return "VALID"
        reasons = sorted({r.split(":")[0] for d in invalid for r in d["invalid_reasons"]})
        return f"INVALID {len(invalid)}/{self.runs}: {', '.join(reasons)}"

    def value(self, key: str) -> float | None:
        cell = self.cells.get(key)
        return None if cell is None or cell.value is None or math.isnan(cell.value) else cell.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device, "device_class": self.device_class, "model": self.model, "precision": self.precision,
            "runtime": self.runtime, "accelerator": self.accelerator, "threads": self.threads, "scenario": self.scenario,
            "mode": self.mode, "runs": self.runs, "fleet": self.fleet, "baseline": self.baseline, "verdict": self.verdict,
            "energy_measured": self.energy_measured, "kpis": {k: c.to_dict() for k, c in self.cells.items()},
            "run_ids": [d["run_id"] for d in self.docs],
        }


def model_family(name: str) -> str:
    return name.removeprefix("zoo:").rsplit("/", 1)[0]


def kpi_value(doc: dict[str, Any], key: str) -> Any:
    """A KPI of a result by its dotted path inside ``kpis`` (None where absent)."""
    node: Any = doc["kpis"]
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def device_class(doc: dict[str, Any]) -> str:
    """What a fleet row pools: the device profile, else the board, else the CPU."""
    if doc.get("baseline"):
        return f"baseline:{doc['baseline'].get('kind', '?')}"
    facts = doc["device"].get("facts", {})
    profile = profiles.match(facts)
    return profile.name if profile else str(facts.get("board") or facts.get("cpu_model") or "unknown")


def _row_for(doc: dict[str, Any], device: str, fleet: bool) -> Row:
    rt = doc["runtime"]
    return Row(device=device, device_class=device_class(doc), model=doc["model"]["name"], precision=doc["model"]["precision"],
               runtime=rt["name"], accelerator=rt["accelerator"], threads=rt.get("threads"), scenario=doc["scenario"],
               mode=doc["mode"], fleet=fleet, baseline=(doc.get("baseline") or {}).get("kind"))


def _group(docs: Iterable[dict[str, Any]], fleet: bool) -> list[Row]:
    rows: dict[tuple, Row] = {}
    for doc in docs:
        who = device_class(doc) if fleet else doc["device"]["id"]
        rt = doc["runtime"]
        key = (who, doc["model"]["name"], rt["name"], rt["accelerator"], rt.get("threads"), doc["scenario"], doc["mode"])
        rows.setdefault(key, _row_for(doc, who, fleet)).docs.append(doc)
    return list(rows.values())


def merged_histogram(docs: Iterable[dict[str, Any]]) -> LatencyHistogram:
    """Every run's latency histogram added into one (runs without one add nothing)."""
    merged = LatencyHistogram()
    for doc in docs:
        hist = doc["kpis"].get("latency_histogram")
        if hist and hist.get("counts"):
            merged.merge(LatencyHistogram.from_dict(hist))
    return merged


def _scored(row: Row) -> list[dict[str, Any]]:
    """The accuracy blocks of the row's runs that scored samples."""
    return [a for d in row.docs if (a := kpi_value(d, "accuracy"))]


def _counts(row: Row) -> tuple[int, int]:
    """(correct, scored) pooled over the row's runs."""
    scored = _scored(row)
    return sum(a["correct"] for a in scored), sum(a["n"] for a in scored)


def _summarise(row: Row) -> None:
    if row.mode == "accuracy":
        if scored := _scored(row):
            value, lo, hi = proportion(*_counts(row))
            row.cells[ACCURACY_KPI] = Cell(value, lo, hi, len(scored))
        return
    for key in PERFORMANCE_KPIS:
        values = [v for d in row.docs if (v := kpi_value(d, key)) is not None]
        if values:
            mean, lo, hi = bootstrap_mean(values)
            row.cells[key] = Cell(mean, lo, hi, len(values))
    if row.fleet:  # pooled percentiles: from the merged histograms, never an average of percentiles
        merged = merged_histogram(row.docs)
        if merged.n:
            for key, p in HISTOGRAM_PERCENTILES.items():
                row.cells[key] = Cell(merged.percentile(p) / 1e6, None, None, row.runs)


def _accuracy_deltas(rows: Sequence[Row]) -> None:
    """Each accuracy row against the fp32 variant of its model on the same device (percentage points)."""
    references = {(r.device, r.family, r.scenario): r for r in rows if r.mode == "accuracy" and r.precision == "fp32"}
    for row in rows:
        ref = references.get((row.device, row.family, row.scenario))
        if row.mode != "accuracy" or ref is None or ref is row or ACCURACY_KPI not in row.cells or ACCURACY_KPI not in ref.cells:
            continue
        mine, theirs = _counts(row), _counts(ref)
        d, lo, hi = difference(mine, theirs)
        row.cells[DELTA_KPI] = Cell(d * 100, lo * 100, hi * 100, row.runs)


def build(docs: Sequence[dict[str, Any]], fleet: bool = False) -> list[Row]:
    """Scorecard rows for ``docs``; with ``fleet``, rows per device class instead of per device."""
    rows = _group(docs, fleet)
    for row in rows:
        _summarise(row)
    _accuracy_deltas(rows)
    return rows


def ordered(rows: Iterable[Row]) -> list[Row]:
    """Rows in table order: device, model family, variant, scenario, mode."""
    return sorted(rows, key=lambda r: (r.device, r.family, r.model, r.scenario, r.mode))


def rank(rows: Sequence[Row], kpi: str | None = None, weights: dict[str, float] | None = None) -> list[tuple[Row, float]]:
    """Rows ordered best first by one KPI (its dictionary direction) or by a weighted score.

    The score normalises each weighted KPI to [0, 1] across the rows being ranked (1 = best, by
    the KPI's own direction) and sums weight × normalised value; a row missing a weighted KPI is
    left out rather than scored as if it were worst or best.
    """
    if (kpi is None) == (weights is None):
        raise ValueError("rank by one KPI or by weights, not both or neither")
    weights = weights or {kpi: 1.0}
    for key in weights:
        if key not in BY_KEY and key != DELTA_KPI:
            raise KeyError(key)
    scored = [r for r in rows if all(r.value(k) is not None for k in weights)]
    out = []
    for row in scored:
        total = 0.0
        for key, weight in weights.items():
            values = [r.value(key) for r in scored]
            low, high = min(values), max(values)
            share = 0.5 if high == low else (row.value(key) - low) / (high - low)
            better = BY_KEY[key].better if key in BY_KEY else "higher"
            total += weight * (1 - share if better == "lower" else share)
        out.append((row, total))
    return sorted(out, key=lambda pair: -pair[1])


def by_baseline(docs: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(edge results, baseline results)."""
    edge, base = [], []
    for doc in docs:
        (base if doc.get("baseline") else edge).append(doc)
    return edge, base

