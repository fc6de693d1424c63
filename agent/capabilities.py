"""What this agent can run: runtimes and engines installed, found without importing them.

``edgeperf-agent info`` and the fleet's retained info message report this; finding a package
by its metadata keeps a Pi from loading three runtimes just to say which exist.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

# runtime -> (import name, distribution) in preference order
PACKAGES = {
    "litert": (("ai_edge_litert", "ai-edge-litert"), ("tflite_runtime", "tflite-runtime")),
    "onnxruntime": (("onnxruntime", "onnxruntime"), ("onnxruntime", "onnxruntime-gpu")),
    "coreml": (("coremltools", "coremltools"),),
    "loadgen": (("mlperf_loadgen", "mlcommons-loadgen"),),
}


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked package counts as absent
        return False


def installed() -> dict[str, str | None]:
    """``{runtime or engine: "package version" or None}``; Core ML is None off macOS."""
    out: dict[str, str | None] = {}
    for name, candidates in PACKAGES.items():
        out[name] = None
        if name == "coreml" and sys.platform != "darwin":
            continue
        for module, distribution in candidates:
            version = _version(distribution)
            if version and _importable(module):
                out[name] = f"{distribution} {version}"
                break
    return out
