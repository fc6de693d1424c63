"""Accuracy per group and the largest gap between groups, with intervals that hold for the gap reported.

A model can be accurate on average and poor for one group of inputs (a dialect, a skin tone, a
lighting condition). Where the data names a group for each sample, each group's accuracy gets its
Wilson interval and the largest gap (best group − worst group) gets an interval for the difference
of two independent proportions: Newcombe's hybrid score interval (method 10, Stat Med 1998 17:873),
built from the two groups' Wilson intervals.

The reported pair is chosen *after* looking (the best and the worst of k groups), so a plain 95 %
interval for that pair would cover the largest true gap less often than it says. Each Wilson interval
is therefore taken at the Bonferroni level for all k(k−1)/2 pairs, 1 − 0.05 / (k(k−1)/2): every pair's
interval then holds together with 95 % confidence, the chosen pair's included (checked by simulation
in the tests). With two groups this is the plain 95 % interval.

Without groups, the same arithmetic over the classes (each class's recall: the share of its samples
classified right) measures *class balance*: how evenly the model serves the classes the dataset has.
That is not fairness — classes are what the model predicts, groups are who or what the inputs come
from — and the result labels it so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from agent.errors import DatasetError
from agent.stats import wilson_interval


def pair_confidence(groups: int) -> float:
    """Each pair's confidence when every one of the k(k−1)/2 pairs must hold together at 95 % (Bonferroni)."""
    return 1 - 0.05 / max(1, groups * (groups - 1) // 2)


def _z(groups: int) -> float:
    return NormalDist().inv_cdf(1 - (1 - pair_confidence(groups)) / 2)


def newcombe_difference(a: tuple[int, int], b: tuple[int, int], z: float) -> tuple[float, float]:
    """Newcombe's method 10 interval for p_a − p_b, from ``(successes, n)`` of two independent samples."""
    (sa, na), (sb, nb) = a, b
    pa, pb = sa / na, sb / nb
    la, ua = wilson_interval(sa, na, z)
    lb, ub = wilson_interval(sb, nb, z)
    diff = pa - pb
    return (diff - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2), diff + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2))


def gap_report(successes: Sequence[int], totals: Sequence[int], names: Sequence[str]) -> dict[str, Any]:
    """Each group's share right with its 95 % Wilson interval, and the largest gap with an interval that
    holds for the pair it names (Bonferroni over every pair, see the module)."""
    if not (len(successes) == len(totals) == len(names)) or not names:
        raise DatasetError("a gap needs one success count, one total and one name per group, and at least one group")
    if any(n <= 0 for n in totals) or any(not 0 <= s <= n for s, n in zip(successes, totals, strict=True)):
        raise DatasetError("every group needs at least one sample and at most as many successes as samples")
    rates = [s / n for s, n in zip(successes, totals, strict=True)]
    per_group = [{"name": name, "n": n, "correct": s, "rate": rate, "ci95": list(wilson_interval(s, n))}
                 for name, s, n, rate in zip(names, successes, totals, rates, strict=True)]
    out: dict[str, Any] = {"groups": per_group, "gap": None, "gap_ci": None, "best": None, "worst": None,
                           "method": "Wilson 95 % per group; gap: Newcombe hybrid score, Bonferroni over all pairs"}
    if len(names) >= 2:
        best, worst = int(np.argmax(rates)), int(np.argmin(rates))
        z = _z(len(names))
        lo, hi = newcombe_difference((successes[best], totals[best]), (successes[worst], totals[worst]), z)
        out.update(gap=rates[best] - rates[worst], gap_ci=[lo, hi], best=names[best], worst=names[worst],
                   confidence_each_pair=pair_confidence(len(names)))
    return out


def by_group(correct: np.ndarray, groups: Sequence[str]) -> dict[str, Any]:
    """``gap_report`` of per-sample correctness split by each sample's group (``--groups``): fairness."""
    correct = np.asarray(correct, dtype=bool)
    groups = np.asarray(groups, dtype=str)
    if correct.shape != groups.shape:
        raise DatasetError(f"{groups.size} group names for {correct.size} scored samples; give one group per sample")
    names = sorted(set(groups.tolist()))
    report = gap_report([int(correct[groups == g].sum()) for g in names], [int((groups == g).sum()) for g in names], names)
    return report | {"kind": "fairness: accuracy per group"}


def class_balance(predicted: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """``gap_report`` of each class's recall: class balance, not fairness (see the module)."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    classes = sorted(set(labels.tolist()))
    report = gap_report([int((predicted[labels == c] == c).sum()) for c in classes],
                        [int((labels == c).sum()) for c in classes], [str(c) for c in classes])
    return report | {"kind": "class balance: recall per class (not fairness: classes are outputs, not groups of inputs)"}
