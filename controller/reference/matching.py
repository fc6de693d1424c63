"""Which published rows a local scorecard row sits beside, and what differs between them.

A local row's MLPerf benchmark is either named by the user (``--reference resnet50``: every row
of the campaign is that benchmark) or, with ``--reference auto``, read from the zoo manifest:
the ``benchmark`` field of the model's zoo entry. A row then sits beside every stored published
row of that benchmark and the same scenario. Numbers are set against each other only in the
same metric (the published summary's percentile against the same local percentile; samples per
second against samples per second; top-1 against top-1); the differences that decide whether
the comparison is fair — division, dataset size, engine, run length, compliance, status — are
said in words beside them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agent import zoo
from agent.errors import EdgeperfError
from controller.analysis.scorecard import ACCURACY_KPI, SCORED_MODES, TASK_KPI, Row, model_family
from controller.reference.benchmarks import facts
from controller.reference.rows import STATUS_TEXT, ReferenceRow

AUTO = "auto"


class ReferenceChoiceError(EdgeperfError):
    """``--reference`` names a benchmark no stored published row has, or none is stored at all."""


@dataclass(frozen=True)
class Pairing:
    """A local row and one published row of the same benchmark and scenario."""

    local: Row
    reference: ReferenceRow
    benchmark: str
    metric: str  # what is compared: "90th percentile latency", "samples/s", "top1"
    local_value: float | None
    published_value: float | None
    unit: str
    differences: str

    @property
    def ratio(self) -> float | None:
        """local ÷ published for a performance metric (None for accuracy, or where a side has no number)."""
        if self.local.mode in SCORED_MODES or self.local_value is None or not self.published_value:
            return None
        return self.local_value / self.published_value

    @property
    def difference_pp(self) -> float | None:
        """local − published for an accuracy in %, in percentage points (None otherwise)."""
        if self.local.mode not in SCORED_MODES or self.unit != "%" or self.local_value is None or self.published_value is None:
            return None
        return self.local_value - self.published_value

    def to_dict(self) -> dict[str, Any]:
        return {"local": self.local.to_dict(), "published": self.reference.to_dict(), "label": self.reference.label,
                "benchmark": self.benchmark, "metric": self.metric, "unit": self.unit, "local_value": self.local_value,
                "published_value": self.published_value, "ratio_local_over_published": self.ratio,
                "difference_pp": self.difference_pp,
                "differences": self.differences}


def benchmark_for(model: str, manifest: dict[str, Any] | None = None) -> str | None:
    """The MLPerf benchmark a zoo model's manifest entry names (``zoo:resnet50-v1.5/fp32.onnx`` ->
    ``resnet50``); None for a model outside the zoo or an entry that names none."""
    if not model.startswith(zoo.PREFIX):
        return None
    entry = (manifest if manifest is not None else zoo.manifest()).get("models", {}).get(model_family(model), {})
    benchmark = entry.get("benchmark") if isinstance(entry, dict) else None
    return benchmark if isinstance(benchmark, str) and benchmark else None


def stored_benchmarks(wanted: str, known: Iterable[str]) -> list[str]:
    """The stored benchmark names ``wanted`` means: itself, or its accuracy targets (``bert`` ->
    ``bert-99``, ``bert-99.9``). ``ReferenceChoiceError`` lists what is stored when nothing matches."""
    known = sorted(set(known))
    if wanted in known:
        return [wanted]
    variants = [k for k in known if k.startswith(f"{wanted}-")]
    if variants:
        return variants
    have = ", ".join(known) if known else "none yet"
    raise ReferenceChoiceError(f"no published {wanted!r} rows are stored (stored benchmarks: {have}); import a results "
                               "tree with 'edgeperf reference import PATH', or name one of those, or --reference auto")


def _local_metric(row: Row, ref: ReferenceRow) -> tuple[str, float | None, float | None, str]:
    """(metric, local value, published value, unit) in the same metric, for the row's mode."""
    if row.mode in SCORED_MODES:
        acc = ref.accuracy
        if acc is None:
            return "accuracy", None, None, ""
        if acc.metric == "top1":
            local = row.value(ACCURACY_KPI)
            return acc.metric, None if local is None else local * 100, acc.value, acc.unit
        task = row.cells.get(TASK_KPI)  # mAP (published in %), AUC (a fraction): the same metric only
        local = task.value if task is not None and task.method.split(":")[0] == acc.metric else None
        return acc.metric, None if local is None else local * (100 if acc.unit == "%" else 1), acc.value, acc.unit
    if ref.unit == "ms":
        found = re.match(r"(\d+)th percentile", ref.metric)
        key = f"latency_ms.p{found.group(1)}" if found else None
        return ref.metric, row.value(key) if key else None, ref.value, "ms"
    local = row.value("throughput_sps") if ref.unit in ("samples/s", "inferences/s") else None
    return ref.metric, local, ref.value, ref.unit


def _published_text(ref: ReferenceRow) -> str:
    parts = [f"{ref.division} division" + (" (the model may differ from the benchmark's)" if ref.division == "open" else "")]
    if ref.suite == "Tiny":
        parts.append("MLPerf Tiny (EEMBC runner, not LoadGen; median of 5 windows)")
    known = facts(ref.benchmark)
    scored = ref.accuracy.samples if ref.accuracy and ref.accuracy.samples else None
    if scored is None and known is not None and ref.division == "closed":  # closed rules: the whole dataset
        scored = known.samples
    if scored:
        noun = known.noun if known else "samples"
        dataset = f" {known.dataset}" if known else ""
        parts.append(f"{'full dataset' if ref.division == 'closed' else 'dataset'}{dataset} {scored:,} {noun}")
    parts.append(ref.framework or "framework not stated")
    if ref.accelerator:
        parts.append(f"{ref.accelerators}× {ref.accelerator}" if ref.accelerators else ref.accelerator)
    if ref.system_type and ref.system_type != "edge":
        parts.append(f"{ref.system_type} system")
    parts.append(STATUS_TEXT.get(ref.status, ref.status or "status not stated"))
    parts.append(ref.compliance_text())
    if ref.min_duration_ms:
        parts.append(f"min duration {ref.min_duration_ms / 1000:g} s")
    if ref.energy_mj_per_inference is not None:
        parts.append(f"energy {ref.energy_mj_per_inference:.4g} mJ/inference")
    if not ref.valid:
        parts.append("INVALID")
    return ", ".join(parts)


def _local_text(row: Row, ref: ReferenceRow, own: str | None) -> str:
    first = row.results[0]
    dataset = first.dataset
    if dataset is None or dataset.name == "synthetic":
        scored = "synthetic inputs (no dataset)"
    else:
        n = dataset.samples or (first.kpis.accuracy.n if first.kpis.accuracy else 0)
        scored = f"{n:,} samples of {dataset.name}" if n else dataset.name
    rt = first.runtime
    engine = "LoadGen" if first.engine == "loadgen" else "edgeperf's native engine (not LoadGen)"
    model = [] if own and (ref.benchmark == own or ref.benchmark.startswith(f"{own}-")) else [
        f"model {row.model}, not a zoo entry of {ref.benchmark} (another model: compare with care)"]
    parts = [*model, scored, f"{rt.name} {rt.version} {rt.accelerator.removesuffix('ExecutionProvider')}".strip(), engine,
             f"min duration {first.settings.effective.min_duration_ms / 1000:g} s", "no compliance tests"]
    if row.verdict != "VALID":
        parts.append(row.verdict)
    return ", ".join(parts)


def differences(row: Row, ref: ReferenceRow, own: str | None) -> str:
    """``published: closed division, full dataset … 50,000 images, TensorRT …; local: 1,000 samples of …, onnxruntime …``."""
    return f"published: {_published_text(ref)}; local: {_local_text(row, ref, own)}"


def select(references: Sequence[ReferenceRow], system: str | None) -> list[ReferenceRow]:
    """Published rows whose system, its name or its submitter contains ``system`` (any case); all for None."""
    if not system:
        return list(references)
    needle = system.lower()
    return [r for r in references if needle in f"{r.system} {r.system_name} {r.submitter}".lower()]


def pair(rows: Sequence[Row], references: Sequence[ReferenceRow], choice: str,
         manifest: dict[str, Any] | None = None) -> tuple[list[Pairing], list[str]]:
    """Every local row beside each published row of its benchmark and scenario, and a note for each
    row left without one (no benchmark for its model, or nothing published stored for it).

    ``choice`` is a benchmark name (every row is that benchmark) or ``auto`` (each row's zoo entry
    names it). A named benchmark that nothing stored matches is a ``ReferenceChoiceError``."""
    known = {r.benchmark for r in references}
    named = None if choice == AUTO else stored_benchmarks(choice, known)
    pairs: list[Pairing] = []
    notes: list[str] = []
    for row in rows:
        found = benchmark_for(row.model, manifest)  # the row's own benchmark, from its zoo entry
        if named is not None:
            benchmarks = named
        elif found is None:
            notes.append(f"{row.label}: its model names no MLPerf benchmark (no 'benchmark' in its zoo entry); "
                         "pass --reference BENCHMARK to say which it is")
            continue
        else:
            benchmarks = [b for b in known if b == found or b.startswith(f"{found}-")]
        matches = [r for r in references if r.benchmark in benchmarks and r.scenario == row.scenario]
        if not matches:
            notes.append(f"{row.label}: no published {'/'.join(benchmarks) or found} {row.scenario} row is stored")
            continue
        for ref in matches:
            metric, local, published, unit = _local_metric(row, ref)
            pairs.append(Pairing(row, ref, ref.benchmark, metric, local, published, unit, differences(row, ref, found)))
    return pairs, notes
