"""ROC AUC of anomaly scores, as MLPerf Tiny's anomaly-detection benchmark scores it, with DeLong's 95 % interval.

MLPerf Tiny's ToyADMOS autoencoder is scored with scikit-learn's ``metrics.roc_auc_score(y_true,
y_pred)`` over the per-clip anomaly scores (mean squared reconstruction error; github.com/mlcommons/tiny,
``v0.1/training/anomaly_detection/01_test.py``, from the DCASE 2020 task 2 baseline). The agent has no
scikit-learn, so the AUC here is the Mann–Whitney U statistic: the share of (anomalous, normal) pairs
in which the anomalous clip scores higher, a tie counting 1/2 — the area under the ROC curve with
ties drawn as diagonal segments, which is exactly what ``roc_auc_score`` computes (its trapezoidal
area over the thresholds at the distinct scores). It is computed from midranks, O(n log n).

The interval is DeLong, DeLong & Clarke-Pearson (1988, Biometrics 44:837): the variance of the AUC
from its structural components, ``V10_i`` (share of normals each anomalous clip beats) and ``V01_j``
(share of anomalous clips that beat each normal), ``var = s²(V10)/m + s²(V01)/n``, here by the midrank
algorithm of Sun & Xu (2014, IEEE Signal Processing Letters 21:1389); then ``auc ± 1.96·√var``
clipped to [0, 1]. It needs at least two clips of each class (``ci95`` is None otherwise), and it has
zero width when the classes are perfectly separated (AUC 0 or 1), where the variance estimate is 0:
an interval is then not informative, and a test of few clips should say so.

Labels: 1 anomalous (the positive class, expected to score higher), 0 normal. MLPerf Tiny also
reports pAUC (``max_fpr=0.1``); it is not computed here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.errors import DatasetError
from agent.stats import Z95

METHOD = ("Mann-Whitney U with ties 1/2 (= sklearn roc_auc_score); DeLong 1988 variance by Sun & Xu 2014 "
          "midranks, normal 95% interval clipped to [0, 1]")


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``, tied values all given the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    return (upper - (counts - 1) / 2.0)[inverse.reshape(-1)]


def _check(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        scores = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError("anomaly scores must be numbers (one per clip)") from None
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.ndim != 1 or scores.shape != labels.shape:
        raise DatasetError(f"anomaly scores and labels must be 1-D and of the same length, got shapes {scores.shape} "
                           f"and {labels.shape}")
    if not np.all(np.isfinite(scores)):
        raise DatasetError("anomaly scores contain NaN or infinity; score every clip with a finite number")
    if labels.dtype == bool:
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iuf" or not np.all(np.isin(labels, (0, 1))):
        raise DatasetError("anomaly labels must be 1 (anomalous) or 0 (normal)")
    positive = labels == 1
    if positive.all() or not positive.any():
        raise DatasetError(f"ROC AUC needs both anomalous (1) and normal (0) clips, got {int(positive.sum())} anomalous "
                           f"and {int((~positive).sum())} normal")
    return scores, positive


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """ROC AUC of ``scores`` (higher = more anomalous) against ``labels`` (1 anomalous, 0 normal),
    with DeLong's 95 % interval (see the module)."""
    scores, positive = _check(scores, labels)
    x, y = scores[positive], scores[~positive]
    m, n = x.size, y.size
    tz = midranks(np.concatenate([x, y]))
    tx, ty = midranks(x), midranks(y)
    auc = float((tz[:m].sum() - m * (m + 1) / 2.0) / (m * n))
    ci, variance = None, None
    if m >= 2 and n >= 2:
        v10 = (tz[:m] - tx) / n          # per anomalous clip: share of normals it beats (ties 1/2)
        v01 = 1.0 - (tz[m:] - ty) / m    # per normal clip: share of anomalous clips that beat it
        variance = float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
        ci = normal_interval(auc, variance)
    return {"auc": auc, "ci95": ci, "variance": variance, "n_positive": int(m), "n_negative": int(n), "method": METHOD}


def normal_interval(value: float, variance: float) -> list[float]:
    """``value ± 1.96·√variance``, clipped to [0, 1]."""
    half = Z95 * float(np.sqrt(variance))
    return [max(0.0, value - half), min(1.0, value + half)]
