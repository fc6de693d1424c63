"""A dataset given as a folder of ``.npy`` files: the user's own data, without writing a loader.

Calibrating a quantised model (``edgeperf quantize --calibration DIR``), scoring it on the user's
own test set (``--eval DIR``, ``edgeperf-agent bench --dataset DIR``) and running it on real
inputs rather than random ones all need data that is not built in. Every such data set can be
saved with ``numpy.save`` in a minute, so this is the one format, read the same everywhere
(docs/engines.md, "Datasets"):

- one file per model input, ``<input name>.npy``, holding N samples stacked on a first axis: a
  sample has the input's shape without its leading batch dimension of 1 (input [1,1,28,28] → file
  [N,1,28,28]); the whole input shape per sample ([N,1,1,28,28]) is read too. Free dimensions take
  the file's sizes, and must equal ``--shape`` where it names the input;
- a model with one input may name its one file anything (``images.npy``);
- ``labels.npy`` (optional): N non-negative integer class ids; without it the data is unlabelled
  (performance only);
- floats are real values, quantised with the input's own parameters for a quantised input and cast
  to a float input's dtype; integers and bools of a quantised or integer input are taken as they
  are (in range), integers of a float input as the numbers they are (not scaled).

Files are read with ``allow_pickle=False`` (an object array is refused) and memory-mapped; the
samples are copied out, converted, before any timing. Every mistake is one ``DatasetError`` line
naming the file and the fix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.datasets.input_values import is_string
from agent.errors import DatasetError
from agent.runtimes.base import TensorSpec
from agent.runtimes.quant import to_model_input
from agent.runtimes.shapes import concrete_shape

PREFIX = "npy:"
LABELS = "labels.npy"
DOCS = "docs/engines.md"
_MAGIC = b"\x93NUMPY"
_MAX_SOURCE = 4000  # the result's dataset.source holds at most 4096 characters


@dataclass(frozen=True)
class Folder:
    """What ``Samples`` is built from: per-sample feeds (batch 1), labels or None, the inputs as the
    folder holds them (``raw``, see ``agent.datasets.fingerprint``), records and the source line."""

    source: str
    feeds: list[dict[str, np.ndarray]]
    labels: np.ndarray | None
    raw: np.ndarray
    records: tuple[dict[str, Any], ...]


def folder_of(name: str) -> Path | None:
    """The folder ``name`` points at (``npy:PATH``, or a path to an existing folder), or None when
    ``name`` is no path at all. A name written as a path (``npy:``, a ``/``, ``./``, ``~``) whose
    folder does not exist is an error, rather than an unknown dataset."""
    explicit = name.startswith(PREFIX)
    text = name[len(PREFIX):] if explicit else name
    if explicit and not text.strip():
        raise DatasetError(f"dataset {name} names no folder; write npy:PATH (a folder of .npy files, {DOCS})")
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        raise DatasetError(f"dataset {name} is a file; give the folder that holds it (one <input name>.npy per input, "
                           f"optional labels.npy; {DOCS})")
    if explicit or "/" in text or "\\" in text or text.startswith((".", "~")):
        raise DatasetError(f"dataset folder {text} does not exist; check the path (a folder of .npy files, {DOCS})")
    return None


def _dims(shape: Sequence[Any]) -> str:
    return "[" + ",".join(str(d) if isinstance(d, int) and d >= 0 else (d if isinstance(d, str) else "?")
                          for d in shape) + "]"


def _file_name(spec: TensorSpec) -> str:
    return spec.name.replace("/", "_").replace("\\", "_") + ".npy"


def _match(folder: Path, files: list[Path], inputs: Sequence[TensorSpec]) -> dict[str, Path]:
    """Which file feeds which input (by ``<input name>.npy``; one-input models: any one file)."""
    names = ", ".join(s.name for s in inputs)
    by_file = {_file_name(s): s.name for s in inputs}
    found = {by_file[f.name]: f for f in files if f.name in by_file}
    others = [f for f in files if f.name not in by_file]
    if not files:
        only = " (only labels.npy)" if (folder / LABELS).is_file() else ""
        raise DatasetError(f"dataset folder {folder} has no input files{only}; save each input's samples there as "
                           f"<input name>.npy ({', '.join(by_file)}; {DOCS})")
    if len(inputs) == 1 and not found and len(others) > 1:
        listed = ", ".join(f.name for f in others)
        raise DatasetError(f"dataset folder {folder} has several .npy files ({listed}) and none is named "
                           f"{_file_name(inputs[0])} after the model's one input; keep one, or name it {_file_name(inputs[0])}")
    if len(inputs) == 1 and not found:
        return {inputs[0].name: others[0]}
    if others:
        raise DatasetError(f"{others[0].name} in {folder} names no input of the model; its inputs are: {names}; "
                           f"rename it to <input name>.npy or move it out of the folder")
    for spec in inputs:
        if spec.name not in found:
            raise DatasetError(f"input {spec.name!r} has no file in dataset folder {folder}; add {_file_name(spec)} "
                               f"(N samples stacked on a first axis; the model's inputs are: {names})")
    return found


def _read(path: Path) -> np.ndarray:
    """The array in ``path``, memory-mapped, or one line saying why it cannot be read."""
    with path.open("rb") as f:
        head = f.read(len(_MAGIC))
    if head != _MAGIC:
        what = "an .npz archive" if head.startswith(b"PK") else ("empty" if not head else "not a .npy file")
        raise DatasetError(f"{path} is {what}; write each array with numpy.save(path, array) ({DOCS})")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "object" in str(exc).lower() or "pickle" in str(exc).lower():
            raise DatasetError(f"{path} holds Python objects (a pickled object array), which are not loaded; "
                               "save numbers or strings instead, e.g. numpy.save(path, array.astype('float32'))") from None
        raise DatasetError(f"{path} is a damaged .npy file ({exc}); write it again with numpy.save") from None
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path} cannot be read as a .npy file ({exc}); write it again with numpy.save") from None


def _sample_shape(spec: TensorSpec, shapes: dict[str, tuple[int, ...]], path: Path, array: np.ndarray) -> tuple[int, ...]:
    """The feed shape of one sample of ``array`` (batch 1 in front), or why the file does not fit."""
    pattern: list[Any] = list(concrete_shape(spec, shapes) if spec.name in shapes else spec.shape)
    free = [not isinstance(d, int) or d < 0 for d in pattern]
    batch = bool(pattern) and (free[0] or pattern[0] == 1)
    got = array.shape[1:]

    def fits(want: list[Any], loose: list[bool]) -> bool:
        return len(got) == len(want) and all(g >= 1 if f else g == w for g, w, f in zip(got, want, loose, strict=True))

    if batch and fits(pattern[1:], free[1:]):
        return (1, *got)
    if fits([1, *pattern[1:]] if batch else pattern, [False, *free[1:]] if batch else free):
        return tuple(got)
    per = pattern[1:] if batch else pattern
    given = f" (--shape {spec.name}={'x'.join(map(str, pattern))})" if spec.name in shapes else ""
    raise DatasetError(f"input {spec.name!r}{given} takes {_dims(per)} per sample, stacked as {_dims(['N', *per])}; "
                       f"{path.name} holds {_dims(array.shape)}; save the samples stacked on a first axis in that shape"
                       + ("" if given or not any(free[1:]) else f", or set the free sizes with --shape {spec.name}=..."))


def _convert(spec: TensorSpec, path: Path, array: np.ndarray) -> None:
    """Refuse values that cannot become the input's dtype (strings for a float input, floats for an
    integer input, integers out of its range, integers of another type for a quantised input)."""
    kind = array.dtype.kind
    if is_string(spec):
        if kind not in "US":
            raise DatasetError(f"{path.name} holds {array.dtype}, but input {spec.name!r} takes strings; "
                               "save them as a numpy string array (dtype str)")
        return
    dtype = np.dtype(spec.dtype)
    real = spec.quantised or np.issubdtype(dtype, np.floating)
    fix = f"save it with array.astype('{'float32' if real else spec.dtype}')"
    if kind not in "biuf":
        raise DatasetError(f"{path.name} holds {array.dtype}, which input {spec.name!r} ({spec.dtype}) cannot take; {fix}")
    if kind == "f":
        if not real:
            raise DatasetError(f"{path.name} holds {array.dtype}, but input {spec.name!r} takes {spec.dtype} (integers); {fix}")
        if spec.quantised and array.size and not np.isfinite(array).all():
            raise DatasetError(f"{path.name} holds NaN or infinite values, which input {spec.name!r} cannot be quantised "
                               f"from; replace them with finite numbers")
        return
    if np.issubdtype(dtype, np.floating):
        return  # integers of a float input: the numbers they are
    if spec.quantised and array.dtype != dtype:
        raise DatasetError(f"{path.name} holds {array.dtype}, but input {spec.name!r} is quantised {spec.dtype} "
                           f"(scale {spec.scale:g}, zero point {spec.zero_point}); give real values as float32 "
                           f"(quantised with its parameters) or {spec.dtype} values already quantised")
    lo, hi = (0, 1) if dtype == np.bool_ else (np.iinfo(dtype).min, np.iinfo(dtype).max)
    if array.size and array.dtype != dtype and (int(array.min()) < lo or int(array.max()) > hi):
        raise DatasetError(f"{path.name} holds {array.dtype} values {int(array.min())}..{int(array.max())}, but input "
                           f"{spec.name!r} is {spec.dtype} ({lo}..{hi}); give values in that range")


def _labels(path: Path) -> np.ndarray:
    labels = _read(path)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DatasetError(f"{LABELS} holds {_dims(labels.shape)}; save one integer class id per sample, shape [N]")
    if labels.dtype.kind not in "iu":
        raise DatasetError(f"{LABELS} holds {labels.dtype}, not integers; save class ids with labels.astype('int64')")
    if labels.size and labels.min() < 0:
        first = int(np.argmax(labels < 0))
        raise DatasetError(f"{LABELS} holds a negative class id ({int(labels[first])} at sample {first}); "
                           "class ids are 0, 1, 2, ...")
    return np.asarray(labels, dtype=np.int64)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _raw(arrays: list[np.ndarray]) -> np.ndarray:
    """One input: its array as the file holds it. Several: one structured record per sample, a
    field per input in model input order, each in its file's dtype and per-sample shape."""
    if len(arrays) == 1:
        return arrays[0]
    raw = np.empty(len(arrays[0]), dtype=[(f"f{i}", a.dtype, a.shape[1:]) for i, a in enumerate(arrays)])
    for i, array in enumerate(arrays):
        raw[f"f{i}"] = array
    return raw


def load(folder: Path, inputs: Sequence[TensorSpec], shapes: dict[str, tuple[int, ...]]) -> Folder:
    """Read ``folder`` for a model with ``inputs`` (``--shape`` in ``shapes``); see the module docstring."""
    # hidden files are skipped: macOS leaves "._images.npy" beside every file it copies to a device's card
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".npy" and not p.name.startswith(".") and p.is_file())
    labels_file = next((p for p in files if p.name == LABELS), None)
    if labels_file is not None and any(_file_name(s) == LABELS for s in inputs):
        labels_file = None  # an input named "labels" is fed from labels.npy
    files = [p for p in files if p != labels_file]
    if not files and labels_file is None:
        raise DatasetError(f"dataset folder {folder} holds no .npy files; save each input's samples there as "
                           f"<input name>.npy with numpy.save ({DOCS})")
    matched = _match(folder, files, inputs)
    arrays, feed_shapes = [], []
    for spec in inputs:
        path = matched[spec.name]
        array = _read(path)
        if array.ndim == 0 or len(array) == 0:
            what = "one value" if array.ndim == 0 else f"no samples ({_dims(array.shape)})"
            raise DatasetError(f"{path.name} holds {what}; save N >= 1 samples stacked on a first axis")
        feed_shapes.append(_sample_shape(spec, shapes, path, array))
        _convert(spec, path, array)
        arrays.append(array)
    labels = _labels(labels_file) if labels_file is not None else None
    counts = {matched[s.name].name: len(a) for s, a in zip(inputs, arrays, strict=True)}
    if labels is not None:
        counts[LABELS] = len(labels)
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name} holds {n}" for name, n in counts.items())
        raise DatasetError(f"sample counts differ in {folder}: {listed}; every file holds the same N samples on its first axis")
    count = len(arrays[0])
    feeds: list[dict[str, np.ndarray]] = [{} for _ in range(count)]
    for spec, array, shape in zip(inputs, arrays, feed_shapes, strict=True):
        for i, feed in enumerate(feeds):
            sample = np.array(array[i], order="C").reshape(shape)  # a copy in memory: no page faults while timing
            feed[spec.name] = sample.astype(object) if is_string(spec) else to_model_input(sample, spec)
    resolved = folder.resolve()
    digests = {spec.name: _sha256(matched[spec.name]) for spec in inputs}
    records = tuple({"name": s.name, "shape": list(shape), "dtype": s.dtype, "source": "dataset",
                     "path": str(matched[s.name].resolve()), "sha256": digests[s.name]}
                    for s, shape in zip(inputs, feed_shapes, strict=True))
    hashes = [(matched[s.name].name, digests[s.name]) for s in inputs]
    if labels_file is not None:
        hashes.append((LABELS, _sha256(labels_file)))
    source = f"{PREFIX}{resolved} " + " ".join(f"{name}={digest[:12]}" for name, digest in hashes)
    if len(source) > _MAX_SOURCE:
        combined = hashlib.sha256("".join(digest for _, digest in hashes).encode()).hexdigest()
        source = f"{PREFIX}{resolved} files={combined[:12]}"[:_MAX_SOURCE]
    return Folder(source, feeds, labels, _raw(arrays), records)
