"""Pick and open the runtime for a model file; each runtime module is imported only when used.

The agent must stay light on a Pi, so importing this package imports no runtime: LiteRT, ONNX
Runtime and coremltools are loaded by ``open_session`` for the job that needs them.
"""

from __future__ import annotations

import importlib

from agent.contract import RuntimeOptions
from agent.errors import SettingsError
from agent.model_file import ModelFile
from agent.runtimes.base import Session

# runtime name -> (module, class, formats it loads)
RUNTIMES = {
    "litert": ("agent.runtimes.litert", "LiteRTSession", ("tflite",)),
    "onnxruntime": ("agent.runtimes.onnx", "OnnxSession", ("onnx",)),
    "coreml": ("agent.runtimes.coreml", "CoreMLSession", ("mlpackage", "mlmodel")),
}
ALIASES = {"tflite": "litert", "onnx": "onnxruntime", "ort": "onnxruntime"}


def runtime_for(model: ModelFile, requested: str | None = None) -> str:
    """The runtime that will load ``model``: the one asked for (checked) or the file type's own."""
    default = next(name for name, (_, _, formats) in RUNTIMES.items() if model.format in formats)
    if requested in (None, "", "auto"):
        return default
    name = ALIASES.get(requested, requested)
    if name not in RUNTIMES:
        raise SettingsError(f"unknown runtime {requested!r}; use one of: {', '.join(RUNTIMES)}")
    if model.format not in RUNTIMES[name][2]:
        raise SettingsError(f"{model.path.name} is a {model.format} model; runtime {name} cannot load it (use {default})")
    return name


def open_session(model: ModelFile, runtime: str, options: RuntimeOptions) -> Session:
    """Import the runtime's module and load the model with ``options``."""
    module_name, class_name, _ = RUNTIMES[runtime]
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(model.path, options)


def preload(runtime: str) -> None:
    """Import ``runtime``'s libraries now, so that load time and model RSS measure loading the model,
    not importing the runtime (``import onnx`` alone took 1.1 s of a 1.2 s ORT "load")."""
    importlib.import_module(RUNTIMES[runtime][0]).preload()
