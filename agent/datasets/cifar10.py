"""``cifar10:DIR[:N]``: the CIFAR-10 test set (MLPerf Tiny image classification), from its python batch.

``DIR/test_batch`` (or ``DIR/cifar-10-batches-py/test_batch``), the file of CIFAR-10's "python
version": a pickled dict with ``data`` (10,000 rows of 3,072 uint8, the red, green and blue
32×32 planes) and ``labels`` (class ids 0–9), read the way Tiny's ``train.load_cifar_10_data``
reads it. Samples keep the file's order; ``N`` takes the first N. Tiny's reference accuracy runs
on a 200-image subset (``perf_samples_idxs.npy``); this loader reads the whole test set.

The file is a pickle, and unpickling runs whatever the file names, so only the few names a CIFAR
batch is built from (numpy's array reconstruction, ``_codecs.encode`` for Python 2's strings)
are allowed: a file naming anything else is refused, not run. The default preprocessing is
``cifar10-tiny`` (the raw 0–255 values, as Tiny's model was trained on them).
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.datasets import Samples, Shapes, image_preprocess, spec
from agent.errors import DatasetError
from agent.runtimes.base import TensorSpec

DEFAULT_PREPROCESS = "cifar10-tiny"
BATCH = "test_batch"
CLASSES = 10
SIDE = 32
_ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
            *((f"numpy.{core}.{module}", name) for core in ("core", "_core")
              for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")))}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and nothing else (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a CIFAR batch")
        if module.startswith("numpy.core."):  # numpy 2 moved numpy.core to numpy._core; older numpy has only the first
            try:
                return getattr(importlib.import_module(module.replace("numpy.core.", "numpy._core.", 1)), name)
            except ImportError:
                pass
        return super().find_class(module, name)


def _batch_file(root: Path) -> Path:
    for candidate in (root / BATCH, root / "cifar-10-batches-py" / BATCH):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"cifar10 dataset folder {root} has no {BATCH}; give the cifar-10-batches-py folder of "
                       "CIFAR-10's python version (cifar-10-python.tar.gz)")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(data [N, 3072] uint8, labels [N] int64)`` from a CIFAR python batch, or one line saying why not."""
    try:
        with path.open("rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"] if b"data" in batch else batch["data"])
        labels = np.asarray(batch[b"labels"] if b"labels" in batch else batch["labels"])
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise DatasetError(f"{path} is not a CIFAR-10 python batch ({exc}); use test_batch from "
                           "cifar-10-python.tar.gz") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE or labels.shape != (len(data),) \
            or labels.dtype.kind not in "iu":
        raise DatasetError(f"{path} holds data {data.dtype}{list(data.shape)} and labels {labels.dtype}{list(labels.shape)}; "
                           f"a CIFAR-10 batch holds N rows of {3 * SIDE * SIDE} uint8 and N integer labels")
    return data, labels.astype(np.int64)


def _bgr(row: np.ndarray) -> np.ndarray:
    """One row (R, G, B planes) as a BGR HWC image, the form every image loader hands preprocessing."""
    return np.ascontiguousarray(row.reshape(3, SIDE, SIDE).transpose(1, 2, 0)[:, :, ::-1])


def load(path: Path, limit: int | None, inputs: Sequence[TensorSpec], shapes: Shapes, preprocess: str | None,
         perturb: image_preprocess.Perturb | None = None) -> Samples:
    """The first ``limit`` test images (see the module docstring) for the model's image input; ``perturb``
    corrupts each after its geometry (robustness)."""
    file = _batch_file(spec.folder(path, "cifar10"))
    data, labels = read_batch(file)
    count = len(spec.first(range(len(data)), limit, f"cifar10 dataset {file}"))
    prepared = image_preprocess.prepare(count, lambda i: _bgr(data[i]), inputs, shapes,
                                        preprocess or DEFAULT_PREPROCESS, f"cifar10:{path}", perturb=perturb)
    source = f"cifar10:{file.resolve()} (first {count} of {len(data)})"
    return Samples(f"cifar10:{path}", source, prepared.feeds, labels[:count], prepared.raw, inputs=prepared.records,
                   task="classification", family="image", n_classes=CLASSES)
