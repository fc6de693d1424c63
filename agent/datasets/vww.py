"""``vww:DIR[:N]``: MLPerf Tiny's visual wake words (is there a person?), 96×96 RGB images.

Layout as Tiny's data set ``vw_coco2014_96`` unpacks: ``DIR/person/*.jpg`` and
``DIR/non_person/*.jpg``. The reference model was trained with Keras' ``flow_from_directory``
over those two folders (``train_vww.py``), which numbers classes by sorted folder name, so
non_person = 0 and person = 1, as Tiny's ``generate_y_labels.py`` writes them. Samples come
sorted by path relative to DIR (every non_person image, then every person image, each by file
name); ``N`` takes the first N of that order, so a small N holds one class only, and a balanced
subset is a folder the user makes. The default preprocessing is ``vww-96`` (x/255, RGB).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agent.datasets import Samples, Shapes, image_preprocess, spec
from agent.errors import DatasetError
from agent.runtimes.base import TensorSpec

DEFAULT_PREPROCESS = "vww-96"
CLASSES = ("non_person", "person")  # class id = position


def load(path: Path, limit: int | None, inputs: Sequence[TensorSpec], shapes: Shapes, preprocess: str | None,
         perturb: image_preprocess.Perturb | None = None) -> Samples:
    """The first ``limit`` images of ``path`` (see the module docstring) for the model's image input;
    ``perturb`` corrupts each after its geometry (robustness)."""
    root = spec.folder(path, "vww")
    absent = [c for c in CLASSES if not (root / c).is_dir()]
    if absent:
        raise DatasetError(f"vww dataset folder {root} has no {absent[0]}/ folder; it holds person/ and non_person/ "
                           "with the images of each class (MLPerf Tiny's vw_coco2014_96)")
    found = sorted((p.relative_to(root).as_posix(), label) for label, c in enumerate(CLASSES) for p in (root / c).iterdir()
                   if p.suffix.lower() in image_preprocess.IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())
    chosen = spec.first(found, limit, f"vww dataset {root}")
    prepared = image_preprocess.prepare(len(chosen), lambda i: image_preprocess.read_image(root / chosen[i][0]), inputs,
                                        shapes, preprocess or DEFAULT_PREPROCESS, f"vww:{root}", perturb=perturb)
    source = f"vww:{root.resolve()} (first {len(chosen)} of {len(found)} by path)"
    return Samples(f"vww:{root}", source, prepared.feeds, np.array([label for _, label in chosen], dtype=np.int64),
                   prepared.raw, inputs=prepared.records, task="classification", family="image", n_classes=len(CLASSES))
