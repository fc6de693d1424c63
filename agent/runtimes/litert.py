"""LiteRT (TFLite) sessions through ``ai-edge-litert``, or ``tflite_runtime`` where only that exists.

Old Jetsons and 32-bit Pis have no ai-edge-litert wheel; ``tflite-runtime`` 2.14 still runs the
same files there (it needs numpy<2). XNNPACK is LiteRT's default CPU delegate; turning it off
uses ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` so users can see what the delegate buys them.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from agent.contract import RuntimeOptions
from agent.errors import ModelError, RuntimeMissing, SettingsError
from agent.runtimes import precision
from agent.runtimes.base import SessionInfo, TensorSpec
from agent.runtimes.shapes import concrete_shape, unknown_overrides

# TensorType codes of the TFLite schema that hold weights (others are shapes, indices, strings).
_WEIGHT_TYPES = {0: "float32", 1: "float16", 3: "uint8", 9: "int8", 17: "int4"}
_INT32 = 2
MAX_METADATA_BYTES = 1 << 20  # a metadata entry longer than this is not reported (weights, a packed label file)


def _interpreter_module() -> tuple[ModuleType, str, str]:
    """The interpreter module, the package name and its version."""
    try:
        from ai_edge_litert import interpreter

        return interpreter, "ai-edge-litert", importlib.metadata.version("ai-edge-litert")
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter

        return interpreter, "tflite-runtime", importlib.metadata.version("tflite-runtime")
    except (ImportError, AttributeError):  # tflite-runtime 2.14 fails with numpy 2 this way
        raise RuntimeMissing(
            "LiteRT is not installed: pip install 'edgeperf[litert]' "
            "(or 'edgeperf[tflite]' with numpy<2 where ai-edge-litert has no wheel)"
        ) from None


def preload() -> None:
    """Import the interpreter (and its schema module) before load time is measured."""
    _interpreter_module()
    with contextlib.suppress(ImportError):  # only the census needs it
        from ai_edge_litert import schema_py_generated  # noqa: F401


def _spec(detail: dict[str, Any], signature: bool) -> TensorSpec:
    dims = detail["shape_signature"] if signature and len(detail.get("shape_signature", ())) else detail["shape"]
    scale, zero = detail.get("quantization", (0.0, 0))
    quantised = scale != 0.0
    return TensorSpec(
        name=detail["name"],
        shape=tuple(int(d) if d >= 0 else None for d in dims),
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale) if quantised else None,
        zero_point=int(zero) if quantised else None,
    )


def weights_census(model_bytes: bytes) -> tuple[list[str], bool, int] | None:
    """Weight dtypes, whether activations are integer, and the parameter count, from the flatbuffer.

    Only ai-edge-litert ships the schema module; without it precision falls back to tensor dtypes.
    """
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        return None
    model = schema.Model.GetRootAsModel(model_bytes, 0)
    weights, integer_acts, params = [], False, 0
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            buffer = model.Buffers(tensor.Buffer())
            constant = buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)
            size = int(np.prod(tensor.ShapeAsNumpy())) if tensor.ShapeLength() else 1
            quant = tensor.Quantization()
            has_scale = quant is not None and quant.ScaleLength() > 0
            if constant and tensor.Type() in _WEIGHT_TYPES:
                weights.append(_WEIGHT_TYPES[tensor.Type()])
                params += size
            elif constant and tensor.Type() == _INT32 and has_scale:  # quantised biases
                params += size
            elif not constant and tensor.Type() in (3, 9, 7) and has_scale:
                integer_acts = True
    return weights, integer_acts, params


def _metadata(model_bytes: bytes) -> dict[str, str]:
    """The flatbuffer's ``Model.metadata`` entries that hold text: name -> UTF-8 text of its buffer.

    Binary entries (a packed TFLite Support metadata, anything that is not UTF-8 or holds a NUL) and
    entries over ``MAX_METADATA_BYTES`` are left out; the NUL padding a converter adds after a short
    string (``min_runtime_version``) is dropped. Only ai-edge-litert ships the schema module: under
    tflite-runtime this is {} (and a result carries no ``model.provenance``).
    """
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        return {}
    model = schema.Model.GetRootAsModel(model_bytes, 0)
    out = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Buffer() >= model.BuffersLength() or entry.Name() is None:
            continue
        buffer = model.Buffers(entry.Buffer())
        if buffer.DataLength():
            if buffer.DataLength() > MAX_METADATA_BYTES:
                continue
            raw = buffer.DataAsNumpy().tobytes()
        elif buffer.Offset() > 1 and 0 < buffer.Size() <= MAX_METADATA_BYTES:  # kept after the flatbuffer (over 2 GB)
            raw = model_bytes[buffer.Offset():buffer.Offset() + buffer.Size()]
        else:
            continue
        try:
            text = raw.rstrip(b"\0").decode("utf-8")
        except UnicodeDecodeError:
            continue
        if "\0" not in text:
            out[entry.Name().decode("utf-8", "replace")] = text
    return out


class LiteRTSession:
    """One ``Interpreter`` with its tensors allocated, fed through tensor indices."""

    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        module, package, version = _interpreter_module()
        if options.threads is not None and options.threads < 1:
            raise SettingsError("LiteRT needs --threads 1 or more")
        t0 = time.perf_counter_ns()  # load time: reading, delegates, interpreter, tensors (imports are done)
        model_bytes = path.read_bytes()
        delegates = []
        for lib in options.delegates:
            try:
                delegates.append(module.load_delegate(lib))
            except (ValueError, OSError) as exc:
                raise SettingsError(f"cannot load LiteRT delegate {lib!r}: {exc}") from None
        resolver = module.OpResolverType.AUTO if options.xnnpack else module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self._interp = module.Interpreter(
                model_content=model_bytes,
                num_threads=options.threads,
                experimental_op_resolver_type=resolver,
                experimental_delegates=delegates or None,
            )
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{path} is not a loadable TFLite model ({first}); re-export or re-copy it") from None

        declared = tuple(_spec(d, signature=True) for d in self._interp.get_input_details())
        unknown_overrides(declared, options.shapes)
        details = self._interp.get_input_details()
        for spec, detail in zip(declared, details, strict=True):
            shape = concrete_shape(spec, options.shapes)
            if tuple(detail["shape"]) != shape:
                self._interp.resize_tensor_input(detail["index"], list(shape))
        try:
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: LiteRT could not allocate tensors ({exc}); check --shape") from None
        load_ms = (time.perf_counter_ns() - t0) / 1e6

        self._in_index = {d["name"]: d["index"] for d in self._interp.get_input_details()}
        self._out_index = [d["index"] for d in self._interp.get_output_details()]
        inputs = tuple(_spec(d, signature=False) for d in self._interp.get_input_details())
        outputs = tuple(_spec(d, signature=False) for d in self._interp.get_output_details())

        census = weights_census(model_bytes)
        if census is not None:
            weights, integer_acts, params = census
        else:
            kinds = {np.dtype(d["dtype"]).name for d in self._interp.get_tensor_details()}
            weights = list(kinds & {"float32", "float16", "int8", "uint8"})
            integer_acts, params = bool(kinds & {"int8", "uint8"}), None
        delegated = self._delegate_nodes()
        accelerator = "cpu/xnnpack" if options.xnnpack and delegated else "cpu/builtin"
        if options.delegates and delegated:
            accelerator = "+".join(Path(d).name for d in options.delegates) + "," + accelerator
        self.info = SessionInfo(
            runtime="litert",
            version=f"{package} {version}",
            accelerator=accelerator,
            threads=options.threads,
            inputs=inputs,
            outputs=outputs,
            precision=precision.classify(weights, integer_acts),
            parameters=params,
            details={"package": package, "xnnpack_requested": options.xnnpack, "delegates": list(options.delegates),
                     "delegate_nodes": delegated},
            load_ms=load_ms,
            metadata=_metadata(model_bytes),
        )

    def _delegate_nodes(self) -> int | None:
        """Nodes a delegate took over. XNNPACK being on is no proof it runs anything: tflite-runtime
        2.14 builds, for one, leave int8 graphs to the builtin kernels. None if LiteRT hides it."""
        try:
            return sum(op["op_name"] == "DELEGATE" for op in self._interp._get_ops_details())
        except (AttributeError, KeyError):
            return None

    @property
    def batchable(self) -> bool:
        """False: tensors are allocated for one shape; resizing per batch would be timed."""
        return False

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        interp = self._interp
        for name, value in feeds.items():
            interp.set_tensor(self._in_index[name], value)
        interp.invoke()
        return [interp.get_tensor(i) for i in self._out_index]
