"""Core ML sessions through ``coremltools`` — predictions on macOS only.

On Linux coremltools converts and compresses models but ``MLModel.predict`` raises, so a Core ML
job on a Linux agent fails at once with one clear line instead of a traceback mid-run.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import time
from pathlib import Path

import numpy as np

from agent.contract import RuntimeOptions
from agent.errors import ModelError, PlatformUnsupported, RuntimeMissing, SettingsError
from agent.runtimes.base import SessionInfo, TensorSpec

_ARRAY_TYPES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32", 131080: "int8"}
_COMPUTE_UNITS = {"all": "ALL", "cpu_only": "CPU_ONLY", "cpu_and_gpu": "CPU_AND_GPU", "cpu_and_ne": "CPU_AND_NE"}


def _coremltools():
    if sys.platform != "darwin":
        raise PlatformUnsupported(
            "Core ML needs macOS: run this model on a Mac agent, or benchmark the model's ONNX or "
            "TFLite variant here (coremltools on Linux can convert but not predict)"
        )
    try:
        import coremltools
    except ImportError:
        raise RuntimeMissing("coremltools is not installed: pip install 'edgeperf[coreml]'") from None
    return coremltools


def preload() -> None:
    """Import coremltools before load time is measured (or fail here, on Linux, with one line)."""
    _coremltools()


def _specs(features) -> tuple[TensorSpec, ...]:
    out = []
    for feature in features:
        if feature.type.WhichOneof("Type") != "multiArrayType":
            raise SettingsError(
                f"Core ML input/output {feature.name!r} is not a multi-array (image/dictionary features "
                "are not supported); convert the model with ct.TensorType inputs"
            )
        arr = feature.type.multiArrayType
        out.append(TensorSpec(feature.name, tuple(int(d) for d in arr.shape), _ARRAY_TYPES.get(arr.dataType, "float32")))
    return tuple(out)


def _precision(spec) -> str:
    """Compressed weights (constexpr ops) over fp16 compute are ``mixed``; plain programs by dtype."""
    if spec.WhichOneof("Type") != "mlProgram":
        return "unknown"
    ops = {
        op.type
        for function in spec.mlProgram.functions.values()
        for block in function.block_specializations.values()
        for op in block.operations
    }
    if any(op.startswith("constexpr_") for op in ops):
        return "mixed"
    outputs = {_ARRAY_TYPES.get(o.type.multiArrayType.dataType) for o in spec.description.output}
    return "fp16" if "float16" in outputs else "fp32"


def _user_metadata(model) -> dict[str, str]:
    """The model description's ``user_defined_metadata`` (a converter's notes, a quantiser's record)."""
    try:
        return {str(k): str(v) for k, v in model.user_defined_metadata.items()}
    except Exception:  # a spec without a description: nothing to report, and no reason to fail the run
        return {}


class CoreMLSession:
    """One ``MLModel`` loaded for the compute units asked for."""

    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        ct = _coremltools()
        if options.compute_units not in _COMPUTE_UNITS:
            raise SettingsError(f"unknown --compute-units {options.compute_units!r}; use {', '.join(_COMPUTE_UNITS)}")
        units = getattr(ct.ComputeUnit, _COMPUTE_UNITS[options.compute_units])
        try:
            t0 = time.perf_counter_ns()
            self._model = ct.models.MLModel(str(path), compute_units=units)
            load_ms = (time.perf_counter_ns() - t0) / 1e6
        except Exception as exc:  # coremltools raises bare Exception / RuntimeError on bad packages
            raise ModelError(f"{path} is not a loadable Core ML model ({exc}); re-export or re-copy it") from None
        spec = self._model.get_spec()
        inputs, outputs = _specs(spec.description.input), _specs(spec.description.output)
        self._out_names = [o.name for o in outputs]
        self.info = SessionInfo(
            runtime="coreml",
            version=f"coremltools {importlib.metadata.version('coremltools')}, macOS {platform.mac_ver()[0]}",
            # Core ML decides per operation where it runs and reports nothing of it: this is what was asked
            accelerator=f"coreml/{options.compute_units} (requested)",
            threads=None,
            inputs=inputs,
            outputs=outputs,
            precision=_precision(spec),
            details={"compute_units": options.compute_units},
            load_ms=load_ms,
            metadata=_user_metadata(self._model),
        )

    @property
    def batchable(self) -> bool:
        return False

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = self._model.predict(feeds)
        return [np.asarray(result[name]) for name in self._out_names]
