"""Scorecards: one row per device × model variant × scenario × mode, with intervals, and fleet rows.

Repeats of a row are summarised by their mean with Student's t interval (latency, throughput,
energy; three repeats at least, see ``intervals``), accuracy by counting each scored sample of a
dataset once in one Wilson interval, and an int8 model's accuracy is set against the fp32
variant of the same model on the same device with a paired interval where both carry their
per-sample correctness (``paired``). Fleet rows pool a device class: their latency percentiles
and early-stopping estimates come from the merged latency histograms of every run with
LoadGen's own rules — percentiles are never averaged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.contract import Result
from agent.kpi import BY_KEY
from agent.scenarios import early_stopping
from agent.stats import REPORTED_PERCENTILES, LatencyHistogram
from controller.analysis import class_metrics, paired
from controller.analysis.intervals import mean_interval
from devices import profiles

# KPIs a scorecard summarises per row (KPI dictionary keys: dotted paths inside a result's ``kpis``)
PERFORMANCE_KPIS = (
    "latency_ms.p50", "latency_ms.p90", "latency_ms.p99", "early_stopping_latency_ms", "early_stopping_p99_latency_ms",
    "throughput_sps",
    "energy.energy_per_inference_mj", "energy.energy_per_inference_above_idle_mj", "energy.inferences_per_joule",
    "energy.avg_power_w", "memory.peak_rss_mb", "model_size_mb", "load_time_ms",
)
ACCURACY_KPI, DELTA_KPI = "accuracy.top1", "accuracy_delta_pp"
MACRO_KPIS = ("accuracy.precision_macro", "accuracy.recall_macro", "accuracy.f1_macro")  # cells of accuracy rows
TASK_KPI = "task_accuracy.value"  # mAP, AUC: a task scored by its own metric; the cell's method starts with its name
# the percentiles a fleet row reads from merged histograms (and the gate bootstraps), at the result's fractions
HISTOGRAM_PERCENTILES = {f"latency_ms.{name}": REPORTED_PERCENTILES[name] for name in ("p50", "p90", "p99")}
TIMED_SCENARIOS = ("SingleStream", "MultiStream", "Server")  # scenarios whose per-query latency is their metric
SCORED_MODES = ("accuracy", "robustness")  # modes whose rows carry top-1 (robustness: clean, plus its corruptions)


@dataclass(frozen=True)
class Cell:
    """A KPI's value, its 95 % confidence interval ``lo``/``hi`` (None when there is nothing to
    base one on) and how both were made.

    ``method`` says what the value and interval are (docs/kpis.md, "Scorecard views"): ``t``
    (mean over repeats, Student's t), ``range`` (mean of two runs; ``spread`` holds their min and
    max, which is not a confidence interval), ``none`` (one run), ``wilson`` (a proportion),
    ``merged histogram`` / ``merged early stopping`` (a fleet row's pooled percentile), or the
    accuracy difference's own method."""

    value: float | None
    lo: float | None = None
    hi: float | None = None
    runs: int = 1
    method: str = "none"
    spread: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci95": None if self.lo is None else [self.lo, self.hi], "runs": self.runs,
                "method": self.method, "range": None if self.spread is None else list(self.spread)}


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
    classes: class_metrics.RowClassMetrics | None = None  # accuracy rows whose runs carry class counts

    @property
    def runs(self) -> int:
        return len(self.results)

    @property
    def per_class(self) -> list[class_metrics.ClassFigures]:
        """Precision, recall and F1 per class with their intervals (empty without class counts)."""
        return self.classes.classes if self.classes is not None else []

    @property
    def family(self) -> str:
        """The model without its variant: ``fashion-mnist-cnn`` for ``fashion-mnist-cnn/int8.tflite``."""
        return model_family(self.model)

    @property
    def timed(self) -> bool:
        """Latency is this row's metric: a performance run of a scenario other than Offline."""
        return self.mode == "performance" and self.scenario in TIMED_SCENARIOS

    @property
    def label(self) -> str:
        """One line naming the row: ``pi-a fashion-mnist-cnn/int8.onnx onnxruntime/CPU×1 SingleStream performance``."""
        threads = f"×{self.threads}" if self.threads else ""
        runtime = f"{self.runtime}/{self.accelerator.removesuffix('ExecutionProvider')}{threads}"
        return f"{self.device} {self.model.removeprefix('zoo:')} {runtime} {self.scenario} {self.mode}"

    @property
    def kind(self) -> tuple[str, str]:
        """What makes two rows comparable: their scenario and mode (an Offline rate is not a
        SingleStream rate, and an accuracy row has no latency)."""
        return (self.scenario, self.mode)

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
            "per_class": [c.to_dict() for c in self.per_class],
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


def _accuracy_blocks(row: Row) -> list[Any]:
    """The accuracy blocks of the row's runs that scored samples."""
    return [r.kpis.accuracy for r in row.results if r.kpis.accuracy is not None]


def _early_stopping(row: Row, merged: LatencyHistogram) -> dict[str, Cell]:
    """A fleet row's early-stopping estimates from its merged histogram, by LoadGen's formula
    (``sorted[n - t]``): the scenario's percentile, and p99 for SingleStream. Server and Offline
    have no estimate."""
    if row.scenario not in ("SingleStream", "MultiStream"):
        return {}
    target = row.results[0].settings.effective.target_latency_percentile
    wanted = {"early_stopping_latency_ms": target}
    if row.scenario == "SingleStream":
        wanted["early_stopping_p99_latency_ms"] = 0.99
    out = {}
    for key, p in wanted.items():
        t = early_stopping.discard_count(merged.n, p)
        value = None if t is None else merged.value_at(merged.n - t) / 1e6
        out[key] = Cell(value, None, None, row.runs, "merged early stopping")
    return out


def _task_accuracy(row: Row) -> Cell | None:
    """A row's mAP or AUC. Runs over the same samples re-score the same data, so repeating them narrows
    nothing: the value is their mean and the interval the metric's own (AUC: DeLong's; mAP: none).
    Runs over different samples have no pooling rule here: their mean is shown without an interval."""
    blocks = [r.kpis.task_accuracy for r in row.results if r.kpis.task_accuracy is not None]
    if not blocks or len({b.metric for b in blocks}) != 1:
        return None
    value = sum(b.value for b in blocks) / len(blocks)
    if len({b.samples_sha256 for b in blocks}) == 1:
        lo, hi = blocks[0].ci95 or (None, None)
        return Cell(value, lo, hi, len(blocks), f"{blocks[0].metric}: {blocks[0].interval or 'as scored'}")
    return Cell(value, None, None, len(blocks), f"{blocks[0].metric}: mean of runs over different samples, no interval")


def _class_metrics(row: Row, blocks: Sequence[Any]) -> None:
    """Macro precision, recall and F1 cells and the per-class figures of an accuracy row from its accuracy
    ``blocks`` (``class_metrics``): from the runs' class counts, else the mean of the agent's macro values
    without an interval."""
    row.classes = class_metrics.figures(blocks)
    macro = row.classes.macro if row.classes is not None else class_metrics.agent_macro(blocks)
    for key, m in macro.items():
        row.cells[f"accuracy.{key}"] = Cell(m.value, m.lo, m.hi, row.runs, m.method)


def _summarise(row: Row) -> None:
    if row.mode in SCORED_MODES:
        blocks = _accuracy_blocks(row)
        if (pooled := paired.pooled(blocks)) is not None:
            row.cells[ACCURACY_KPI] = Cell(pooled.value, pooled.lo, pooled.hi, pooled.runs, pooled.method)
        if (task := _task_accuracy(row)) is not None:
            row.cells[TASK_KPI] = task
        _class_metrics(row, blocks)
        return
    for key in PERFORMANCE_KPIS:
        values = [v for r in row.results if (v := kpi_value(r, key)) is not None]
        if values:
            est = mean_interval(values)
            ci = est.method == "t"
            row.cells[key] = Cell(est.value, est.lo if ci else None, est.hi if ci else None, est.n, est.method,
                                  (est.lo, est.hi) if est.method == "range" else None)
    if row.fleet:  # pooled percentiles: from the merged histograms, never an average of percentiles
        merged = merged_histogram(row.results)
        if merged.n:
            for key, p in HISTOGRAM_PERCENTILES.items():
                row.cells[key] = Cell(merged.percentile(p) / 1e6, None, None, row.runs, "merged histogram")
            row.cells.update(_early_stopping(row, merged))
        else:  # no histogram to pool: an average of percentiles would be wrong, so nothing is shown
            for key in (*HISTOGRAM_PERCENTILES, "early_stopping_latency_ms", "early_stopping_p99_latency_ms"):
                row.cells.pop(key, None)


def _accuracy_deltas(rows: Sequence[Row]) -> None:
    """Each accuracy (or robustness) row against the fp32 variant of its model on the same device, in the
    same mode (percentage points)."""
    references = {(r.device, r.family, r.scenario, r.mode): r for r in rows if r.mode in SCORED_MODES and r.precision == "fp32"}
    for row in rows:
        ref = references.get((row.device, row.family, row.scenario, row.mode))
        if row.mode not in SCORED_MODES or ref is None or ref is row:
            continue
        if (d := paired.delta(_accuracy_blocks(row), _accuracy_blocks(ref))) is not None:
            row.cells[DELTA_KPI] = Cell(d.delta * 100, d.lo * 100, d.hi * 100, row.runs, d.method)


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


@dataclass
class Ranking:
    """Rows ranked best first within each comparable group (scenario × mode), and the rows that
    could not be scored, each with the KPIs it lacks."""

    wanted: list[str]  # the KPIs ranked by
    groups: dict[tuple[str, str], list[tuple[Row, float]]]
    unscored: list[tuple[Row, list[str]]]
    inapplicable: list[tuple[str, str]]  # groups where no row has every weighted KPI (accuracy rows have no latency)

    def to_dict(self, by: str) -> dict[str, Any]:
        return {"by": by,
                "groups": [{"scenario": scenario, "mode": mode,
                            "rows": [{"rank": i, "score": score, "row": r.to_dict()} for i, (r, score) in enumerate(group, 1)]}
                           for (scenario, mode), group in self.groups.items()],
                "unscored": [{"row": r.to_dict(), "missing": missing} for r, missing in self.unscored]}


def rank(rows: Sequence[Row], kpi: str | None = None, weights: dict[str, float] | None = None) -> Ranking:
    """Rows ordered best first by one KPI (its dictionary direction) or by a weighted score,
    only ever against rows of the same scenario and mode.

    The score normalises each weighted KPI to [0, 1] across the group's scored rows (1 = best, by
    the KPI's own direction) and sums weight × normalised value; a row missing a weighted KPI is
    reported as not scored rather than scored as if it were worst or best.
    """
    if (kpi is None) == (weights is None):
        raise ValueError("rank by one KPI or by weights, not both or neither")
    weights = weights or {kpi: 1.0}
    for key in weights:
        if key not in BY_KEY and key != DELTA_KPI:
            raise KeyError(key)
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault(row.kind, []).append(row)
    out = Ranking(list(weights), {}, [], [])
    for kind, members in sorted(groups.items()):
        scored = [r for r in members if all(r.value(k) is not None for k in weights)]
        if not scored:
            out.inapplicable.append(kind)
            continue
        out.unscored += [(r, [k for k in weights if r.value(k) is None]) for r in members if r not in scored]
        ranked = []
        for row in scored:
            total = 0.0
            for key, weight in weights.items():
                values = [r.value(key) for r in scored]
                low, high = min(values), max(values)
                share = 0.5 if high == low else (row.value(key) - low) / (high - low)
                better = BY_KEY[key].better if key in BY_KEY else "higher"
                total += weight * (1 - share if better == "lower" else share)
            ranked.append((row, total))
        out.groups[kind] = sorted(ranked, key=lambda pair: -pair[1])
    return out


def by_baseline(results: Iterable[Result]) -> tuple[list[Result], list[Result]]:
    """(edge results, baseline results)."""
    edge: list[Result] = []
    base: list[Result] = []
    for result in results:
        (base if result.baseline else edge).append(result)
    return edge, base

