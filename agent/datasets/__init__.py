"""Datasets as loaded samples (LoadGen's QSL): inputs ready in the model's dtype, plus labels.

``synthetic`` fits any model: it draws inputs from the model's own input specs (several inputs,
integer inputs, dynamic dimensions resolved with ``--shape``), or feeds the values ``--input``
gives (``input_values``). ``fashion-mnist`` is real data
for the zoo's classifier. A folder of ``.npy`` files (a path, or ``npy:PATH``) is the user's own
data: one file per input, optional labels (``npy_folder``). Standard data sets are read from the
user's disk by kind, ``KIND:PATH[:N]`` (``spec``; ``imagenet``, ``coco``, ``vww``, ``cifar10``,
``speech-commands``, ``toycar``, one module each, imported only when named), preprocessed as
MLPerf's reference does for the model (``--preprocess``, else the zoo manifest's, else the
kind's default) and optionally kept preprocessed (``--inputs-cache``, ``inputs_cache``).
Samples are converted (and quantised) here, once, before any timing.

``perturb`` (``--mode robustness``, ``agent.corruptions``) loads an image or audio dataset again with
each sample corrupted: Fashion-MNIST's 28×28 images before scaling, a by-path image dataset after its
geometry and before its normalisation (``image_preprocess.transform``), Speech Commands' waveform
before its features. Such a load never reads or writes the inputs cache. ``family_of`` says which
datasets can be corrupted (``Samples.family``); synthetic data, ``.npy`` folders, COCO detection and
ToyCar anomaly clips cannot.

Labelled samples keep their raw inputs beside their labels (``Samples.raw``), so a score can name
the exact samples it was computed on (``fingerprint``): an int8 and an fp32 model fed the same images
(quantised differently) score the same samples, whatever the dataset was called.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from agent.datasets import fashion_mnist, input_values, npy_folder
from agent.datasets.spec import DatasetSpec
from agent.datasets.spec import parse as parse_spec
from agent.errors import DatasetError, EdgeperfError, SettingsError
from agent.runtimes.base import TensorSpec
from agent.runtimes.quant import to_model_input
from agent.runtimes.shapes import concrete_shape

SYNTHETIC_SAMPLES = 64
# by name; load() also takes a folder of .npy files (npy_folder) and KIND:PATH[:N] (KINDS)
DATASETS = ("synthetic", "fashion-mnist", "fashion-mnist:subset", "fashion-mnist:full")
# datasets by path: kind -> the module that loads it, imported when named. Each module has
# DEFAULT_PREPROCESS: str and load(path, limit, inputs, shapes, preprocess) -> Samples
KINDS = {
    "imagenet": "agent.datasets.imagenet",
    "coco": "agent.datasets.coco",
    "vww": "agent.datasets.vww",
    "cifar10": "agent.datasets.cifar10",
    "speech-commands": "agent.datasets.speech_commands",
    "toycar": "agent.datasets.toycar",
}
# what --mode robustness corrupts (agent.corruptions): by name and by kind; the rest cannot be corrupted meaningfully
FAMILIES = {"fashion-mnist": "image", "imagenet": "image", "vww": "image", "cifar10": "image", "speech-commands": "audio"}
CORRUPTIBLE = "fashion-mnist, imagenet:DIR, vww:DIR, cifar10:DIR or speech-commands:DIR"
Perturb = Callable[[np.ndarray, int], np.ndarray]  # (sample as the dataset holds it, its index) -> the sample corrupted


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
    task: str = "classification"  # "classification", "detection", "anomaly" or "segmentation": which metric scores it
    # ground truth beyond ``labels``: detection {"annotations": path, "image_ids": [...], "sizes": [(h, w), ...]};
    # anomaly {"clip": int64 array, sample -> clip} where a clip is split into segments
    truth: Any = None
    n_classes: int | None = None  # classes of a classification dataset (ImageNet 1000), where it knows them
    # a dataset by path: kind, resolved path, limit (N), preprocess id and the inputs cache's dir, key and hit
    origin: dict[str, Any] | None = None
    family: str | None = None  # "image" or "audio": what agent.corruptions can corrupt; None: not corruptible

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


def family_of(name: str) -> str | None:
    """``image`` or ``audio`` for a dataset ``--mode robustness`` can corrupt, else None."""
    where = by_path(name)
    if where is not None:
        return FAMILIES.get(where.kind)
    return "image" if name.startswith("fashion-mnist") and name in DATASETS else None


def not_corruptible(name: str) -> DatasetError:
    """The one line for a robustness run over a dataset ``agent.corruptions`` cannot corrupt."""
    return DatasetError(f"--mode robustness corrupts images or audio, and dataset {name} cannot be corrupted meaningfully "
                        f"(synthetic data, .npy folders, COCO detection and ToyCar anomaly clips are not supported); "
                        f"use {CORRUPTIBLE}")


def by_path(name: str) -> DatasetSpec | None:
    """``name`` parsed as ``KIND:PATH[:N]``, or None when it names no dataset kind."""
    return parse_spec(name, tuple(KINDS))


def preprocess_for(dataset: str, model: str, given: str | None) -> str | None:
    """The preprocessing id a run uses: ``given`` (``--preprocess``), else for a dataset by path the
    zoo manifest's ``preprocess`` for a ``zoo:`` model (None: the dataset kind's own default)."""
    if given or by_path(dataset) is None or not model.startswith("zoo:"):
        return given
    from agent import zoo

    try:
        found = zoo.resolve(model).model.preprocess
    except EdgeperfError:
        return None  # the model's own resolution reports a bad zoo name, with the names that exist
    return found if isinstance(found, str) else None


def reproduce_flags(samples: Samples) -> list[str]:
    """The bench flags that load ``samples`` the same way again: ``--preprocess`` (resolved, so a changed
    zoo default cannot change the replay) and ``--inputs-cache`` for a dataset by path."""
    origin = samples.origin or {}
    out = ["--preprocess", origin["preprocess"]] if origin.get("preprocess") else []
    if origin.get("inputs_cache"):
        out += ["--inputs-cache", origin["inputs_cache"]["dir"]]
    return out


def _load_by_path(name: str, where: DatasetSpec, inputs: Sequence[TensorSpec], shapes: Shapes,
                  preprocess: str | None, inputs_cache: Path | None, perturb: Perturb | None = None) -> Samples:
    """A ``KIND:PATH[:N]`` dataset, from the inputs cache when it holds it (then nothing is decoded);
    perturbed, it is always decoded and never cached."""
    from agent.datasets import inputs_cache as cache

    module = importlib.import_module(KINDS[where.kind])
    chosen = preprocess or module.DEFAULT_PREPROCESS
    origin: dict[str, Any] = {"kind": where.kind, "path": str(where.path.resolve()), "limit": where.limit,
                              "preprocess": chosen, "inputs_cache": None}
    if perturb is not None:  # corrupted samples are not the dataset: the cache holds only clean ones
        samples = module.load(where.path, where.limit, inputs, shapes, chosen, perturb=perturb)
        return replace(samples, name=name, origin=origin)
    key = None
    if inputs_cache is not None:
        folder = cache.usable(inputs_cache)
        key = cache.key(where.kind, where.path, where.limit, chosen, inputs, shapes)
        cached = cache.fetch(folder, key)
        origin["inputs_cache"] = {"dir": str(folder.resolve()), "key": key, "hit": cached is not None}
        if cached is not None:
            return replace(cached, name=name, origin=origin)
    samples = module.load(where.path, where.limit, inputs, shapes, chosen)
    if key is not None:
        cache.store(folder, key, samples)
    return replace(samples, name=name, origin=origin)


def load(name: str, inputs: Sequence[TensorSpec], shapes: Shapes, seed: int = 0, values: dict[str, str] | None = None,
         preprocess: str | None = None, inputs_cache: Path | None = None, perturb: Perturb | None = None) -> Samples:
    """Load dataset ``name`` for a model with ``inputs``, ``values`` fixing inputs of synthetic data
    (``--input``); ``name`` may be a folder of ``.npy`` files (``npy_folder``) or ``KIND:PATH[:N]``, which
    ``preprocess`` (an id, None: the kind's default) and ``inputs_cache`` (a folder) apply to; unknown
    names list the known ones. ``perturb`` corrupts every sample (robustness; see the module docstring)."""
    if perturb is not None and family_of(name) is None:
        raise not_corruptible(name)
    names = [s.name for s in inputs]
    for given in values or {}:
        if given not in names:
            raise SettingsError(f"--input names input {given!r}, but the model's inputs are: {', '.join(names)}")
    where = by_path(name)
    if where is None and (preprocess or inputs_cache is not None):
        flag = "--preprocess" if preprocess else "--inputs-cache"
        raise SettingsError(f"{flag} applies to datasets by path (KIND:PATH[:N], KIND one of {', '.join(KINDS)}), "
                            f"but the dataset is {name}; drop {flag}")
    if where is not None:
        if values:
            raise SettingsError(f"--input sets synthetic inputs, but the dataset is {name}; drop --input")
        return _load_by_path(name, where, inputs, shapes, preprocess, inputs_cache, perturb)
    if name == "synthetic":
        return synthetic(inputs, shapes, seed=seed, values=values)
    if values:
        raise SettingsError(f"--input sets synthetic inputs, but the dataset is {name}; drop --input or use --dataset synthetic")
    if name.startswith("fashion-mnist") and name in DATASETS:
        split = name.partition(":")[2] or "auto"
        data = fashion_mnist.test_set(split)
        images = data.images if perturb is None else np.stack([perturb(img, i) for i, img in enumerate(data.images)])
        feeds = _fit_images(images, inputs, shapes, name)
        records = tuple({"name": s.name, "shape": list(feeds[0][s.name].shape), "dtype": s.dtype, "source": "dataset"}
                        for s in inputs)
        return Samples(name, data.source, feeds, data.labels, images, inputs=records, family="image")
    folder = npy_folder.folder_of(name)
    if folder is not None:
        data = npy_folder.load(folder, inputs, shapes)
        return Samples(name, data.source, data.feeds, data.labels, data.raw, inputs=data.records)
    hint = f" (here {name}:PATH[:N], the folder of your copy: datasets are never downloaded)" if name in KINDS else ""
    raise DatasetError(f"unknown dataset {name!r}; use one of: {', '.join(DATASETS)}, or a folder of .npy files "
                       f"({npy_folder.DOCS}), or KIND:PATH[:N] with KIND one of {', '.join(KINDS)}{hint}")
