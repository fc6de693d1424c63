"""The reference model zoo: committed models, their manifest, and ``zoo:`` name resolution.

The zoo lives with the agent (not the controller) because the agent resolves ``zoo:`` names on
the device and must never import the controller; the controller reads it through this module.
A name is ``zoo:<model>/<file>``, e.g. ``zoo:fashion-mnist-cnn/int8.tflite``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from agent.errors import ModelError

PREFIX = "zoo:"


def zoo_root() -> Path:
    """Directory holding the manifest, the model folders and the committed data."""
    return Path(__file__).resolve().parent


@dataclass(frozen=True)
class ZooEntry:
    """One committed model file and what its manifest says about it."""

    name: str
    path: Path
    facts: dict[str, Any]


@cache
def manifest() -> dict[str, Any]:
    """The parsed ``manifest.json`` (sha256, precision, build command, measured accuracy)."""
    return json.loads((zoo_root() / "manifest.json").read_text())


def entries() -> list[ZooEntry]:
    """Every model file in the manifest, in manifest order."""
    out = []
    for model, spec in manifest()["models"].items():
        for file, facts in spec["files"].items():
            out.append(ZooEntry(f"{model}/{file}", zoo_root() / model / file, facts))
    return out


def top1_band(entry: ZooEntry) -> tuple[float, float] | None:
    """The top-1 on the committed subset that any CPU reproduces, ``(low, high)``; None where not measured.

    The build measures one value on one CPU, but int8 kernels round differently by instruction set
    (int8.onnx: 0.879 with AVX2, 0.886 with AVX-512 VNNI), so a reproduction is checked against a band:
    the build's value ± 0.01 for int8 files, ± 0.005 for fp32 (``build.TOP1_BAND``)."""
    band = entry.facts["accuracy"].get("subset_top1_band")
    return (band[0], band[1]) if band else None


def resolve(ref: str) -> ZooEntry:
    """Map ``zoo:<model>/<file>`` to its committed file, or say which names exist."""
    name = ref.removeprefix(PREFIX)
    for entry in entries():
        if entry.name == name:
            return entry
    known = ", ".join(PREFIX + e.name for e in entries())
    raise ModelError(f"no zoo model named {ref!r}; known: {known}")
