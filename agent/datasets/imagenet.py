"""``imagenet:DIR[:N]``: the ImageNet (ILSVRC2012) validation images on the user's disk.

Two layouts, as the images usually come:

- MLPerf's: the 50,000 images flat in DIR with ``DIR/val_map.txt``, one ``ILSVRC2012_val_00000001.JPEG 65``
  per line (the file, relative to DIR, and its class id 0–999), as MLPerf Inference's ``Imagenet``
  dataset reads it. Samples come in val_map order.
- class folders: ``DIR/n01440764/…``, one sub-folder per WordNet id; a folder's position among the
  sorted sub-folders is its class id, which is ImageNet's 0–999 only when all 1,000 folders are there
  (empty ones count), so a set of WordNet folders that is not complete is refused rather than
  silently renumbered. Folders with other names are the user's own classes, numbered the same way.
  Samples come sorted by file name (then folder): ImageNet's numbered names give val_map's order, so
  both layouts give the same samples in the same order.

``N`` takes the first N in that order. Every image named must be there: a missing one is an error
(MLPerf skips it silently, which changes the score's denominator). The default preprocessing is
``imagenet-vgg`` (ResNet-50 v1.5); a MobileNet wants ``--preprocess imagenet-mobilenet``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agent.datasets import Samples, Shapes, image_preprocess, spec
from agent.errors import DatasetError
from agent.runtimes.base import TensorSpec

DEFAULT_PREPROCESS = "imagenet-vgg"
VAL_MAP = "val_map.txt"
CLASSES = 1000
_WNID = re.compile(r"^n[0-9]{8}$")


def _val_map(root: Path) -> tuple[list[Path], list[int]]:
    """The images and class ids ``val_map.txt`` lists, in its order."""
    paths, labels = [], []
    text = (root / VAL_MAP).read_text(errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"[0-9]+", parts[1]):
            raise DatasetError(f"{root / VAL_MAP} line {number} is {line.strip()[:80]!r}; each line is "
                               "'<image file> <class id>', e.g. 'ILSVRC2012_val_00000001.JPEG 65'")
        paths.append(root / parts[0])
        labels.append(int(parts[1]))
    return paths, labels


def _folders(root: Path) -> tuple[list[Path], list[int], int]:
    """Images under class sub-folders, sorted by (file name, folder), their class ids and the class count."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"imagenet dataset folder {root} has neither {VAL_MAP} nor class sub-folders (n01440764/…); "
                           f"give the folder with MLPerf's {VAL_MAP} beside the images, or one sub-folder per class")
    wnids = [c for c in classes if _WNID.match(c)]
    if wnids and len(wnids) == len(classes) and len(classes) != CLASSES:
        raise DatasetError(f"imagenet dataset folder {root} has {len(classes)} WordNet class folders, not ImageNet's "
                           f"{CLASSES}; a folder's sorted position is its class id, so keep all {CLASSES} (empty ones "
                           f"are fine) or use {VAL_MAP}")
    found = [(p.name, index, p) for index, c in enumerate(classes) for p in (root / c).iterdir()
             if p.suffix.lower() in image_preprocess.IMAGE_SUFFIXES and not p.name.startswith(".")]
    found.sort(key=lambda item: (item[0], item[1]))
    return [p for _, _, p in found], [index for _, index, _ in found], len(classes)


def load(path: Path, limit: int | None, inputs: Sequence[TensorSpec], shapes: Shapes, preprocess: str | None,
         perturb: image_preprocess.Perturb | None = None) -> Samples:
    """The first ``limit`` validation images in ``path`` (see the module docstring) for the model's image input;
    ``perturb`` corrupts each after its geometry (robustness)."""
    root = spec.folder(path, "imagenet")
    if (root / VAL_MAP).is_file():
        paths, labels = _val_map(root)
        layout, classes = VAL_MAP, CLASSES
    else:
        paths, labels, classes = _folders(root)
        layout = "class folders"
    what = f"imagenet dataset {root} ({layout})"
    total = len(paths)
    chosen = spec.first(list(zip(paths, labels, strict=True)), limit, what)
    missing = [p for p, _ in chosen if not p.is_file()]
    if missing:
        raise DatasetError(f"{what} names {len(missing)} image(s) that are not there, first {missing[0]}; restore them, "
                           f"or take fewer with :N")
    prepared = image_preprocess.prepare(len(chosen), lambda i: image_preprocess.read_image(chosen[i][0]), inputs,
                                        shapes, preprocess or DEFAULT_PREPROCESS, f"imagenet:{root}", perturb=perturb)
    source = f"imagenet:{root.resolve()} ({layout}, first {len(chosen)} of {total})"
    return Samples(f"imagenet:{root}", source, prepared.feeds, np.array([label for _, label in chosen], dtype=np.int64),
                   prepared.raw, inputs=prepared.records, task="classification", family="image", n_classes=classes)
