"""Robustness curves: each variant's accuracy under every corruption and severity, its drop from
clean, and a quantised variant set against its fp32 reference under the same corruption.

A robustness run (``--mode robustness``, ``agent.robustness``) scores the same samples clean and
corrupted and sends, for each, which samples were right. Everything here is recomputed from those
per-sample bits rather than read from the agent's own summary, so repeats pool (each sample once,
its correctness averaged over the runs, as ``paired.pooled`` does) and two variants pair:

- **drop** (clean − corrupted, pp): the same run's clean and corrupted samples are the same
  samples in the same order, so the difference is paired (``paired.delta_of_samples``:
  Newcombe's paired interval), whatever the two sets' fingerprints.
- **vs fp32** (variant − fp32 under one corruption and severity, pp): the corruptions are
  deterministic per sample, so two variants fed the same data see identical corrupted samples
  (equal ``samples_sha256``) and ``paired.delta`` pairs them; otherwise it says it did not.
- **means over corruptions**: each sample's correctness averaged over every corruption and
  severity scored (the mean corruption accuracy is the mean of those), and the drop and the
  difference from fp32 as per-sample differences of such means: Student's t 95 % interval over
  the samples (the samples are the independent draws; the corruptions of one sample are not).

This is what lets the scorecard say "int8 loses 0.2 pp clean but 4 pp under noise" with an
interval on both numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.contract import Accuracy, Result
from agent.stats import mean_interval_t
from controller.analysis import paired
from controller.analysis.scorecard import Cell, Row

MODE = "robustness"
CLEAN = ("clean", 0)  # the clean samples' point: severity 0
MEAN_METHOD = "Student's t over samples of the per-sample mean over corruptions"


@dataclass
class Curve:
    """One scorecard row's robustness: clean and each (corruption, severity) point, and the means.

    ``top1`` per point (fractions, Wilson), ``drop`` per point (pp, paired with clean), ``vs_reference``
    per point (pp, this variant − the fp32 variant of the same model on the same device), ``mean`` and
    ``mean_drop`` / ``mean_vs_reference`` over the corruptions. ``left_out``: runs not pooled because
    they scored other clean samples than the row's most common set."""

    row: Row
    family: str
    points: list[tuple[str, int]]
    top1: dict[tuple[str, int], Cell]
    drop: dict[tuple[str, int], Cell]
    mean: Cell
    mean_drop: Cell
    reference: Curve | None = None
    vs_reference: dict[tuple[str, int], Cell] = field(default_factory=dict)
    mean_vs_reference: Cell | None = None
    left_out: int = 0
    _clean: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    _corrupted: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False)
    _blocks: dict[tuple[str, int], list[Accuracy]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        def cells(by: dict[tuple[str, int], Cell]) -> list[dict[str, Any]]:
            return [{"corruption": c, "severity": s} | by[(c, s)].to_dict() for c, s in (CLEAN, *self.points) if (c, s) in by]

        return {"device": self.row.device, "model": self.row.model, "precision": self.row.precision,
                "runtime": self.row.runtime, "threads": self.row.threads, "family": self.family,
                "runs": self.row.runs - self.left_out, "left_out_runs": self.left_out,
                "top1": cells(self.top1), "drop_pp": cells(self.drop), "mean_top1": self.mean.to_dict(),
                "mean_drop_pp": self.mean_drop.to_dict(),
                "reference": None if self.reference is None else self.reference.row.model,
                "vs_reference_pp": cells(self.vs_reference),
                "mean_vs_reference_pp": None if self.mean_vs_reference is None else self.mean_vs_reference.to_dict()}


def _t_cell(values: np.ndarray, scale: float, runs: int) -> Cell:
    """The mean of per-sample values with Student's t 95 % interval (``scale``: 100 for pp), as the agent's own."""
    mean = float(values.mean())
    if values.size < 2:
        return Cell(mean * scale, None, None, runs, "one sample: no interval")
    lo, hi = mean_interval_t(values)
    return Cell(mean * scale, lo * scale, hi * scale, runs, MEAN_METHOD)


def _delta_cell(d: paired.AccuracyDelta, runs: int) -> Cell:
    return Cell(d.delta * 100, d.lo * 100, d.hi * 100, runs, d.method)


def _curve(row: Row) -> Curve | None:
    """The row's curve from the runs that carry a robustness block over its most common clean samples."""
    runs = [r for r in row.results if r.kpis.robustness is not None and r.kpis.accuracy is not None
            and r.kpis.accuracy.correct_bits is not None]
    if not runs:
        return None
    common, _ = Counter(r.kpis.accuracy.samples_sha256 for r in runs).most_common(1)[0]
    kept = [r for r in runs if r.kpis.accuracy.samples_sha256 == common]
    points = sorted({(s.corruption, s.severity) for s in kept[0].kpis.robustness.scores})
    points = [p for p in points if all(_score(r, p) is not None for r in kept)]  # scored by every pooled run
    clean_blocks = [r.kpis.accuracy for r in kept]
    x = paired.mean_correctness(clean_blocks)
    pooled_clean = paired.pooled(clean_blocks)
    top1 = {CLEAN: Cell(pooled_clean.value, pooled_clean.lo, pooled_clean.hi, len(kept), pooled_clean.method)}
    drop: dict[tuple[str, int], Cell] = {}
    corrupted: dict[tuple[str, int], np.ndarray] = {}
    blocks: dict[tuple[str, int], list[Accuracy]] = {}
    for point in points:
        blocks[point] = [_score(r, point).accuracy for r in kept]
        pooled = paired.pooled(blocks[point])
        top1[point] = Cell(pooled.value, pooled.lo, pooled.hi, len(kept), pooled.method)
        corrupted[point] = paired.mean_correctness(blocks[point])
        drop[point] = _delta_cell(paired.delta_of_samples(x, corrupted[point]), len(kept))
    if points:
        means = np.mean([corrupted[p] for p in points], axis=0)
        mean, mean_drop = _t_cell(means, 1.0, len(kept)), _t_cell(x - means, 100.0, len(kept))
    else:
        mean = mean_drop = Cell(None, method="no corruption scored by every run")
    return Curve(row, kept[0].kpis.robustness.family, points, top1, drop, mean, mean_drop, left_out=row.runs - len(kept),
                 _clean=x, _corrupted=corrupted, _blocks={CLEAN: clean_blocks} | blocks)


def _score(result: Result, point: tuple[str, int]) -> Any:
    return next((s for s in result.kpis.robustness.scores if (s.corruption, s.severity) == point), None)


def _against(curve: Curve, ref: Curve) -> None:
    """``curve`` − ``ref`` at every point both scored: paired where the samples are the same (``paired.delta``)."""
    curve.reference = ref
    shared = [p for p in (CLEAN, *curve.points) if p in ref._blocks]
    for point in shared:
        if (d := paired.delta(curve._blocks[point], ref._blocks[point])) is not None:
            curve.vs_reference[point] = _delta_cell(d, curve.row.runs - curve.left_out)
    corrupt = [p for p in curve.points if p in ref._corrupted and ref._corrupted[p].size == curve._corrupted[p].size]
    same = all(curve._blocks[p][0].samples_sha256 == ref._blocks[p][0].samples_sha256 for p in corrupt)
    if corrupt and same and len(corrupt) == len(curve.points) == len(ref.points):
        diff = np.mean([curve._corrupted[p] for p in corrupt], axis=0) - np.mean([ref._corrupted[p] for p in corrupt], axis=0)
        curve.mean_vs_reference = _t_cell(diff, 100.0, curve.row.runs - curve.left_out)


def curves(rows: Sequence[Row]) -> list[Curve]:
    """The robustness curve of every robustness row that has one, each non-fp32 variant set against
    the fp32 variant of its model on the same device and scenario."""
    out = [c for row in rows if row.mode == MODE and (c := _curve(row)) is not None]
    references = {(c.row.device, c.row.family, c.row.scenario): c for c in out if c.row.precision == "fp32"}
    for curve in out:
        ref = references.get((curve.row.device, curve.row.family, curve.row.scenario))
        if ref is not None and ref is not curve:
            _against(curve, ref)
    return sorted(out, key=lambda c: (c.row.device, c.row.family, c.row.precision != "fp32", c.row.model))
