"""Precision, recall and F1 per class and macro-averaged, with 95 % intervals, for a scorecard row.

Why: top-1 hides which classes a model gets wrong. An int8 model can keep its top-1 while one
class collapses, and a class the model never predicts scores 0 precision; per-class figures
show that, macro averages weigh each class the same whatever its size. The agent already sends
what is needed (``kpis.accuracy``): ``class_counts`` — per class id, (samples of the class,
samples predicted as it, of those right) — and the confusion matrix (up to 100 classes).

How the row's counts are pooled (as ``paired.pooled`` pools top-1): runs over the same samples
(one ``samples_sha256``; runs without one are matched by size, ``paired.by_dataset``) count
each sample once, at the mean of their counts; runs over different samples add up. A run's
counts come from ``class_counts``, else from its confusion matrix (support = row sums, predicted
= column sums, right = the diagonal); a row with a run that carries neither has no per-class
figures (``figures`` returns None) — mixing would count that run's samples nowhere.

Per class (``precision = right / predicted``, ``recall = right / support``,
``F1 = 2·right / (support + predicted)``), with intervals exact in form:

- precision: Wilson 95 % of right among predicted. Given how many samples were predicted as the
  class, the number right among them is binomial (each is of the class with probability
  P(true = k | predicted = k)), so Wilson's is the interval it is for any proportion.
- recall: Wilson 95 % of right among support, for the same reason.
- F1: with q = right / (support + predicted − right) (the Jaccard index, TP / (TP + FP + FN)),
  F1 = 2q / (1 + q) is increasing in q. Given how many samples are of the class or predicted as
  it (TP + FP + FN), the number right among them is binomial with probability q, so Wilson's
  interval of q, mapped through 2q / (1 + q), is F1's interval — exact in form, not a delta
  method approximation.

A class never predicted has no precision (None, shown "–"); one with no samples no recall; the
macro averages count those as 0, as the agent and scikit-learn's ``zero_division=0`` do. Macro
averages are means over the classes present in the labels or the predictions.

Macro precision, recall and F1 are means of ratios that share their counts, so there is no
closed form: their interval is a bootstrap of the pooled confusion matrix — ``RESAMPLES``
multinomial draws of n samples (n = the distinct samples) over its cells, vectorised, with a
fixed seed, the macro figures recomputed on each. Without a confusion matrix (over 100 classes,
or older results) the macro values are still computed from the class counts, without an
interval, and the cell's ``method`` says why.

Which bootstrap interval — measured, not assumed (``tests/test_class_metrics.py`` repeats a
smaller version in about 10 s). Confusion matrices drawn from known multinomials: k classes of
uneven size (Dirichlet(5) shares), n samples, each right with probability ``acc`` and otherwise
predicted as another class (Dirichlet(0.7) shares, so errors cluster as real ones do); 400
matrices a setting, 2,000 resamples each. The share of 95 % intervals that covered the
population's macro value (precision / recall / F1; 400 draws: ±1.1 pp standard error):

==================  ==================  ==================  ==========================
k, n, accuracy      percentile          BCa                 shipped: wider of the two
==================  ==================  ==================  ==========================
3, 200, 0.60        96.3 / 95.3 / 96.3  96.3 / 96.0 / 96.5  96.3 / 96.0 / 96.8
3, 1000, 0.95       96.0 / 95.3 / 95.3  95.8 / 95.8 / 95.8  96.3 / 96.0 / 96.0
5, 500, 0.85        92.7 / 93.2 / 92.7  92.0 / 93.2 / 92.7  93.2 / 94.0 / 93.0
5, 1000, 0.70       94.0 / 93.8 / 94.0  –                   94.3 / 94.0 / 94.0
10, 100, 0.90       93.0 / 93.5 / 95.0  95.8 / 97.3 / 97.5  96.5 / 97.5 / 97.5
10, 200, 0.60       94.3 / 94.5 / 92.0  94.0 / 94.8 / 94.8  94.3 / 95.0 / 96.0
10, 200, 0.95       92.5 / 92.5 / 94.5  95.5 / 94.8 / 96.5  96.5 / 95.5 / 96.5
10, 1000, 0.85      95.5 / 95.0 / 94.0  96.3 / 95.0 / 95.0  96.5 / 96.0 / 95.8
20, 200, 0.85       96.0 / 93.0 / 91.2  93.8 / 91.7 / 94.3  97.3 / 95.3 / 95.8
30, 300, 0.70       96.5 / 95.5 / 87.5  96.0 / 90.5 / 94.8  97.3 / 96.5 / 96.3
==================  ==================  ==================  ==========================

The percentile interval undercovers where classes are small (10 or fewer samples a class on
average: 87.5 % for macro F1 at k = 30, n = 300), because macro figures are biased there (ratios
of small counts; precision 0 for a class that happens not to be predicted) and it does not
correct bias. BCa (Efron 1987: bias correction, and acceleration from the jackknife over the
samples) corrects F1 but undercovers recall in the same settings (90.5 %). Each fails where the
other holds, so the interval shipped is the union of the two from the same resamples (``method``:
``bootstrap, wider of BCa and percentile``): 93.0-97.5 % in every setting above, the lowest (5
classes, n = 500) within two standard errors of 95 %. Per-class Wilson intervals (precision,
recall, F1) covered 94.7-97.0 % in the other nine settings (the 5, 1000, 0.70 row was run for the
macro figures only). The test's smaller run (80 matrices in each
of five settings: k, n, accuracy = 3, 200, 0.6; 5, 1000, 0.7; 10, 200, 0.95; 10, 500, 0.85; 20,
200, 0.85) measured 95.0 / 95.5 / 95.5 % over all settings (90.0-98.8 % per setting, 80 draws
being ±2.4 pp) and 94.5-97.1 % per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.contract import Accuracy
from agent.stats import Z95, wilson_interval
from controller.analysis import paired

RESAMPLES = 2000
SEED = 20_161  # fixed: the same row gives the same interval every time
METHOD_BOOTSTRAP = f"bootstrap, wider of BCa and percentile, {RESAMPLES} multinomial resamples of the confusion matrix"
METHOD_NO_MATRIX = "from class counts; no interval: no confusion matrix to resample"
METHOD_AGENT = "mean of the runs' own macro values; no interval: the runs carry no class counts"
MACRO_KEYS = ("precision_macro", "recall_macro", "f1_macro")


@dataclass(frozen=True)
class ClassFigures:
    """One class of a row: counts (means over runs of the same samples, so possibly fractional) and
    precision, recall and F1 with their 95 % intervals (None where undefined: no predictions, no samples)."""

    cls: int
    support: float
    predicted: float
    right: float
    precision: float | None
    precision_ci95: tuple[float, float] | None
    recall: float | None
    recall_ci95: tuple[float, float] | None
    f1: float
    f1_ci95: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.cls, "support": self.support, "predicted": self.predicted, "right": self.right,
                "precision": self.precision, "precision_ci95": _pair(self.precision_ci95),
                "recall": self.recall, "recall_ci95": _pair(self.recall_ci95), "f1": self.f1, "f1_ci95": _pair(self.f1_ci95)}


@dataclass(frozen=True)
class Macro:
    """A macro average with its interval (``lo``/``hi`` None when there is none) and how it was made."""

    value: float
    lo: float | None
    hi: float | None
    method: str


@dataclass(frozen=True)
class RowClassMetrics:
    """Per-class figures and macro averages of one row; ``confusion`` is the pooled matrix (None
    where a run carried none), ``samples`` the distinct samples, ``runs`` the runs pooled."""

    classes: list[ClassFigures]
    macro: dict[str, Macro]  # precision_macro, recall_macro, f1_macro
    confusion: np.ndarray | None
    samples: int
    runs: int


def _pair(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [ci[0], ci[1]]


# ---- per class -----------------------------------------------------------------------------------
def f1_interval(right: float, support: float, predicted: float) -> tuple[float, float]:
    """95 % interval of F1: Wilson's of q = right / (support + predicted − right), through 2q / (1 + q)."""
    union = support + predicted - right
    lo, hi = wilson_interval(right, union)  # type: ignore[arg-type]  # fractional counts: the formula is continuous
    return 2 * lo / (1 + lo), 2 * hi / (1 + hi)


def class_figures(cls: int, support: float, predicted: float, right: float) -> ClassFigures:
    """One class's precision, recall and F1 with their intervals (see the module doc)."""
    precision = right / predicted if predicted > 0 else None
    recall = right / support if support > 0 else None
    return ClassFigures(
        cls, support, predicted, right,
        precision, wilson_interval(right, predicted) if predicted > 0 else None,  # type: ignore[arg-type]
        recall, wilson_interval(right, support) if support > 0 else None,  # type: ignore[arg-type]
        2 * right / (support + predicted), f1_interval(right, support, predicted))


def macro_of_counts(support: np.ndarray, predicted: np.ndarray, right: np.ndarray) -> dict[str, float]:
    """Macro precision, recall and F1 over the classes present in labels or predictions (0 where undefined),
    as the agent (``agent.accuracy``) and scikit-learn compute them. Arrays may have a leading resample axis."""
    present = (support > 0) | (predicted > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, right / np.where(predicted > 0, predicted, 1), 0.0)
        recall = np.where(support > 0, right / np.where(support > 0, support, 1), 0.0)
        f1 = np.where(present, 2 * right / np.where(present, support + predicted, 1), 0.0)
    count = present.sum(axis=-1)
    out = {}
    for key, values in zip(MACRO_KEYS, (precision, recall, f1), strict=True):
        out[key] = np.where(count > 0, values.sum(axis=-1) / np.maximum(count, 1), 0.0)
    return out


# ---- macro: the bootstrap --------------------------------------------------------------------------
def _one_hot(rows: np.ndarray, cols: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(m, k) matrices mapping the m non-empty cells to their true class, predicted class and, for the
    diagonal, the class they are right for: counts over cells @ these = support, predicted, right."""
    m = len(rows)
    true, pred = np.zeros((m, k)), np.zeros((m, k))
    true[np.arange(m), rows] = 1
    pred[np.arange(m), cols] = 1
    return true, pred, true * (rows == cols)[:, None]


def bootstrap_macro(confusion: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED,
                    method: str = "union") -> dict[str, tuple[float, float]]:
    """95 % intervals of macro precision, recall and F1 by a multinomial bootstrap of ``confusion``
    (rows: true class, columns: predicted; counts may be fractional means over runs): ``union`` (the
    default: the wider of BCa and percentile, see the module doc), ``bca`` or ``percentile``."""
    cm = np.asarray(confusion, dtype=np.float64)
    rows, cols = np.nonzero(cm)
    weights = cm[rows, cols]
    n_total = float(weights.sum())
    n = round(n_total)
    if n <= 0:
        raise ValueError("an empty confusion matrix has no interval")
    true, pred, diag = _one_hot(rows, cols, cm.shape[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // max(len(weights), 1))  # bounded memory for 100 classes' 10,000 cells
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, resamples, chunk):
        draws = rng.multinomial(n, weights / n_total, size=min(chunk, resamples - start)).astype(np.float64)
        parts.append(macro_of_counts(draws @ true, draws @ pred, draws @ diag))
    boot = {key: np.concatenate([p[key] for p in parts]) for key in MACRO_KEYS}
    base = (weights @ true, weights @ pred, weights @ diag)
    observed = macro_of_counts(*base)
    percentile = {key: tuple(float(v) for v in np.percentile(boot[key], [2.5, 97.5])) for key in MACRO_KEYS}
    if method == "percentile":
        return percentile
    if method not in ("bca", "union"):
        raise ValueError(f"unknown bootstrap interval {method!r}")
    # BCa (Efron 1987): bias correction z0 from the share of resamples below the estimate; acceleration
    # from the jackknife over samples (one sample of cell j left out; cells weighted by their counts)
    jack = macro_of_counts(np.maximum(base[0] - true, 0), np.maximum(base[1] - pred, 0), np.maximum(base[2] - diag, 0))
    from scipy.stats import norm

    out = {}
    for key in MACRO_KEYS:
        theta, values = float(observed[key]), boot[key]
        below = (np.sum(values < theta) + 0.5 * np.sum(values == theta)) / len(values)
        z0 = float(norm.ppf(min(max(below, 0.5 / len(values)), 1 - 0.5 / len(values))))
        d = float(np.sum(weights * jack[key]) / n_total) - jack[key]
        spread = float(np.sum(weights * d ** 2))
        a = float(np.sum(weights * d ** 3)) / (6 * spread ** 1.5) if spread > 0 else 0.0
        levels = [100 * float(norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))) for z in (-Z95, Z95)]
        lo, hi = np.percentile(values, levels)
        out[key] = (min(float(lo), theta), max(float(hi), theta))
        if method == "union":
            out[key] = (min(out[key][0], percentile[key][0]), max(out[key][1], percentile[key][1]))
    return out


# ---- a row's counts --------------------------------------------------------------------------------
def _counts(block: Accuracy) -> np.ndarray | None:
    """(k, 3) support, predicted, right per class id of one run; None when it carries neither
    class counts nor a confusion matrix."""
    if block.class_counts:
        return np.asarray(block.class_counts, dtype=np.float64)
    if block.confusion_matrix:
        cm = np.asarray(block.confusion_matrix, dtype=np.float64)
        return np.stack([cm.sum(axis=1), cm.sum(axis=0), np.diag(cm)], axis=1)
    return None


def _padded(arrays: Sequence[np.ndarray], shape_of: int) -> list[np.ndarray]:
    """Arrays zero-padded along their first ``shape_of`` axes to the largest (class ids missing from
    a run's counts are classes it had no sample of)."""
    size = max(a.shape[0] for a in arrays)
    out = []
    for a in arrays:
        pad = [(0, size - a.shape[0])] * shape_of + [(0, 0)] * (a.ndim - shape_of)
        out.append(np.pad(a, pad))
    return out


def _pooled(groups: dict[Any, list[Accuracy]], of: Any, axes: int) -> np.ndarray | None:
    """Sum over datasets of the mean over each dataset's runs of ``of(block)``; None if a run has none."""
    per_run = {key: [of(b) for b in group] for key, group in groups.items()}
    if any(x is None for xs in per_run.values() for x in xs):
        return None
    flat = _padded([x for xs in per_run.values() for x in xs], axes)
    at = 0
    total = np.zeros_like(flat[0])
    for xs in per_run.values():
        total += np.mean(flat[at:at + len(xs)], axis=0)
        at += len(xs)
    return total


def figures(blocks: Sequence[Accuracy]) -> RowClassMetrics | None:
    """Per-class figures and macro averages of a row's accuracy blocks (``scorecard._accuracy_blocks``),
    pooled as the module doc says; None when no run scored a sample or a run carries no class counts."""
    scored = [b for b in blocks if b.n > 0]
    if not scored:
        return None
    groups = paired.by_dataset(scored)
    counts = _pooled(groups, _counts, 1)
    if counts is None:
        return None
    samples = sum(group[0].n for group in groups.values())
    confusion = _pooled(groups, lambda b: np.asarray(b.confusion_matrix, dtype=np.float64) if b.confusion_matrix else None, 2)
    support, predicted, right = counts[:, 0], counts[:, 1], counts[:, 2]
    classes = [class_figures(k, float(s), float(p), float(r))
               for k, (s, p, r) in enumerate(counts) if s > 0 or p > 0]
    values = {key: float(v) for key, v in macro_of_counts(support, predicted, right).items()}
    if confusion is not None and confusion.sum() > 0:
        intervals = bootstrap_macro(confusion)
        macro = {key: Macro(values[key], *intervals[key], METHOD_BOOTSTRAP) for key in MACRO_KEYS}
    else:
        macro = {key: Macro(values[key], None, None, METHOD_NO_MATRIX) for key in MACRO_KEYS}
    return RowClassMetrics(classes, macro, confusion, samples, len(scored))


def agent_macro(blocks: Sequence[Accuracy]) -> dict[str, Macro]:
    """Where the runs carry no counts: the mean of the macro values the agent sent, without an interval."""
    scored = [b for b in blocks if b.n > 0]
    out = {}
    for key in MACRO_KEYS:
        values = [getattr(b, key) for b in scored]
        if values and all(v is not None for v in values):
            out[key] = Macro(float(sum(values) / len(values)), None, None, METHOD_AGENT)
    return out

