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

from agent.contract import Accuracy, Result
from agent.kpi import BY_KEY
from agent.stats import REPORTED_PERCENTILES, LatencyHistogram
from controller.analysis.intervals import bootstrap_mean, difference, proportion
from devices import profiles

# KPIs a scorecard summarises per row (KPI dictionary keys: dotted paths inside a result's ``kpis``)
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
    results: list[Result] = field(default_factory=list)
    cells: dict[str, Cell] = field(default_factory=dict)
    fleet: bool = False
    baseline: str | None = None  # "gpu" | "host-cpu" for datacenter baseline rows

    @property
    def runs(self) -> int:
        return len(self.results)

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
        job = self.results[0].job
        parts = (job.key or "").split("/") if job else []
        if len(parts) >= 6:
            return tuple(parts[1:5])
        return (self.model, self.scenario, self.mode)

    @property
    def energy_measured(self) -> bool | None:
        blocks = [r.kpis.energy for r in self.results if r.kpis.energy is not None]
        return all(b.measured for b in blocks) if blocks else None

    @property
    def verdict(self) -> str:
        invalid = [r for r in self.results if not r.valid]
        if not invalid:
            return "VALID"
        reasons = sorted({reason.split(":")[0] for r in invalid for reason in r.invalid_reasons})
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
            "run_ids": [r.run_id for r in self.results],
        }


def model_family(name: str) -> str:
    return name.removeprefix("zoo:").rsplit("/", 1)[0]


def kpi_value(result: Result, key: str) -> Any:
    """A KPI of a result by its KPI-dictionary key (``latency_ms.p90``, ``energy.mlperf.mj_per_query``):
    the attributes of the typed ``kpis`` block the key names, in turn; None where a block the key
    passes through is absent (a run without energy or accuracy)."""
    node: Any = result.kpis
    for part in key.split("."):
        if node is None:
            return None
        node = getattr(node, part)
    return node


def device_class(result: Result) -> str:
    """What a fleet row pools: the device profile, else the board, else the CPU."""
    if result.baseline:
        return f"baseline:{result.baseline.get('kind', '?')}"
    facts = result.device.facts
    profile = profiles.match(facts)
    return profile.name if profile else str(facts.get("board") or facts.get("cpu_model") or "unknown")


def _row_for(result: Result, device: str, fleet: bool) -> Row:
    rt = result.runtime
    return Row(device=device, device_class=device_class(result), model=result.model.name, precision=result.model.precision,
               runtime=rt.name, accelerator=rt.accelerator, threads=rt.threads, scenario=result.scenario, mode=result.mode,
               fleet=fleet, baseline=(result.baseline or {}).get("kind"))


def _group(results: Iterable[Result], fleet: bool) -> list[Row]:
    rows: dict[tuple, Row] = {}
    for result in results:
        who = device_class(result) if fleet else result.device.id
        rt = result.runtime
        key = (who, result.model.name, rt.name, rt.accelerator, rt.threads, result.scenario, result.mode)
        rows.setdefault(key, _row_for(result, who, fleet)).results.append(result)
    return list(rows.values())


def latency_histogram(result: Result) -> LatencyHistogram | None:
    """A run's latency histogram, to merge or read percentiles from (None when it has none)."""
    hist = result.kpis.latency_histogram
    return LatencyHistogram.from_block(hist) if hist is not None else None


def merged_histogram(results: Iterable[Result]) -> LatencyHistogram:
    """Every run's latency histogram added into one (runs without one add nothing)."""
    merged = LatencyHistogram()
    for result in results:
        if (hist := latency_histogram(result)) is not None and hist.counts:
            merged.merge(hist)
    return merged


def _scored(row: Row) -> list[Accuracy]:
    """The accuracy blocks of the row's runs that scored samples."""
    return [r.kpis.accuracy for r in row.results if r.kpis.accuracy is not None]


def _correct(accuracy: Accuracy) -> int:
    """Samples scored correct: as counted, else from top-1 × n (a result that did not carry the count)."""
    return accuracy.correct if accuracy.correct is not None else round(accuracy.top1 * accuracy.n)


def _counts(row: Row) -> tuple[int, int]:
    """(correct, scored) pooled over the row's runs."""
    scored = _scored(row)
    return sum(_correct(a) for a in scored), sum(a.n for a in scored)


def _summarise(row: Row) -> None:
    if row.mode == "accuracy":
        if scored := _scored(row):
            value, lo, hi = proportion(*_counts(row))
            row.cells[ACCURACY_KPI] = Cell(value, lo, hi, len(scored))
        return
    for key in PERFORMANCE_KPIS:
        values = [v for r in row.results if (v := kpi_value(r, key)) is not None]
        if values:
            mean, lo, hi = bootstrap_mean(values)
            row.cells[key] = Cell(mean, lo, hi, len(values))
    if row.fleet:  # pooled percentiles: from the merged histograms, never an average of percentiles
        merged = merged_histogram(row.results)
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


def build(results: Sequence[Result], fleet: bool = False) -> list[Row]:
    """Scorecard rows for ``results``; with ``fleet``, rows per device class instead of per device."""
    rows = _group(results, fleet)
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


def by_baseline(results: Iterable[Result]) -> tuple[list[Result], list[Result]]:
    """(edge results, baseline results)."""
    edge: list[Result] = []
    base: list[Result] = []
    for result in results:
        (base if result.baseline else edge).append(result)
    return edge, base

