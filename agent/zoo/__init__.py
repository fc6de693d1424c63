"""The reference model zoo: its manifest, committed and fetchable models, and ``zoo:`` name resolution.

The zoo lives with the agent (not the controller) because the agent resolves ``zoo:`` names on
the device and must never import the controller; the controller reads it through this module.
A name is ``zoo:<model>/<file>``, e.g. ``zoo:fashion-mnist-cnn/int8.tflite``.

The manifest (schema ``edgeperf.zoo/2``; ``/1`` is read too) is the single source of what the zoo
holds. A file entry without ``url`` is committed beside the manifest, in ``<model>/<file>``; one
with ``url``, ``sha256`` and ``size_bytes`` is remote: ``edgeperf-agent zoo fetch <model>``
downloads it into the cache (``agent.zoo.cache``) and ``resolve`` then returns the cached path.

``$EDGEPERF_ZOO_MANIFEST`` names another manifest to read instead of the packaged one (a lab's own
list of models, or a test's); its committed files are looked for beside it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from agent.errors import ModelError
from agent.zoo import cache

PREFIX = "zoo:"
MANIFEST_ENV = "EDGEPERF_ZOO_MANIFEST"
SCHEMAS = ("edgeperf.zoo/1", "edgeperf.zoo/2")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def zoo_root() -> Path:
    """Directory of the packaged manifest, its committed model folders and the committed data."""
    return Path(__file__).resolve().parent


def manifest_path() -> Path:
    """The manifest in use: ``$EDGEPERF_ZOO_MANIFEST`` if set, else the packaged ``manifest.json``."""
    given = os.environ.get(MANIFEST_ENV)
    return Path(given).expanduser() if given else zoo_root() / "manifest.json"


def manifest() -> dict[str, Any]:
    """The parsed, checked manifest. Read on every call (tens of KiB) and parsed once per content, so a lab or a
    test that swaps the file is seen at once, whatever the file system's time stamps."""
    path = manifest_path()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ModelError(f"zoo manifest {path} cannot be read ({exc.strerror}); check ${MANIFEST_ENV}") from None
    return _parsed(str(path), text)


@lru_cache(maxsize=4)
def _parsed(path: str, text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"zoo manifest {path} is not readable JSON ({exc}); restore it or fix ${MANIFEST_ENV}") from None
    if not isinstance(doc, dict) or doc.get("schema") not in SCHEMAS:
        raise ModelError(f"zoo manifest {path}: schema {doc.get('schema') if isinstance(doc, dict) else None!r} is not "
                         f"one of {', '.join(SCHEMAS)}; update edgeperf or fix the manifest")
    for model, spec in doc.get("models", {}).items():
        for file, facts in spec.get("files", {}).items():
            _check_file(path, f"{model}/{file}", file, facts)
    return doc


def _check_file(path: str, name: str, file: str, facts: dict[str, Any]) -> None:
    """Refuse an entry that could write outside the cache or cannot be verified: one line naming it."""
    if file in ("", ".", "..") or file.startswith(".") or any(c in file for c in "/\\\0"):
        raise ModelError(f"zoo manifest {path}: {name}: {file!r} is not a plain file name")
    size = facts.get("size_bytes")
    if not _SHA256.fullmatch(str(facts.get("sha256", ""))) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ModelError(f"zoo manifest {path}: {name} needs a lower-case hex sha256 and a size_bytes count")
    for url in ([facts["url"]] if "url" in facts else []) + list(facts.get("mirrors", [])):
        if not str(url).startswith(("http://", "https://")):
            raise ModelError(f"zoo manifest {path}: {name}: url {url!r} is not http(s)")


@dataclass(frozen=True)
class ZooModel:
    """One model of the manifest and the facts shared by its files (None where the manifest does not say)."""

    name: str
    task: str | None
    suite: str | None  # "MLPerf Inference edge", "MLPerf Tiny", "MLPerf Mobile", "community"
    benchmark: str | None  # MLPerf's benchmark name as results trees spell it
    source: str | None
    licence: str | None
    dataset: str | None  # the dataset kind it is scored on (agent.datasets)
    preprocess: str | None  # preprocessing id (agent.datasets)
    postprocess: dict[str, Any] | None  # {"kind": ..., ...} (agent.postprocess)
    accuracy_target: dict[str, Any] | None  # {"metric", "reference", "fraction", "where"}
    facts: dict[str, Any]  # the whole manifest entry


@dataclass(frozen=True)
class ZooEntry:
    """One model file: where it is (or will be once fetched) and what its manifest says about it."""

    name: str  # "<model>/<file>"
    path: Path  # committed: beside the manifest; remote: its place in the cache
    facts: dict[str, Any]
    model: ZooModel

    @property
    def file(self) -> str:
        return self.name.split("/", 1)[1]

    @property
    def url(self) -> str | None:
        """Where a remote file is published; None for a committed file."""
        return self.facts.get("url")

    @property
    def mirrors(self) -> list[str]:
        """Other places that publish the same bytes, tried in order when ``url`` fails (the sha256 decides)."""
        return list(self.facts.get("mirrors", []))

    @property
    def remote(self) -> bool:
        return self.url is not None

    @property
    def sha256(self) -> str:
        return self.facts["sha256"]

    @property
    def size_bytes(self) -> int:
        return self.facts["size_bytes"]

    def state(self) -> str:
        """``committed``, ``fetched`` (cached and verified), ``not fetched``, or ``corrupt`` (cached bytes differ)."""
        if not self.remote:
            return "committed"
        if cache.is_verified(self.path, self.sha256, self.size_bytes):
            return "fetched"
        return "corrupt" if self.path.exists() else "not fetched"


def _model(name: str, spec: dict[str, Any]) -> ZooModel:
    keys = ("task", "suite", "benchmark", "source", "licence", "dataset", "preprocess", "postprocess", "accuracy_target")
    return ZooModel(name, **{key: spec.get(key) for key in keys}, facts=spec)


def models() -> list[ZooModel]:
    """Every model in the manifest, in manifest order."""
    return [_model(name, spec) for name, spec in manifest().get("models", {}).items()]


def entries() -> list[ZooEntry]:
    """Every model file in the manifest, in manifest order."""
    base = manifest_path().parent
    out = []
    for model in models():
        for file, facts in model.facts["files"].items():
            path = cache.cached_path(facts["sha256"], file) if "url" in facts else base / model.name / file
            out.append(ZooEntry(f"{model.name}/{file}", path, facts, model))
    return out


def top1_band(entry: ZooEntry) -> tuple[float, float] | None:
    """The top-1 on the committed subset that any CPU reproduces, ``(low, high)``; None where not measured.

    The build measures one value on one CPU, but int8 kernels round differently by instruction set
    (int8.onnx: 0.879 with AVX2, 0.886 with AVX-512 VNNI), so a reproduction is checked against a band:
    the build's value ± 0.01 for int8 files, ± 0.005 for fp32 (``build.TOP1_BAND``). Remote files carry
    ``published_accuracy`` instead, measured elsewhere on the full dataset: no band."""
    band = entry.facts.get("accuracy", {}).get("subset_top1_band")
    return (band[0], band[1]) if band else None


def fetch_command(model: str) -> str:
    """The command that fetches ``model``'s remote files, as error messages quote it."""
    return f"edgeperf-agent zoo fetch {model}"


def size_text(n: int) -> str:
    """``97.8 MiB``: a byte count as people read it."""
    size, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"


def resolve(ref: str) -> ZooEntry:
    """Map ``zoo:<model>/<file>`` to its committed or fetched file, or say which names exist or what to run."""
    name = ref.removeprefix(PREFIX)
    found = [e for e in entries() if e.name == name]
    if not found:
        known = ", ".join(PREFIX + e.name for e in entries())
        raise ModelError(f"no zoo model named {ref!r}; known: {known}")
    entry = found[0]
    state = entry.state()
    if state == "not fetched":
        raise ModelError(f"{PREFIX}{name} is not fetched; run `{fetch_command(entry.model.name)}` (needs internet, or a "
                         f"mirror with --url-base) to download it ({size_text(entry.size_bytes)}) into {cache.cache_dir()}")
    if state == "corrupt":
        raise ModelError(f"{PREFIX}{name}: the cached copy {entry.path} does not match the manifest's sha256; run "
                         f"`{fetch_command(entry.model.name)}` to fetch it again")
    return entry
