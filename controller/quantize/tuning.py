"""Accuracy-aware tuning: fall operators back to float, the most sensitive first, until the budget holds.

The same loop serves every format; a format only says how to build a variant with a given set of
operators left in float (``build``) and which operators it quantised (``candidates``). It is the
search Intel Neural Compressor's "basic" strategy makes, measured on the real runtime:

1. quantise everything and score it; done when the drop from the float source is within budget;
2. otherwise measure each operator's sensitivity one by one — the variant with only that
   operator in float — ranked by the top-1 it wins back, ties broken by how close its outputs
   come to the source's (mean squared difference over the evaluation samples: finer than top-1
   on a small set);
3. fall back the ranked operators cumulatively, one more per trial, until the drop fits or
   nothing is left to try (or ``max_trials`` is spent). When nothing fits, the best variant
   (highest top-1, then fewest operators in float) is kept and the miss is reported.

The drop is the point estimate on the evaluation samples, source minus variant, in percentage
points; its paired interval is reported with the variant, not used to decide (with 1,000 samples
it is about ±0.5 pp wide, and a rule on its bound would refuse every variant of a small set).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.quantize.samples import Scored


@dataclass(frozen=True)
class Trial:
    """One built and scored variant."""

    float_ops: tuple[str, ...]
    path: Path
    scored: Scored

    def drop_pp(self, reference: Scored) -> float:
        return (reference.top1 - self.scored.top1) * 100


@dataclass
class Outcome:
    """What tuning kept: the best trial, whether it meets the budget, how many variants were built,
    and whether ``max_trials`` cut the search short."""

    best: Trial
    met: bool
    trials: int
    stopped_by_limit: bool = False


def _closeness(scored: Scored, reference: Scored) -> float:
    return float(np.mean((scored.outputs - reference.outputs) ** 2))


def _rank(trial: Trial) -> tuple[float, int]:
    """Better trials rank higher: more accurate, then fewer operators in float."""
    return trial.scored.top1, -len(trial.float_ops)


def tune(build: Callable[[tuple[str, ...], Path], None], candidates: Sequence[str], score: Callable[[Path], Scored],
         reference: Scored, budget_pp: float | None, workdir: Path, suffix: str, first_built: Path, max_trials: int = 200,
         log: Callable[[str], None] = lambda _line: None) -> Outcome:
    """Build and score variants (files ending in ``suffix``) in ``workdir`` until one is within ``budget_pp``
    of ``reference`` (None: keep the fully quantised one, ``first_built``). Only the best trial so far keeps its file
    and its outputs: a model per trial would fill a disk, and a large evaluation set's outputs memory.

    The trial that first fits is the best so far: every earlier trial missed the budget, so scored
    lower; after the singles, the best is the most sensitive operator alone (the first cumulative
    step) or the fully quantised model. Among equals the best keeps fewer operators in float."""
    made = 0
    best: Trial | None = None

    def trial(float_ops: tuple[str, ...]) -> Trial:
        nonlocal made, best
        path = first_built if not float_ops else workdir / f"trial-{made:03d}{suffix}"
        made += 1
        if float_ops:  # the fully quantised model was built already, to find the candidates
            build(float_ops, path)
        this = Trial(float_ops, path, score(path))
        if best is None or _rank(this) > _rank(best):
            if best is not None:
                best.path.unlink(missing_ok=True)
            best = this
        else:
            path.unlink(missing_ok=True)
        return this

    def fits(t: Trial) -> bool:
        return budget_pp is None or t.drop_pp(reference) <= budget_pp + 1e-9

    first = trial(())
    log(f"all operators quantised: top-1 {first.scored.top1:.4f} ({-first.drop_pp(reference):+.2f} pp)")
    if fits(first):
        return Outcome(first, True, made)
    singles: dict[str, tuple[float, float]] = {}  # operator -> (top-1 pp it wins back alone, output distance)
    for op in candidates:
        if made >= max_trials:
            return Outcome(best, False, made, stopped_by_limit=True)
        alone = trial((op,))
        singles[op] = ((alone.scored.top1 - first.scored.top1) * 100, _closeness(alone.scored, reference))
        log(f"sensitivity of {op}: {singles[op][0]:+.2f} pp in float")
    if fits(best):  # the first cumulative step is the most sensitive operator alone: already built
        return Outcome(best, True, made)
    ranked = sorted(singles, key=lambda op: (-singles[op][0], singles[op][1]))
    for k in range(2, len(ranked) + 1):
        if made >= max_trials:
            return Outcome(best, False, made, stopped_by_limit=True)
        this = trial(tuple(ranked[:k]))
        log(f"{k} operators in float: top-1 {this.scored.top1:.4f} ({-this.drop_pp(reference):+.2f} pp)")
        if fits(this):
            return Outcome(best, True, made)
    return Outcome(best, False, made)
