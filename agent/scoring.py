"""An accuracy run's kept outputs scored with its task's metric: top-1, COCO mAP or ROC AUC.

The dataset says the task (``Samples.task``) and holds the ground truth; ``agent.postprocess``
reads the outputs; the metric is MLPerf's (``agent.accuracy`` for top-1, ``agent.metrics`` for
the rest). Classification fills the result's ``kpis.accuracy`` (top-1, its interval, which samples
were right); the other tasks fill ``kpis.task_accuracy`` with their own metric, so a detection run
never shows a meaningless top-1. A classification run's predictions, made once, also give
``kpis.class_balance`` (recall per class) and, with groups, ``kpis.fairness`` (``agent.fairness``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent import fairness, postprocess
from agent.accuracy import classification_metrics
from agent.datasets import Samples
from agent.errors import DatasetError
from agent.groups import Groups
from agent.metrics import auc, detection
from agent.runtimes.base import TensorSpec

MAX_CONFUSION_CLASSES = 100  # ImageNet's 1000×1000 matrix would be megabytes in every result: left out above this


Block = dict[str, Any]


@dataclass(frozen=True)
class Scores:
    """What a run's kept outputs give: ``accuracy`` (classification) or ``task_accuracy`` (the rest);
    for classification also ``class_balance`` (recall per class) and, with groups, ``fairness``."""

    accuracy: Block | None = None
    task_accuracy: Block | None = None
    fairness: Block | None = None
    class_balance: Block | None = None


def score(kept: dict[int, list[np.ndarray]], samples: Samples, outputs: Sequence[TensorSpec],
          given: dict[str, Any] | None = None) -> tuple[Block | None, Block | None]:
    """``(accuracy, task_accuracy)`` of the outputs ``kept`` per sample index; either may be None.
    ``given``: the zoo manifest's post-processing, when the model is a zoo entry."""
    scores = score_all(kept, samples, outputs, given)
    return scores.accuracy, scores.task_accuracy


def score_all(kept: dict[int, list[np.ndarray]], samples: Samples, outputs: Sequence[TensorSpec],
              given: dict[str, Any] | None = None, groups: Groups | None = None) -> Scores:
    """``score``, and for classification the class balance and, given ``groups`` (one per dataset sample),
    fairness, all from the one set of predictions. ``kept`` is keyed by dataset index, so each scored
    sample meets its own group."""
    if samples.labels is None or not kept:
        return Scores()
    order = np.array(sorted(kept), dtype=np.int64)
    ordered = [kept[i] for i in order]
    how = postprocess.choose(samples.task, given, outputs, samples.n_classes)
    fingerprint = samples.fingerprint(order)
    if samples.task == "classification":
        predicted, labels = postprocess.class_ids(ordered, outputs, how), samples.labels[order]
        accuracy = _top1(predicted, labels, how, fingerprint)
        fair = fairness.by_group(predicted, labels, [groups.names[i] for i in order], groups.source) if groups else None
        return Scores(accuracy, None, fair, fairness.class_balance(predicted, labels))
    if samples.task == "detection":
        return Scores(task_accuracy=_mean_average_precision(ordered, outputs, how, samples, order, fingerprint))
    if samples.task == "anomaly":
        errors = postprocess.reconstruction_errors(ordered, outputs, samples.raw[order])
        return Scores(task_accuracy=_anomaly_auc(errors, samples, order, how, fingerprint))
    raise DatasetError(f"dataset {samples.name} has task {samples.task!r}, which edgeperf cannot score yet")


def _top1(predicted: np.ndarray, labels: np.ndarray, how: postprocess.PostProcess, fingerprint: str) -> dict[str, Any]:
    n_classes = int(max(labels.max(initial=0), predicted.max(initial=0))) + 1
    if predicted.min(initial=0) < 0:
        raise DatasetError(f"post-processing ({how.rule}) gave class {int(predicted.min())}: the class offset does not "
                           "suit this model's outputs")
    metrics = classification_metrics(predicted, labels, n_classes)
    if n_classes > MAX_CONFUSION_CLASSES:
        metrics["confusion_matrix"] = []
    return metrics | {"samples_sha256": fingerprint, "postprocess": how.to_dict()}


def _mean_average_precision(ordered: list[list[np.ndarray]], outputs: Sequence[TensorSpec], how: postprocess.PostProcess,
                            samples: Samples, order: np.ndarray, fingerprint: str) -> dict[str, Any]:
    truth = samples.truth
    image_ids = [int(samples.labels[i]) for i in order]
    sizes = [tuple(truth["sizes"][i]) for i in order]
    found = postprocess.detections(ordered, outputs, how, image_ids, sizes)
    result = detection.coco_map(truth["annotations"], found, image_ids)
    return {"metric": "mAP", "value": result["map"] or 0.0, "n": result["images"], "ci95": None,
            "interval": "none: pycocotools' COCOeval gives no interval",
            "postprocess": how.to_dict(), "samples_sha256": fingerprint,
            "details": {"map50": result["map50"], "map75": result["map75"], "detections": result["detections"],
                        "detections_unknown_category": result["detections_unknown_category"]}}


def _anomaly_auc(errors: np.ndarray, samples: Samples, order: np.ndarray, how: postprocess.PostProcess,
                 fingerprint: str) -> dict[str, Any]:
    """AUC over clips, as MLPerf Tiny's AD evaluation: a clip's score is the mean reconstruction error
    of its segments, the AUC is taken per machine id and averaged over the ids. Its interval: each id's
    DeLong variance (the ids' clips are disjoint, so independent), var(mean) = Σ var_i / k², normal 95 %.
    A dataset without clips scores each sample; without machine ids, all clips are one group."""
    truth = samples.truth if isinstance(samples.truth, dict) else {}
    clip = np.asarray(truth["clip"])[order] if "clip" in truth else np.arange(len(order))
    labels = samples.labels[order]
    clips = np.unique(clip)
    clip_scores = np.array([errors[clip == c].mean() for c in clips])
    clip_labels = np.array([labels[clip == c].max() for c in clips])
    machines = np.asarray(truth.get("clip_machine_ids", np.zeros(clips.max() + 1, dtype=np.int64)))[clips]
    per_machine = {int(m): auc.roc_auc(clip_scores[machines == m], clip_labels[machines == m]) for m in np.unique(machines)}
    value = float(np.mean([r["auc"] for r in per_machine.values()]))
    variances = [r["variance"] for r in per_machine.values()]
    ci = auc.normal_interval(value, sum(variances) / len(variances) ** 2) if None not in variances else None
    return {"metric": "AUC", "value": value, "n": int(clips.size), "ci95": ci,
            "interval": (auc.METHOD + "; mean over machine ids, var = sum of DeLong variances / ids^2") if ci
            else "none: a machine id has fewer than 2 clips of a class",
            "postprocess": how.to_dict(), "samples_sha256": fingerprint,
            "details": {"clips_anomalous": int(clip_labels.sum()), "clips_normal": int((1 - clip_labels).sum()),
                        "segments": len(order), "machine_ids": len(per_machine)}
            | {f"auc_machine_{m}": r["auc"] for m, r in per_machine.items()}}
