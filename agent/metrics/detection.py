"""COCO mAP of an object-detection run, as MLPerf Inference scores SSD-MobileNet, SSD-ResNet34 and RetinaNet.

The scoring is what MLCommons' reference script ``vision/classification_and_detection/tools/accuracy-coco.py``
(github.com/mlcommons/inference) does with pycocotools, step for step:

- ground truth: ``COCO`` over the annotation json (``instances_val2017.json`` there);
- detections: one ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` per box, in absolute
  pixels of the original image, loaded with ``cocoGt.loadRes`` (the script writes them to a json
  file and reads it back "to bypass error with Python3" — an old pycocotools bug with ``unicode``;
  the list is passed directly here, which gives the same annotations: json round-trips floats);
- ``COCOeval(cocoGt, cocoDt, iouType="bbox")`` with ``params.imgIds`` set to the images that were
  scored — every image seen in LoadGen's accuracy log, those with no detection included (the script
  adds an image that had "no results" to ``image_ids`` so its objects count as missed) — then
  ``evaluate()``, ``accumulate()``, ``summarize()``; the headline is ``stats[0]``, AP averaged over
  IoU thresholds .50:.05:.95, 101-point interpolated precision, area "all", 100 detections per image.
  The script passes ``list(set)``; the ids are sorted here (the order only breaks exact score ties
  between images).

Boxes. The script's models write normalised ``[ymin, xmin, ymax, xmax]`` (as SSD-MobileNet's TFLite
post-process op outputs them); it multiplies by the image's ``height``/``width`` from the annotation
json (the original image, not the model's input size) and writes ``[xmin, ymin, xmax - xmin, ymax - ymin]``,
no clipping and no +1. ``normalized_to_coco_xywh`` does that (in float64; the script in float32).

Category ids. ``coco_map`` takes COCO's own category ids (1..90 with gaps, 80 used in val2017). The
script's ``--use-inv-map`` maps a contiguous label k (1..80, 0 the background) to the k-th sorted
category id, ``inv_map = [0] + cocoGt.getCatIds()``; MLPerf's reference post-processing turns it on for
SSD-ResNet34 (PyTorch/ONNX, ``PostProcessCocoPt``/``PostProcessCocoOnnx``) and leaves it off for the
TensorFlow SSD-MobileNet, whose classes already are COCO ids. TFLite's ``TFLite_Detection_PostProcess``
drops the background class, so its class c is COCO id c + 1. The caller maps labels before scoring. A
detection whose category is not among the annotation's categories is left out by pycocotools (it
scores only ``cocoGt.getCatIds()``), as in the script; ``detections_unknown_category`` counts them,
since a wrong label mapping shows up there first.

Where this differs from the script: ``loadRes`` fails on an empty list, so with no detection at all
the results are an empty ``COCO`` set instead (mAP 0 where there are objects); bad input is refused
with one line (``DatasetError``) where the script would raise an ``AssertionError`` or ``KeyError``.

pycocotools prints as it works (and ``summarize`` prints the 12-line table); that goes to a buffer so
the agent's stdout stays clean — the table is ``stats`` in order. ``stats`` entries are -1 where
pycocotools found no ground truth for them; ``map``/``map50``/``map75`` are None then.

No interval is given for mAP. None applies in closed form (mAP is a mean over categories and IoU
thresholds of interpolated precision–recall areas, not a proportion or a mean of independent values),
and an interval must cover what it claims: a bootstrap over images would need its coverage checked by
simulation, which is left out.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from agent.errors import DatasetError

_ANNOTATION_KEYS = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")


class Detection(NamedTuple):
    """One detected box in COCO's conventions: absolute pixels, top-left corner, width and height."""

    image_id: int
    category_id: int
    x: float
    y: float
    w: float
    h: float
    score: float


def normalized_to_coco_xywh(boxes: Any, height: float, width: float) -> np.ndarray:
    """Normalised ``[ymin, xmin, ymax, xmax]`` in [0, 1] (SSD TFLite output) as COCO ``[x, y, w, h]`` pixels.

    ``boxes`` is one box or an array of them (last axis 4); ``height``/``width`` are the original
    image's, from the annotations. No clipping, as MLPerf's ``accuracy-coco.py``.
    """
    b = np.asarray(boxes, dtype=np.float64)
    if b.shape[-1:] != (4,):
        raise DatasetError(f"a normalised box has 4 values [ymin, xmin, ymax, xmax], got shape {b.shape}")
    if not (math.isfinite(height) and math.isfinite(width) and height > 0 and width > 0):
        raise DatasetError(f"image size must be positive and finite, got height={height} width={width}")
    if not np.isfinite(b).all():
        raise DatasetError("a normalised box holds a non-finite value (NaN or inf): the model's output is corrupt")
    ymin, xmin, ymax, xmax = (b[..., i] for i in range(4))
    x0, y0 = xmin * width, ymin * height
    return np.stack([x0, y0, xmax * width - x0, ymax * height - y0], axis=-1)


def load_annotations(annotations: dict | str | Path) -> dict:
    """The COCO annotation json (a path or the parsed dict), checked enough that pycocotools will not fail on it."""
    if isinstance(annotations, dict):
        data = annotations
        where = "the annotations"
    else:
        path = Path(annotations)
        where = str(path)
        if not path.is_file():
            raise DatasetError(f"COCO annotation file {path} not found: give instances_val2017.json or a file like it")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DatasetError(f"{path} is not a COCO annotation json: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations", "categories")):
        raise DatasetError(f"{where} is not COCO annotation json: it needs the lists 'images', 'annotations' and 'categories'")
    for image in data["images"]:
        if not isinstance(image, dict) or not isinstance(image.get("id"), int):
            raise DatasetError(f"{where}: an entry of 'images' has no integer 'id'")
    for category in data["categories"]:
        if not isinstance(category, dict) or not isinstance(category.get("id"), int):
            raise DatasetError(f"{where}: an entry of 'categories' has no integer 'id'")
    for ann in data["annotations"]:
        missing = [k for k in _ANNOTATION_KEYS if not isinstance(ann, dict) or k not in ann]
        if missing:
            lacks = ", ".join(missing)
            raise DatasetError(f"{where}: an entry of 'annotations' lacks {lacks} (COCO's bbox evaluation needs each)")
        if not (isinstance(ann["bbox"], list) and len(ann["bbox"]) == 4):
            raise DatasetError(f"{where}: annotation {ann['id']} has a 'bbox' that is not [x, y, w, h]")
    return data


def coco_map(
    annotations: dict | str | Path,
    detections: Sequence[Detection | Sequence[float]],
    image_ids: Iterable[int] | None = None,
) -> dict[str, Any]:
    """COCO bbox mAP of ``detections`` over the scored images, as MLPerf's ``accuracy-coco.py``.

    ``detections``: ``(image_id, category_id, x, y, w, h, score)`` each, COCO category ids, absolute
    pixels. ``image_ids``: the images that were scored (MLPerf: every image in the accuracy log, with
    or without detections); by default the images the detections name — an image with no detection
    is then not scored, so pass it here for its objects to count as missed.
    """
    gt_data = load_annotations(annotations)
    known_images = {image["id"] for image in gt_data["images"]}
    known_categories = {category["id"] for category in gt_data["categories"]}

    results: list[dict[str, Any]] = []
    unknown_category = 0
    for i, det in enumerate(detections):
        if len(det) != 7:
            raise DatasetError(f"detection {i} has {len(det)} values, not (image_id, category_id, x, y, w, h, score)")
        image_id, category_id = det[0], det[1]
        if not _is_int(image_id) or not _is_int(category_id):
            raise DatasetError(f"detection {i}: image_id and category_id must be integers, got {image_id!r}, {category_id!r}")
        image_id, category_id = int(image_id), int(category_id)
        try:
            x, y, w, h, score = (float(v) for v in det[2:])
        except (TypeError, ValueError):
            raise DatasetError(f"detection {i}: box and score must be numbers, got {list(det[2:])!r}") from None
        if image_id not in known_images:
            raise DatasetError(f"detection {i} names image {image_id}, which is not in the annotations")
        if not all(math.isfinite(v) for v in (x, y, w, h, score)):
            raise DatasetError(f"detection {i} (image {image_id}) has a non-finite box or score: {[x, y, w, h, score]}")
        if w < 0 or h < 0:
            raise DatasetError(f"detection {i} (image {image_id}) has a negative width or height: {[x, y, w, h]}")
        unknown_category += category_id not in known_categories
        results.append({"image_id": image_id, "category_id": category_id, "bbox": [x, y, w, h], "score": score})

    scored = {r["image_id"] for r in results}
    if image_ids is not None:
        for image_id in image_ids:
            if not _is_int(image_id) or int(image_id) not in known_images:
                raise DatasetError(f"scored image {image_id!r} is not in the annotations")
            scored.add(int(image_id))
    if not scored:
        raise DatasetError("no image to score: no detections and no image_ids")

    from pycocotools.coco import COCO  # heavy and optional: only a detection job needs it
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt_data)  # COCOeval writes 'ignore' into the ground truth it is given
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(results)
        else:  # loadRes fails on an empty list; an empty result set scores every object as missed
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(coco_gt.dataset["images"]), "categories": copy.deepcopy(gt_data["categories"]),
                               "annotations": []}
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.imgIds = sorted(scored)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [float(s) for s in evaluator.stats]
    return {
        "map": _value(stats[0]),
        "map50": _value(stats[1]),
        "map75": _value(stats[2]),
        "images": len(scored),
        "detections": len(results),
        "detections_unknown_category": unknown_category,
        "stats": stats,
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _value(stat: float) -> float | None:
    """pycocotools' -1 (no ground truth to score against) as None."""
    return None if stat < 0 else stat
