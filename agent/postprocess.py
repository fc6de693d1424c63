"""Model outputs turned into what a task's metric scores: class ids, boxes, reconstruction errors.

MLPerf's reference harnesses post-process each model's raw outputs before scoring
(``PostProcessArgMax(offset=-1)`` for TensorFlow classifiers whose output 0 is a background class,
the TFLite detection op's boxes/classes/scores/count for SSD-MobileNet, a reconstruction error per
segment for MLPerf Tiny's anomaly-detection autoencoder). The same model can run under several
engines and runtimes, so this is done once here, from the outputs a run kept, and recorded in the
result (``postprocess``) so a reader knows how a class id or a box was read.

How to post-process comes from the zoo manifest's ``postprocess`` for a zoo model, otherwise from
the dataset's task and the outputs' names and shapes: a detection model's four outputs (boxes
``[1, N, 4]``, classes, scores, count) are found by name or in the TFLite op's order, its classes read as
COCO ids where the outputs are named as TensorFlow's Object Detection API names them and as id − 1
otherwise (TFLite's op); a classifier with one more output than the dataset has classes is read with
MLPerf's background offset of −1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.errors import DatasetError
from agent.metrics.detection import Detection, normalized_to_coco_xywh
from agent.runtimes.base import TensorSpec
from agent.runtimes.quant import to_real_output

KINDS = ("classes", "detection-boxes", "autoencoder")


@dataclass(frozen=True)
class PostProcess:
    """How outputs are read: ``kind`` and, for classes and boxes, the offset added to a class index
    (−1: output 0 is background; +1: TFLite's detection op numbers COCO's id 1 as class 0)."""

    kind: str
    class_offset: int = 0
    rule: str = ""  # where the choice came from: the manifest, or what was inferred and why

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "class_offset": self.class_offset, "rule": self.rule}


def choose(task: str, given: dict[str, Any] | None, outputs: Sequence[TensorSpec], n_classes: int | None) -> PostProcess:
    """The post-processing of a run: the manifest's (``given``) when there is one, else inferred."""
    if given:
        check(given)
        return PostProcess(given["kind"], int(given.get("class_offset", 0)), "zoo manifest")
    if task == "detection":
        if any("detection_classes" in s.name for s in outputs):
            return PostProcess("detection-boxes", 0, "inferred: TensorFlow Object Detection API outputs, classes are COCO ids")
        return PostProcess("detection-boxes", 1, "inferred: TFLite detection op (class c is COCO id c + 1)")
    if task == "anomaly":
        return PostProcess("autoencoder", 0, "inferred: anomaly task (score = mean squared reconstruction error)")
    width = int(np.prod([d for d in outputs[0].shape[1:] if d and d > 0])) if outputs and outputs[0].shape else 0
    if n_classes and width == n_classes + 1:
        return PostProcess("classes", -1, f"inferred: {width} outputs for {n_classes} classes, output 0 is background")
    return PostProcess("classes", 0, "arg-max of the first output")


def check(given: dict[str, Any] | None) -> None:
    """Refuse, before anything is timed, a manifest post-processing edgeperf cannot score yet."""
    if given and given.get("kind") not in KINDS:
        raise DatasetError(f"the zoo manifest names post-processing {given.get('kind')!r}, which edgeperf cannot score yet "
                           f"(it scores: {', '.join(KINDS)}); run this model in performance mode, without --mode accuracy")


def class_ids(outputs: Sequence[Sequence[np.ndarray]], specs: Sequence[TensorSpec], how: PostProcess) -> np.ndarray:
    """Arg-max of each sample's first output (dequantised), plus the class offset."""
    scores = np.stack([to_real_output(out[0], specs[0]).reshape(-1) for out in outputs])
    return scores.argmax(axis=1).astype(np.int64) + how.class_offset


def _roles(specs: Sequence[TensorSpec]) -> dict[str, int]:
    """Which output is boxes, classes, scores and count: by name where the names say, else TFLite's
    detection-op order (boxes, classes, scores, count)."""
    names = [s.name.lower() for s in specs]
    found = {}
    for role in ("box", "class", "score", "num"):
        hits = [i for i, n in enumerate(names) if role in n]
        if len(hits) == 1:
            found[role] = hits[0]
    if len(found) == 4:
        return found
    if len(specs) != 4:
        raise DatasetError(f"a detection model should have 4 outputs (boxes, classes, scores, count); this one has "
                           f"{len(specs)}: {', '.join(s.name for s in specs)}")
    return {"box": 0, "class": 1, "score": 2, "num": 3}


def detections(outputs: Sequence[Sequence[np.ndarray]], specs: Sequence[TensorSpec], how: PostProcess,
               image_ids: Sequence[int], sizes: Sequence[tuple[int, int]]) -> list[Detection]:
    """Every sample's boxes as COCO detections in the original image's pixels (as MLPerf's
    ``accuracy-coco.py``: normalised ``[ymin, xmin, ymax, xmax]`` × the image's height and width)."""
    roles = _roles(specs)
    out: list[Detection] = []
    for sample, image_id, (height, width) in zip(outputs, image_ids, sizes, strict=True):
        real = {role: to_real_output(sample[i], specs[i]) for role, i in roles.items()}
        count = int(np.asarray(real["num"]).reshape(-1)[0])
        boxes = np.asarray(real["box"]).reshape(-1, 4)[:count]
        classes = np.asarray(real["class"]).reshape(-1)[:count]
        scores = np.asarray(real["score"]).reshape(-1)[:count]
        for box, cls, score in zip(normalized_to_coco_xywh(boxes, height, width), classes, scores, strict=True):
            out.append(Detection(int(image_id), round(float(cls)) + how.class_offset, *map(float, box), float(score)))
    return out


def reconstruction_errors(outputs: Sequence[Sequence[np.ndarray]], specs: Sequence[TensorSpec],
                          features: np.ndarray) -> np.ndarray:
    """Mean squared error between each sample's features (the dataset's float values, before any
    quantisation of the input) and the model's dequantised reconstruction: MLPerf Tiny's AD score per
    segment, as its reference submission compares them."""
    errors = []
    for out, x in zip(outputs, features, strict=True):
        y = to_real_output(out[0], specs[0]).reshape(-1)
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.size != y.size:
            raise DatasetError(f"an autoencoder's output should match its input: {y.size} values for {x.size}")
        errors.append(float(np.mean((x - y) ** 2)))
    return np.asarray(errors)
