"""Datasets as loaded samples (LoadGen's QSL): inputs ready in the model's dtype, plus labels.

``synthetic`` fits any model: it draws inputs from the model's own input specs (several inputs,
integer inputs, dynamic dimensions resolved with ``--shape``), or feeds the values ``--input``
gives (``input_values``). ``fashion-mnist`` is real data
for the zoo's classifier. A folder of ``.npy`` files (a path, or ``npy:PATH``) is the user's own
data: one file per input, optional labels (``npy_folder``). Samples are converted (and quantised)
here, once, before any timing.

Labelled samples keep their raw inputs beside their labels (``Samples.raw``), so a score can name
the exact samples it was computed on (``fingerprint``): an int8 and an fp32 model fed the same images
(quantised differently) score the same samples, whatever the dataset was called.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.datasets import fashion_mnist, input_values, npy_folder
from agent.errors import DatasetError, SettingsError
from agent.runtimes.base import TensorSpec
from agent.runtimes.quant import to_model_input
from agent.runtimes.shapes import concrete_shape

SYNTHETIC_SAMPLES = 64
# by name; load() also takes a folder of .npy files (npy_folder)
DATASETS = ("synthetic", "fashion-mnist", "fashion-mnist:subset", "fashion-mnist:full")


def fingerprint(inputs: np.ndarray, labels: np.ndarray) -> str:
    """sha256 over samples as the dataset holds them, in order: a header line (the inputs' dtype,
    per-sample shape and the sample count), every input's bytes (C order), then every label as a
    little-endian int64. Runs with equal fingerprints scored the same samples in the same order.

    A folder of ``.npy`` files for a model with several inputs holds one structured record per
    sample (a field per input, in model input order, each in its file's dtype and per-sample
    shape): its header's dtype lists the fields as ``dtype[shape]``, comma-separated, without names."""
    inputs = np.ascontiguousarray(inputs)
    if len(inputs) != len(labels):
        raise DatasetError(f"{len(inputs)} inputs and {len(labels)} labels cannot be fingerprinted together")
    shape = "x".join(map(str, inputs.shape[1:]))
    fields = inputs.dtype.fields or {}
    dtype = ",".join(f"{fields[n][0].base.str}[{'x'.join(map(str, fields[n][0].shape))}]" for n in inputs.dtype.names or ())
    digest = hashlib.sha256(f"{dtype or inputs.dtype.str} {shape} {len(labels)}\n".encode())
    digest.update(inputs.tobytes())
    digest.update(np.asarray(labels, dtype="<i8").tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Samples:
    """Per-sample feeds (each with a leading batch dimension of 1), labels when known, and the
    dataset's own inputs (before any conversion for a model) for labelled data, to fingerprint."""

    name: str
    source: str
    feeds: list[dict[str, np.ndarray]]
    labels: np.ndarray | None
    raw: np.ndarray | None = None
    inputs: tuple[dict[str, Any], ...] = ()  # per input: resolved shape, dtype and source (``input_values.fill``)

    def __len__(self) -> int:
        return len(self.feeds)

    def fingerprint(self, indices: np.ndarray) -> str:
        """``fingerprint`` of the labelled samples at ``indices`` (ascending: dataset order)."""
        if self.labels is None or self.raw is None:
            raise DatasetError(f"{self.name} has no labelled inputs to fingerprint")
        return fingerprint(self.raw[indices], self.labels[indices])


Shapes = dict[str, tuple[int, ...]]


def synthetic(inputs: Sequence[TensorSpec], shapes: Shapes, count: int = SYNTHETIC_SAMPLES, seed: int = 0,
              values: dict[str, str] | None = None) -> Samples:
    """Inputs shaped and typed as the model declares them, each drawn from its default range or fed
    what ``values`` (``--input``) gives it (``input_values``); the record of each is kept."""
    rng = np.random.default_rng(seed)
    feeds: list[dict[str, np.ndarray]] = [{} for _ in range(count)]
    records = []
    for spec in inputs:
        filled, record = input_values.fill(spec, concrete_shape(spec, shapes), (values or {}).get(spec.name), count, rng)
        for feed, value in zip(feeds, filled, strict=True):
            feed[spec.name] = value
        records.append(record)
    return Samples("synthetic", f"synthetic(seed={seed})", feeds, None, inputs=tuple(records))


def _fit_images(images: np.ndarray, inputs: Sequence[TensorSpec], shapes: Shapes, name: str) -> list[dict[str, np.ndarray]]:
    """Reshape 28x28 grayscale images to the model's single image input, or say why they do not fit."""
    if len(inputs) != 1:
        raise DatasetError(
            f"dataset {name} gives one image per sample, but the model has {len(inputs)} inputs "
            f"({', '.join(s.name for s in inputs)}); use --dataset synthetic"
        )
    spec = inputs[0]
    shape = concrete_shape(spec, shapes)
    per_sample = int(np.prod(shape[1:])) if shape else 0
    dtype = np.dtype(spec.dtype)
    pixels = images.shape[1] * images.shape[2]
    if shape[0] != 1 or per_sample != pixels or not (spec.quantised or np.issubdtype(dtype, np.floating)):
        want = "x".join(map(str, shape))
        raise DatasetError(
            f"dataset {name} gives {images.shape[1]}x{images.shape[2]} grayscale images ({pixels} values per sample), "
            f"but input {spec.name!r} takes {want} {spec.dtype}; use --dataset synthetic or a model for this data"
        )
    real = images.astype(np.float32) / 255.0
    return [{spec.name: to_model_input(img.reshape(shape), spec)} for img in real]


def load(name: str, inputs: Sequence[TensorSpec], shapes: Shapes, seed: int = 0, values: dict[str, str] | None = None) -> Samples:
    """Load dataset ``name`` for a model with ``inputs``, ``values`` fixing inputs of synthetic data
    (``--input``); ``name`` may be a folder of ``.npy`` files (``npy_folder``); unknown names list the known ones."""
    names = [s.name for s in inputs]
    for given in values or {}:
        if given not in names:
            raise SettingsError(f"--input names input {given!r}, but the model's inputs are: {', '.join(names)}")
    if name == "synthetic":
        return synthetic(inputs, shapes, seed=seed, values=values)
    if values:
        raise SettingsError(f"--input sets synthetic inputs, but the dataset is {name}; drop --input or use --dataset synthetic")
    if name.startswith("fashion-mnist") and name in DATASETS:
        split = name.partition(":")[2] or "auto"
        data = fashion_mnist.test_set(split)
        feeds = _fit_images(data.images, inputs, shapes, name)
        records = tuple({"name": s.name, "shape": list(feeds[0][s.name].shape), "dtype": s.dtype, "source": "dataset"}
                        for s in inputs)
        return Samples(name, data.source, feeds, data.labels, data.images, inputs=records)
    folder = npy_folder.folder_of(name)
    if folder is not None:
        data = npy_folder.load(folder, inputs, shapes)
        return Samples(name, data.source, data.feeds, data.labels, data.raw, inputs=data.records)
    raise DatasetError(f"unknown dataset {name!r}; use one of: {', '.join(DATASETS)}, "
                       f"or a folder of .npy files ({npy_folder.DOCS})")
