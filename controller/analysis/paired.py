"""Accuracy with each sample counted once, and accuracy differences paired sample by sample.

An int8 model and its fp32 reference score the same images, and two devices of a fleet row score
the same images too. Treating those as independent samples is wrong both ways: a fleet's 1,000
images scored twice are not 2,000 samples (too narrow an interval), and an int8-vs-fp32
difference taken as two independent samples ignores that both models get mostly the same images
right (far too wide: the zoo's int8 LiteRT CNN against its fp32 ONNX on the 1,000 committed
images, on an x86 CPU, is +0.2 pp [−2.6, 3.0] unpaired and [−0.45, 0.86] paired, with 8 of the
1,000 pairs discordant).
Results of newer agents say which samples were right (``correct_bits``) and which samples those
are (``samples_sha256``); this module uses them, and falls back honestly where they are absent.

``pooled`` — one row's accuracy. Runs over the same samples (one fingerprint) count each sample
once, at its mean correctness over those runs; runs over different samples add up. A run without
a fingerprint (an older agent) is taken to have scored the same samples as the first
fingerprinted run of its size, else as the other fingerprint-less runs of its size: counting
samples once too often only widens the interval, counting them twice makes it falsely narrow.
The interval is Wilson's at n = the distinct samples, which is exact in form when the runs
agree sample by sample (they do on one device and runtime) and conservative when they do not: a
per-sample mean in [0, 1] varies at most as much as a 0/1 outcome of the same mean.

``delta`` — new minus reference. When every run on both sides carries its per-sample record over
the same datasets, the samples are paired: Newcombe's hybrid score interval for paired data
(Newcombe 1998, "Improved confidence intervals for the difference between binomial proportions
based on paired data", Stat Med 17:2635, method 10, with its φ correction) and the exact McNemar
test (a two-sided binomial test of the discordant pairs at ½). Otherwise the two sides are taken
as independent: Newcombe's method 10 for independent proportions (Stat Med 17:873) over each
side's ``pooled`` accuracy, with the pooled two-proportion z test. A side whose runs disagree on a
sample enters the paired table at its mean correctness there: the table holds the expected
counts of drawing one run per side (fractional), and McNemar's test takes the discordant counts
rounded to whole pairs.

Why Newcombe's paired interval and not a paired bootstrap: simulated over n = 200, 500, 1000,
2000, accuracy 0.70, 0.85, 0.95, 1, 3, 5 % of samples discordant, split evenly, 1:3 or all one
way (4,000 tables a setting; ``tests/test_paired.py`` repeats it with 3,000, without n = 500),
Newcombe's 95 % interval covers the true difference in 93.5-99.9 % of tables in every setting
(the least where every discordant pair goes one way at n = 200: 93.9 % there with 40,000 tables;
over 99 % where only a handful of pairs are discordant). A percentile bootstrap of the same
pairs (1,000 resamples) covered 72.8-98.9 %: it collapses to a point when no pair is
discordant, at n = 200 and 1 % discordance one table in seven, and runs short whenever
discordant pairs are few.

scipy (the controller's statistics library, as for Student's t in ``intervals``) gives the exact
binomial tail and the normal one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from agent.accuracy import unpack_correctness
from agent.contract import Accuracy
from agent.stats import newcombe_paired, wilson_interval  # newcombe_paired: re-exported, the agent scores robustness with it

PAIRED = "Newcombe paired (1998, method 10)"
UNPAIRED = "Newcombe unpaired (1998, method 10)"
RUN_MEANS = ", mean of runs per sample"


@dataclass(frozen=True)
class PooledAccuracy:
    """One row's accuracy, each distinct sample of a dataset counted once, with Wilson's 95 % interval.

    ``method``: ``wilson`` (one run per dataset), ``wilson, mean of runs per sample`` (several runs
    over the same samples, each sample counted once) or ``wilson, same-size runs as one`` (runs
    without a fingerprint taken to have scored the same samples as others of their size)."""

    value: float
    lo: float
    hi: float
    samples: int  # distinct samples: the n of the interval
    runs: int
    method: str


@dataclass(frozen=True)
class AccuracyDelta:
    """New minus reference accuracy, as fractions (not pp), with its 95 % interval.

    ``paired``: the same samples' per-sample correctness was used; then ``p_value`` is the exact
    McNemar test, ``n`` the samples both sides scored and ``discordant`` the pairs (new right and
    reference wrong, new wrong and reference right). Unpaired, ``p_value`` is the pooled
    two-proportion z test, ``n`` the distinct samples of both sides together, ``discordant`` None."""

    delta: float
    lo: float
    hi: float
    paired: bool
    method: str
    p_value: float
    n: int
    discordant: tuple[int, int] | None


def _scored(blocks: Sequence[Accuracy]) -> list[Accuracy]:
    return [b for b in blocks if b.n > 0]


def _correct(block: Accuracy) -> int:
    """Samples a run got right (older results carry only top-1)."""
    return block.correct if block.correct is not None else round(block.top1 * block.n)


def by_dataset(blocks: Sequence[Accuracy]) -> dict[str | int, list[Accuracy]]:
    """Runs grouped by the samples they scored: their fingerprint, else their size (see the module doc)."""
    groups: dict[str | int, list[Accuracy]] = {}
    for block in blocks:
        if block.samples_sha256 is not None:
            groups.setdefault(block.samples_sha256, []).append(block)
    for fingerprint, group in groups.items():
        if len({b.n for b in group}) > 1:
            raise ValueError(f"runs over samples {fingerprint[:12]}… disagree on their number: {sorted({b.n for b in group})}")
    for block in blocks:
        if block.samples_sha256 is None:
            same_size = [fp for fp, group in groups.items() if isinstance(fp, str) and group[0].n == block.n]
            groups.setdefault(same_size[0] if same_size else block.n, []).append(block)
    return groups


def pooled(blocks: Sequence[Accuracy]) -> PooledAccuracy | None:
    """The accuracy of a row's runs, each distinct sample counted once; None when no run scored a sample."""
    scored = _scored(blocks)
    if not scored:
        return None
    groups = by_dataset(scored)
    correct = sum(sum(_correct(b) for b in group) / len(group) for group in groups.values())
    samples = sum(group[0].n for group in groups.values())
    lo, hi = wilson_interval(correct, samples)
    method = "wilson"
    if any(len(group) > 1 for group in groups.values()):
        guessed = any(len(group) > 1 and any(b.samples_sha256 is None for b in group) for group in groups.values())
        method = "wilson, same-size runs as one" if guessed else "wilson, mean of runs per sample"
    return PooledAccuracy(correct / samples, lo, hi, samples, len(scored), method)


class _Table(NamedTuple):
    """The paired 2×2 table: both right, new right only, reference right only, both wrong."""

    a: float
    b: float
    c: float
    d: float
    runs_agree: bool  # every side's runs agree sample by sample: the counts are whole pairs


def mean_correctness(group: Sequence[Accuracy]) -> np.ndarray:
    """Each sample's correctness averaged over the runs that scored it (0 or 1 where they agree)."""
    return np.mean([unpack_correctness(bits, b.n) for b in group if (bits := b.correct_bits) is not None], axis=0)


def _paired_table(new: Sequence[Accuracy], reference: Sequence[Accuracy]) -> _Table | None:
    """The table over the samples both sides scored, or None unless every run carries its
    per-sample record and both sides scored the same datasets."""
    new, reference = _scored(new), _scored(reference)
    if any(b.correct_bits is None for b in (*new, *reference)):
        return None
    ours, theirs = by_dataset(new), by_dataset(reference)
    if ours.keys() != theirs.keys():
        return None
    tables = []
    for fingerprint, group in ours.items():
        x, y = mean_correctness(group), mean_correctness(theirs[fingerprint])
        if x.size != y.size:
            raise ValueError(f"samples {str(fingerprint)[:12]}… number {x.size} on one side and {y.size} on the other")
        tables.append(_table(x, y))
    return _Table(*(sum(t[i] for t in tables) for i in range(4)), all(t.runs_agree for t in tables))


def _table(x: np.ndarray, y: np.ndarray) -> _Table:
    """The paired table of two sides' per-sample correctness over the same samples in the same order."""
    agree = bool(np.all((x == 0) | (x == 1)) and np.all((y == 0) | (y == 1)))
    return _Table(float(np.dot(x, y)), float(np.dot(x, 1 - y)), float(np.dot(1 - x, y)), float(np.dot(1 - x, 1 - y)), agree)


def _paired_delta(table: _Table, n_distinct: int) -> AccuracyDelta:
    a, b, c, d, agree = table
    lo, hi = newcombe_paired(a, b, c, d)
    discordant = (round(b), round(c))
    method = PAIRED if agree else PAIRED + RUN_MEANS
    return AccuracyDelta((b - c) / (a + b + c + d), lo, hi, True, method, mcnemar_exact(*discordant), n_distinct, discordant)


def delta_of_samples(new: np.ndarray, reference: np.ndarray) -> AccuracyDelta:
    """``new`` minus ``reference`` accuracy from each side's correctness per sample (0/1, or a mean over
    runs in [0, 1]) over the same samples in the same order: the paired interval, whatever the samples'
    fingerprints (a robustness run's clean and corrupted samples differ in content, not in order)."""
    if new.shape != reference.shape or new.size == 0:
        raise ValueError(f"paired sides of {new.size} and {reference.size} samples")
    return _paired_delta(_table(new, reference), int(new.size))


def newcombe_unpaired(x1: float, n1: int, x2: float, n2: int) -> tuple[float, float]:
    """95 % interval of x1/n1 − x2/n2 for independent samples: Newcombe (1998) method 10 (square-and-add Wilson)."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError(f"a difference of proportions needs samples on both sides, not {n1} and {n2}")
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1)
    l2, u2 = wilson_interval(x2, n2)
    return p1 - p2 - math.hypot(p1 - l1, u2 - p2), p1 - p2 + math.hypot(u1 - p1, p2 - l2)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of ``b`` among ``b + c`` discordant pairs at ½."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be whole and non-negative, not {b} and {c}")
    if b + c == 0:
        return 1.0
    from scipy import stats

    return float(stats.binomtest(b, b + c, 0.5).pvalue)


def two_proportion_p(x1: float, n1: int, x2: float, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z test (independent samples)."""
    pooled_p = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled_p * (1 - pooled_p) * (1 / n1 + 1 / n2))
    if se == 0:  # both sides all right or all wrong: no difference to test
        return 1.0
    from scipy import stats

    return float(2 * stats.norm.sf(abs(x1 / n1 - x2 / n2) / se))


def delta(new: Sequence[Accuracy], reference: Sequence[Accuracy]) -> AccuracyDelta | None:
    """``new`` minus ``reference`` accuracy (a row's runs each): paired where the samples allow it,
    else as independent samples, labelled so; None when either side scored nothing."""
    ours, theirs = pooled(new), pooled(reference)
    if ours is None or theirs is None:
        return None
    table = _paired_table(new, reference)
    if table is None:
        x1, x2 = ours.value * ours.samples, theirs.value * theirs.samples
        lo, hi = newcombe_unpaired(x1, ours.samples, x2, theirs.samples)
        p = two_proportion_p(x1, ours.samples, x2, theirs.samples)
        return AccuracyDelta(ours.value - theirs.value, lo, hi, False, UNPAIRED, p, ours.samples + theirs.samples, None)
    return _paired_delta(table, ours.samples)
