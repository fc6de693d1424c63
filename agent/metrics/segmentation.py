"""Mean IoU and pixel accuracy of a semantic-segmentation run (MLPerf Mobile's DeepLabV3/MOSAIC on ADE20K).

Counting is over pixels pooled across the whole run: ``confusion_of`` gives one image's (or a
batch's) confusion matrix, the caller sums them, ``miou`` scores the sum — as MLPerf Mobile's
``flutter/cpp/datasets/ade20k.cc`` (github.com/mlcommons/mobile_app_open) accumulates true
positives, false positives and false negatives per class over all images, and as
``tf.metrics.mean_iou`` (TensorFlow DeepLab's ``eval.py``) accumulates its confusion matrix. It is
not the mean of per-image mIoUs.

- ``confusion[label, predicted]`` counts pixels; a pixel whose label is ``ignore_index`` is left
  out entirely (DeepLab gives it weight 0; MLPerf Mobile counts no false positive where the ground
  truth is 0, the ADE20K "other" label, or above the scored classes).
- Per-class IoU = TP / (TP + FP + FN) = ``C[c, c] / (row_c + col_c - C[c, c])``.
- mIoU is the mean over the classes that appear in the labels or the predictions (a nonzero
  denominator); a class absent from both has IoU None and is not counted. That is
  ``tf.metrics.mean_iou`` (it divides by the number of classes whose denominator is nonzero). MLPerf
  Mobile divides by all scored classes (31 for ADE20K-top31) and would get NaN for an absent one; on
  its 2,000-image validation set every class occurs, so the two agree there.
- ``miou(confusion, ignore_index=k)`` also leaves class k out of the mean when k is a class index
  (ADE20K-top31: 32 outputs, label 0 ignored, classes 1..31 scored): its row is empty by
  construction, and a pixel predicted k whose label is c is a false negative of c only — as MLPerf
  Mobile scores it (its loop runs over classes 1..31). Without ``ignore_index`` such a class would
  count with IoU 0, as ``tf.metrics.mean_iou`` in DeepLab counts it.
- Pixel accuracy = trace / counted pixels.

Predictions and labels are class ids (the caller takes the argmax of logits); a value outside
``0..n_classes-1`` that is not the ignored label is refused, since no confusion cell holds it.

No interval is given: pixels within an image are strongly correlated, so no closed-form interval
applies, and a bootstrap over images would need its coverage checked by simulation (left out).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.errors import DatasetError


def confusion_of(predicted: np.ndarray, labels: np.ndarray, n_classes: int, ignore_index: int | None = 255) -> np.ndarray:
    """``n_classes`` x ``n_classes`` pixel counts, rows the label, columns the prediction; ``ignore_index`` labels left out."""
    if not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise DatasetError(f"n_classes must be a positive integer, got {n_classes!r}")
    predicted, labels = _class_ids(predicted, "predictions"), _class_ids(labels, "labels")
    if predicted.shape != labels.shape:
        raise DatasetError(f"predictions of shape {predicted.shape} do not match labels of shape {labels.shape}")
    keep = labels != ignore_index if ignore_index is not None else np.ones(labels.shape, dtype=bool)
    predicted, labels = predicted[keep], labels[keep]
    for name, values in (("label", labels), ("prediction", predicted)):
        bad = values[(values < 0) | (values >= n_classes)]
        if bad.size:
            raise DatasetError(f"a {name} holds class {int(bad[0])}, outside 0..{n_classes - 1}"
                               + (f" (and is not the ignored label {ignore_index})" if name == "label" else ""))
    confusion = np.bincount(labels * n_classes + predicted, minlength=n_classes * n_classes)
    return confusion.reshape(n_classes, n_classes).astype(np.int64)


def miou(confusion: np.ndarray, ignore_index: int | None = None) -> dict[str, Any]:
    """mIoU, per-class IoU (None where a class is in neither labels nor predictions) and pixel accuracy."""
    c = np.asarray(confusion)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise DatasetError(f"a confusion matrix is square, got shape {c.shape}")
    if not np.issubdtype(c.dtype, np.integer) or (c < 0).any():
        raise DatasetError("a confusion matrix holds pixel counts: non-negative integers")
    c = c.astype(np.int64)
    pixels = int(c.sum())
    if pixels == 0:
        raise DatasetError("no pixel to score: every label was the ignored one, or nothing was counted")
    tp = np.diag(c)
    denominator = c.sum(axis=0) + c.sum(axis=1) - tp
    scored = denominator > 0
    if ignore_index is not None and 0 <= ignore_index < c.shape[0]:
        scored[ignore_index] = False
    per_class = [float(tp[k] / denominator[k]) if scored[k] else None for k in range(c.shape[0])]
    values = [v for v in per_class if v is not None]
    return {
        "miou": sum(values) / len(values) if values else None,
        "per_class_iou": per_class,
        "pixel_accuracy": int(tp.sum()) / pixels,
        "pixels": pixels,
        "classes_scored": len(values),
    }


def _class_ids(values: Any, name: str) -> np.ndarray:
    a = np.asarray(values)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64).ravel()
    if np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all() and (a == np.round(a)).all():
        return a.astype(np.int64).ravel()  # some runtimes hand back class ids as floats
    raise DatasetError(f"{name} must be integer class ids (take the argmax of logits first), got dtype {a.dtype}")
