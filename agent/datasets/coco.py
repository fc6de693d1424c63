"""``coco:DIR[:N]``: COCO 2017 validation images for detection, as MLPerf Inference's ``Coco`` dataset reads them.

Layout: ``DIR/annotations/instances_val2017.json`` (the ground truth, read for its ``images``
list only) and ``DIR/val2017/<file_name>`` for each image. Samples come sorted by image id, and
``N`` takes the first N of them; each sample's label is its COCO image id, and ``Samples.truth``
carries what a mAP needs: the annotations file, the image ids and each image's (height, width)
from the json (boxes come back relative to the image, MLPerf's ``PostProcessCoco`` scales them by
these). Every image the chosen samples name must be in ``val2017``: MLPerf skips missing ones
silently; here a missing image is an error, so a score never covers fewer images than it says.
The default preprocessing is ``coco-ssd-mobilenet`` (300×300, MLPerf's SSD-MobileNet).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.datasets import Samples, Shapes, image_preprocess, spec
from agent.errors import DatasetError
from agent.runtimes.base import TensorSpec

DEFAULT_PREPROCESS = "coco-ssd-mobilenet"
ANNOTATIONS = Path("annotations") / "instances_val2017.json"
IMAGES = "val2017"


def _images(annotations: Path) -> list[dict[str, Any]]:
    """The json's ``images`` entries (id, file_name, height, width), sorted by id."""
    try:
        doc = json.loads(annotations.read_bytes())
        images = [{"id": int(i["id"]), "file_name": str(i["file_name"]), "height": int(i["height"]),
                   "width": int(i["width"])} for i in doc["images"]]
    except OSError as exc:
        raise DatasetError(f"cannot read {annotations}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise DatasetError(f"{annotations} is not a COCO instances file (an 'images' list of id, file_name, height, "
                           "width); use the instances_val2017.json from COCO's annotations_trainval2017.zip") from None
    return sorted(images, key=lambda i: i["id"])


def load(path: Path, limit: int | None, inputs: Sequence[TensorSpec], shapes: Shapes, preprocess: str | None) -> Samples:
    """The first ``limit`` val2017 images by id in ``path`` (see the module docstring) for the model's image input."""
    root = spec.folder(path, "coco")
    annotations = root / ANNOTATIONS
    if not annotations.is_file():
        raise DatasetError(f"coco dataset folder {root} has no {ANNOTATIONS}; put COCO's instances_val2017.json there "
                           f"and the images in {root / IMAGES}")
    images = _images(annotations)
    chosen = spec.first(images, limit, f"coco dataset {annotations}")
    paths = [root / IMAGES / i["file_name"] for i in chosen]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f"{annotations} names {len(missing)} image(s) of the {len(chosen)} chosen that are not in "
                           f"{root / IMAGES}, first {missing[0].name}; restore them, or take fewer with :N")
    prepared = image_preprocess.prepare(len(paths), lambda i: image_preprocess.read_image(paths[i]), inputs, shapes,
                                        preprocess or DEFAULT_PREPROCESS, f"coco:{root}")
    ids = [i["id"] for i in chosen]
    truth = {"annotations": str(annotations.resolve()), "image_ids": ids,
             "sizes": [(i["height"], i["width"]) for i in chosen]}
    source = f"coco:{root.resolve()} (first {len(chosen)} of {len(images)} images by id)"
    return Samples(f"coco:{root}", source, prepared.feeds, np.array(ids, dtype=np.int64), prepared.raw,
                   inputs=prepared.records, task="detection", truth=truth)
