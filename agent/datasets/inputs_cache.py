"""``--inputs-cache DIR``: by-path datasets kept preprocessed, so a second run skips decoding.

Decoding and resizing 50,000 JPEGs takes minutes on a small device, and it is the same work for
every run of the same model on the same data. MLPerf's reference keeps a ``preprocessed/`` copy
for the same reason. Here one file per (dataset, model input) holds the samples exactly as a run
feeds them: after preprocessing AND after quantisation, in the model's dtype and layout, with the
preprocessed values before quantisation (``Samples.raw``, what a score is fingerprinted by) unless
they are the feeds themselves (float32 inputs), labels and task ground truth. Caching the final
feeds makes a hit cost one file read; the price is one entry per input dtype and quantisation,
which the key already separates.

The key is sha256 over: the cache format and agent version (preprocessing code can change), the
dataset kind, its resolved path, N, the preprocessing id, every model input spec (name, shape,
dtype, scale, zero point) with its ``--shape``, and every file under the dataset folder by
relative path, size and modification time. A file added, removed, replaced or touched gives a
new key, so a stale entry is never read, only left behind; old entries can be deleted at will.
Entries are written to a temporary file and renamed, so a run that dies mid-write leaves no
half entry; an entry that cannot be read is recomputed and written again.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent import __version__
from agent.datasets import Samples, Shapes
from agent.errors import SettingsError
from agent.runtimes.base import TensorSpec

FORMAT = 1
SUFFIX = ".npz"


def usable(folder: Path) -> Path:
    """``folder``, created if missing, or one line saying why the cache cannot live there."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise SettingsError(f"--inputs-cache {folder}: {existing} is a file; give a folder (it is created if missing)")
    if existing is not None and not os.access(existing, os.W_OK):
        raise SettingsError(f"--inputs-cache {folder}: {existing} is not writable; give a folder you can write")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _files(root: Path) -> list[str]:
    """Every file under ``root`` as ``relative path, size, mtime`` lines, sorted."""
    lines = []
    for here, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        for name in files:
            full = os.path.join(here, name)
            try:
                stat = os.stat(full)
            except OSError:  # a dangling link: absent, as far as the data is concerned
                continue
            lines.append(f"{os.path.relpath(full, root)}\t{stat.st_size}\t{stat.st_mtime_ns}\n")
    return sorted(lines)


def key(kind: str, path: Path, limit: int | None, preprocess: str, inputs: Sequence[TensorSpec], shapes: Shapes) -> str:
    """The cache key of a load (see the module docstring): 64 hex digits."""
    root = path.resolve()
    head = {"format": FORMAT, "agent": __version__, "kind": kind, "path": str(root), "limit": limit,
            "preprocess": preprocess, "inputs": [s.to_dict() | {"given_shape": list(shapes.get(s.name, ()))} for s in inputs]}
    digest = hashlib.sha256(json.dumps(head, sort_keys=True).encode())
    for line in _files(root):
        digest.update(line.encode())
    return digest.hexdigest()


def _stacked(feeds: list[dict[str, np.ndarray]], name: str) -> np.ndarray:
    """The samples of input ``name`` on a first axis (each feed has its batch axis of 1): the array
    they are views of when they are consecutive slices of one, else a stacked copy."""
    first = feeds[0][name]
    base = first.base
    if isinstance(base, np.ndarray) and base.shape == (len(feeds), *first.shape[1:]) and base.dtype == first.dtype \
            and base.flags.c_contiguous and all(f[name].base is base and f[name].shape == first.shape for f in feeds):
        start = base.__array_interface__["data"][0]
        step = base.strides[0]
        if all(f[name].__array_interface__["data"][0] == start + i * step for i, f in enumerate(feeds)):
            return base
    return np.concatenate([f[name] for f in feeds])


def store(folder: Path, cache_key: str, samples: Samples) -> bool:
    """Write ``samples`` under ``cache_key``; False (nothing written) when they do not fit the format."""
    if not samples.feeds or any(v.shape[:1] != (1,) for v in samples.feeds[0].values()):
        return False
    names = list(samples.feeds[0])
    arrays = {f"feed.{i}": _stacked(samples.feeds, name) for i, name in enumerate(names)}
    if any(a.dtype.hasobject for a in arrays.values()):
        return False
    raw = None
    if samples.raw is not None:
        raw = "feed.0" if samples.raw is arrays["feed.0"] else "raw"
        if raw == "raw":
            arrays["raw"] = samples.raw
    if samples.labels is not None:
        arrays["labels"] = samples.labels
    truth: dict[str, Any] | None = None
    if samples.truth is not None:
        if not isinstance(samples.truth, dict):
            return False
        truth = {}
        for k, v in samples.truth.items():
            if isinstance(v, np.ndarray):
                arrays[f"truth.{k}"] = v
            else:
                truth[k] = v
    meta = {"format": FORMAT, "name": samples.name, "source": samples.source, "task": samples.task,
            "n_classes": samples.n_classes, "inputs": list(samples.inputs), "names": names, "raw": raw,
            "truth": truth, "truth_arrays": sorted(k[6:] for k in arrays if k.startswith("truth."))}
    try:
        arrays["meta"] = np.array(json.dumps(meta))
    except (TypeError, ValueError):
        return False
    tmp = folder / f".{cache_key}.{os.getpid()}.tmp"
    try:
        with tmp.open("wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, folder / f"{cache_key}{SUFFIX}")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SettingsError(f"--inputs-cache {folder}: cannot write the cache ({exc.strerror}); free space or give "
                            "another folder") from None
    return True


def fetch(folder: Path, cache_key: str) -> Samples | None:
    """The samples stored under ``cache_key``, or None when there are none (or they cannot be read)."""
    path = folder / f"{cache_key}{SUFFIX}"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            if meta.get("format") != FORMAT:
                return None
            stacks = {name: npz[f"feed.{i}"] for i, name in enumerate(meta["names"])}
            labels = npz["labels"] if "labels" in npz.files else None
            raw = npz["raw"] if meta["raw"] == "raw" else stacks[meta["names"][0]] if meta["raw"] == "feed.0" else None
            truth = meta["truth"]
            if truth is not None:
                truth = truth | {k: npz[f"truth.{k}"] for k in meta["truth_arrays"]}
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None  # damaged or half-written by another version: recomputed and written again
    count = len(next(iter(stacks.values())))
    feeds = [{name: stack[i:i + 1] for name, stack in stacks.items()} for i in range(count)]
    return Samples(meta["name"], meta["source"], feeds, labels, raw, inputs=tuple(meta["inputs"]), task=meta["task"],
                   truth=truth, n_classes=meta["n_classes"])
