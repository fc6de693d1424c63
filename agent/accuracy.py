"""Classification accuracy of a run: top-1 with a Wilson interval, macro P/R/F1, confusion matrix,
per-class counts, and which samples were right.

Macro averages are over the classes that occur in the labels or the predictions (as
scikit-learn's ``average="macro"`` does), with 0 where a class has no predictions or no support.

``class_counts`` holds, per class id 0..n_classes−1, ``[support, predicted, right]``: the samples
labelled the class, the samples predicted as it, and of those the ones right (the confusion
matrix's row sum, column sum and diagonal). It is kept where the matrix itself is dropped for size
(above ``agent.scoring.MAX_CONFUSION_CLASSES``), so precision, recall and F1 per class stay readable.

Which samples were right travels as a bitset (``correct_bits``): bit i is the i-th scored sample
in dataset order (a valid accuracy run scores every sample, so bit i is dataset sample i), set
when it was scored correct — ``numpy.packbits`` (first sample in the high bit of the first byte,
padding bits zero) as base64 text: 168 characters for 1,000 samples.
Two runs over the same samples (``samples_sha256``) can then be compared sample by sample: an
int8 model against its fp32 reference is a paired comparison, far narrower than two independent
samples (``controller.analysis.paired``).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from agent.stats import wilson_interval


def classification_metrics(predicted: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Scores ``predicted`` class ids against ``labels`` (both int arrays of the same length)."""
    predicted, labels = np.asarray(predicted, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    n = int(labels.size)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    true_pos = np.diag(confusion).astype(np.float64)
    predicted_count, support = confusion.sum(axis=0), confusion.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, true_pos / predicted_count, 0.0)
        recall = np.where(support > 0, true_pos / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (predicted_count > 0) | (support > 0)
    correct = int(true_pos.sum())
    lo, hi = wilson_interval(correct, n)
    return {
        "top1": correct / n if n else 0.0,
        "ci95": [lo, hi],
        "correct": correct,
        "n": n,
        "precision_macro": float(precision[present].mean()),
        "recall_macro": float(recall[present].mean()),
        "f1_macro": float(f1[present].mean()),
        "confusion_matrix": confusion.tolist(),
        "class_counts": np.stack([support, predicted_count, np.diag(confusion)], axis=1).tolist(),
        "correct_bits": pack_correctness(predicted == labels),
    }


def pack_correctness(correct: np.ndarray) -> str:
    """A bool per sample as the result carries it: ``numpy.packbits`` (big-endian bit order), base64."""
    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool))).decode("ascii")


def unpack_correctness(bits: str, n: int) -> np.ndarray:
    """The bool per sample of ``pack_correctness``'s text for ``n`` samples (contract-checked text)."""
    return np.unpackbits(np.frombuffer(base64.b64decode(bits), dtype=np.uint8), count=n).astype(bool)
