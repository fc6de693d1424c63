"""A model file on disk: where it is, what format it is, its sha256 and size.

A result names its model by content (sha256), so two numbers for "the same model" are known to
be the same bytes. Core ML packages are directories; they are hashed over their sorted relative
paths and contents so the hash does not depend on the file system's listing order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from agent import zoo
from agent.errors import ModelError

FORMATS = {".tflite": "tflite", ".onnx": "onnx", ".mlpackage": "mlpackage", ".mlmodel": "mlmodel"}


@dataclass(frozen=True)
class ModelFile:
    """A resolved, existing model artifact."""

    name: str  # what the user typed (zoo name or path)
    path: Path
    format: str
    sha256: str
    size_bytes: int


def sha256_of(path: Path) -> str:
    """Content hash of a file, or of a directory's files in sorted relative-path order."""
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
            digest.update(file.read_bytes())
    else:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    """Bytes on disk of a file, or of all files under a directory."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def resolve(ref: str) -> ModelFile:
    """Turn ``zoo:<model>/<file>`` or a path into a checked ``ModelFile``."""
    path = zoo.resolve(ref).path if ref.startswith(zoo.PREFIX) else Path(ref).expanduser()
    if not path.exists():
        raise ModelError(f"model file {ref!r} not found; check the path (zoo models: 'edgeperf-agent zoo')")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ModelError(
            f"{path.name}: unknown model type {path.suffix or '(no extension)'!r}; "
            f"edgeperf runs {', '.join(FORMATS)} files"
        )
    if path.is_dir() != (fmt == "mlpackage") or size_of(path) == 0:
        raise ModelError(f"{path} is empty or not a {fmt} {'package' if fmt == 'mlpackage' else 'file'}; re-copy it")
    return ModelFile(ref, path, fmt, sha256_of(path), size_of(path))
