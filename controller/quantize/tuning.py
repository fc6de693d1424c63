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
from dataclasses import dataclass, field
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
    """What tuning kept: the chosen trial, whether it meets the budget, and every trial made."""

    best: Trial
    met: bool
    trials: list[Trial] = field(default_factory=list)
    sensitivity: list[tuple[str, float]] = field(default_factory=list)  # operator, top-1 pp won back alone
    stopped_by_limit: bool = False


def _closeness(scored: Scored, reference: Scored) -> float:
    return float(np.mean((scored.outputs - reference.outputs) ** 2))


def tune(build: Callable[[tuple[str, ...], Path], None], candidates: Sequence[str], score: Callable[[Path], Scored],
         reference: Scored, budget_pp: float | None, workdir: Path, suffix: str, max_trials: int = 200,
         log: Callable[[str], None] = lambda _line: None) -> Outcome:
    """Build and score variants (files ending in ``suffix``) in ``workdir`` until one is within ``budget_pp`` of ``reference``
    (None: keep the fully quantised one, score it, try nothing else)."""
    trials: list[Trial] = []

    def trial(float_ops: tuple[str, ...]) -> Trial:
        path = workdir / f"trial-{len(trials):03d}{suffix}"
        build(float_ops, path)
        made = Trial(float_ops, path, score(path))
        trials.append(made)
        return made

    def fits(t: Trial) -> bool:
        return budget_pp is None or t.drop_pp(reference) <= budget_pp + 1e-9

    first = trial(())
    log(f"all operators quantised: top-1 {first.scored.top1:.4f} ({-first.drop_pp(reference):+.2f} pp)")
    if fits(first):
        return Outcome(first, True, trials)
    sensitivity = []
    for op in candidates:
        if len(trials) >= max_trials:
            return _settle(trials, [(op, gain) for op, gain, _ in sensitivity], stopped=True)
        alone = trial((op,))
        sensitivity.append((op, (alone.scored.top1 - first.scored.top1) * 100, _closeness(alone.scored, reference)))
        log(f"sensitivity of {op}: {sensitivity[-1][1]:+.2f} pp in float")
    ranked = [op for op, _gain, _close in sorted(sensitivity, key=lambda s: (-s[1], s[2]))]
    gains = [(op, gain) for op, gain, _ in sensitivity]
    singles = {t.float_ops: t for t in trials if len(t.float_ops) == 1}
    for k in range(1, len(ranked) + 1):
        ops = tuple(ranked[:k])
        if k == 1:
            made = singles[ops]
        elif len(trials) >= max_trials:
            return _settle(trials, gains, stopped=True)
        else:
            made = trial(ops)
            log(f"{k} operators in float: top-1 {made.scored.top1:.4f} ({-made.drop_pp(reference):+.2f} pp)")
        if fits(made):
            return Outcome(made, True, trials, gains)
    return _settle(trials, gains, stopped=False)


def _settle(trials: list[Trial], sensitivity: list[tuple[str, float]], stopped: bool) -> Outcome:
    """Nothing fitted: keep the most accurate trial, then the one with fewest operators in float."""
    best = max(trials, key=lambda t: (t.scored.top1, -len(t.float_ops)))
    return Outcome(best, False, trials, sensitivity, stopped)
