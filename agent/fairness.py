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


METHOD = "Wilson 95 % per group; gap: Newcombe hybrid score (method 10), each pair at the Bonferroni level over all pairs"


def gap_report(successes: Sequence[int], totals: Sequence[int], names: Sequence[str], kind: str = "fairness",
               recall_macro: Sequence[float] | None = None) -> dict[str, Any]:
    """A ``contract.GroupGap`` block: each group's share right with its 95 % Wilson interval (and, for
    fairness, its macro recall), and the largest gap with an interval that holds for the pair it names
    (Bonferroni over every pair, see the module)."""
    if not (len(successes) == len(totals) == len(names)) or not names:
        raise DatasetError("a gap needs one success count, one total and one name per group, and at least one group")
    if any(n <= 0 for n in totals) or any(not 0 <= s <= n for s, n in zip(successes, totals, strict=True)):
        raise DatasetError("every group needs at least one sample and at most as many successes as samples")
    rates = [s / n for s, n in zip(successes, totals, strict=True)]
    per_group = [{"name": name, "n": int(n), "correct": int(s), "rate": rate, "ci95": list(wilson_interval(s, n))}
                 for name, s, n, rate in zip(names, successes, totals, rates, strict=True)]
    if recall_macro is not None:
        for group, recall in zip(per_group, recall_macro, strict=True):
            group["recall_macro"] = float(recall)
    out: dict[str, Any] = {"kind": kind, "groups": per_group, "method": METHOD, "gap": None, "gap_ci95": None,
                           "best": None, "worst": None, "confidence_each_pair": None}
    if len(names) >= 2:
        best, worst = int(np.argmax(rates)), int(np.argmin(rates))
        z = _z(len(names))
        lo, hi = newcombe_difference((successes[best], totals[best]), (successes[worst], totals[worst]), z)
        out.update(gap=rates[best] - rates[worst], gap_ci95=[max(-1.0, lo), min(1.0, hi)], best=names[best],
                   worst=names[worst], confidence_each_pair=pair_confidence(len(names)))
    return out


def by_group(predicted: np.ndarray, labels: np.ndarray, groups: Sequence[str], source: str = "") -> dict[str, Any]:
    """Fairness: ``gap_report`` of accuracy per group of inputs (``--groups``: one group per scored sample, in
    the same order as ``predicted`` and ``labels``), each group with its macro recall (the mean recall over
    the classes its samples have). Samples whose group is "" are left out and counted in ``ungrouped``."""
    predicted, labels = np.asarray(predicted, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    groups = np.asarray(groups, dtype=str)
    if not (predicted.shape == labels.shape == groups.shape):
        raise DatasetError(f"{groups.size} group names for {labels.size} scored samples; give one group per sample")
    grouped = groups != ""
    if not grouped.any():
        raise DatasetError(f"none of the {labels.size} scored samples has a group; give a groups file that names the "
                           "group of the samples scored")
    names, member = np.unique(groups[grouped], return_inverse=True)  # sorted names; each grouped sample's group
    right = predicted[grouped] == labels[grouped]
    totals, correct = np.bincount(member), np.bincount(member, weights=right)
    # macro recall per group, over (group, class) pairs: no k-groups × n-samples masks
    stride = int(labels.max(initial=0)) + 1
    pair, pair_of = np.unique(member * stride + labels[grouped], return_inverse=True)
    recall = np.bincount(pair_of, weights=right) / np.bincount(pair_of)
    pair_group = pair // stride
    recall_macro = np.bincount(pair_group, weights=recall) / np.bincount(pair_group)
    report = gap_report([int(c) for c in correct], [int(t) for t in totals], names.tolist(), kind="fairness",
                        recall_macro=recall_macro.tolist())
    return report | {"ungrouped": int((~grouped).sum()), "source": source}


def class_balance(predicted: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Class balance, not fairness (see the module): ``gap_report`` of each labelled class's recall, the
    groups named by class id."""
    predicted, labels = np.asarray(predicted, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    support = np.bincount(labels)
    right = np.bincount(labels[predicted == labels], minlength=support.size)
    classes = np.flatnonzero(support)
    report = gap_report(right[classes].tolist(), support[classes].tolist(), [str(c) for c in classes],
                        kind="class balance")
    return report | {"ungrouped": 0, "source": "the dataset's labels: recall per class (not fairness: classes are "
                                                "what the model predicts, not groups of inputs)"}
