"""The fp32 model to quantise, and the float files each format's quantiser starts from.

A source is an ONNX file, a float ``.tflite``, or PyTorch: a ``torch.export`` file (``.pt2``,
``torch.export.save``), a TorchScript file (``.pt``/``.pth``, ``torch.jit.save``) or
``FILE.py:FUNCTION`` / ``package.module:FUNCTION`` returning ``(nn.Module, example_inputs)``. A
pickled whole module (``torch.save(model)``) is refused: loading one runs arbitrary code, and
``module:function`` does the same job in the open.

From PyTorch every format can be made: ONNX by ``torch.onnx.export`` (the TorchScript exporter,
opset 17, a free batch dimension; an exported program by the dynamo exporter, at its own shapes),
LiteRT by litert-torch's float conversion, Core ML by coremltools. From ONNX only ONNX can (ONNX
to TFLite needs TensorFlow's onnx2tf, ONNX to Core ML has no maintained converter); from a float
``.tflite`` only TFLite. Each refusal names the source that would work.

A ``module:function`` has no file to hash, so its sha256 is taken over the function's Python file
and the module's parameters and buffers (``state_dict`` order, names and bytes): the same code
and weights give the same source hash.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ModelError, SettingsError
from agent.model_file import sha256_of
from controller.quantize import QuantizeError

TORCH_FILES = (".pt2", ".pt", ".pth")
OPSET = 17


@dataclass(frozen=True)
class Source:
    """A loaded fp32 source. ``kind``: onnx | tflite | torch.export | torchscript | torch-module."""

    name: str
    kind: str
    sha256: str
    path: Path | None = None
    module: Any = None  # torch: an nn.Module (a GraphModule for torch.export files) or a ScriptModule
    example_inputs: tuple = ()
    input_names: tuple[str, ...] = ()
    program: Any = None  # the ExportedProgram of a torch.export file (exported to ONNX as it is)

    @property
    def torch(self) -> bool:
        return self.kind.startswith("torch")

    def formats(self) -> tuple[str, ...]:
        """The output formats this source can be turned into."""
        if self.kind == "onnx":
            return ("onnx",)
        if self.kind == "tflite":
            return ("tflite",)
        if self.kind == "torchscript":
            return ("onnx", "coreml")
        return ("onnx", "tflite", "coreml")


WHY_NOT = {
    ("onnx", "tflite"): "converting ONNX to LiteRT needs TensorFlow (onnx2tf), which edgeperf does not install; "
                        "give the PyTorch model (FILE.py:FUNCTION or a torch.export .pt2) or a float .tflite",
    ("onnx", "coreml"): "coremltools has no ONNX converter; give the PyTorch model (FILE.py:FUNCTION or a .pt2)",
    ("tflite", "onnx"): "converting LiteRT to ONNX needs TensorFlow (tf2onnx); give the PyTorch or ONNX model",
    ("tflite", "coreml"): "coremltools does not read LiteRT; give the PyTorch model",
    ("torchscript", "tflite"): "litert-torch converts torch.export-able modules, not TorchScript; give a torch.export "
                               ".pt2 (torch.export.save) or FILE.py:FUNCTION",
}


# the libraries each output needs: (module, package); litert-torch only to convert a PyTorch source
TOOLS = {"onnx": (("onnxruntime.quantization", "onnxruntime"), ("onnx", "onnx")),
         "tflite": (("ai_edge_quantizer", "ai-edge-quantizer"),),
         "coreml": (("coremltools", "coremltools"),)}
NO_LINUX_AARCH64 = ("litert-torch", "coremltools")  # litert-torch's converter (litert-converter) and coremltools


def check_formats(source: Source, formats: tuple[str, ...]) -> None:
    """Refuse, before any work, a format this source cannot become (saying which source would do) or
    whose tools are not installed (saying how to install them, or that this platform has none)."""
    for fmt in formats:
        if fmt not in source.formats():
            raise SettingsError(f"--format {fmt} from {source.name}: {WHY_NOT[(source.kind, fmt)]}")
        needed = TOOLS[fmt] + ((("litert_torch", "litert-torch"),) if fmt == "tflite" and source.torch else ())
        for module, package in needed:
            if importlib.util.find_spec(module.split(".")[0]) is not None:
                continue
            if package in NO_LINUX_AARCH64 and sys.platform == "linux" and platform.machine() == "aarch64":
                raise SettingsError(f"--format {fmt} needs {package}, which publishes no Linux aarch64 wheel; "
                                    "run edgeperf quantize for this format on an x86_64 Linux or macOS host")
            raise SettingsError(f"--format {fmt} needs {package}; install the quantize extra: "
                                "pip install torch==2.13.0 'edgeperf[quantize]'")


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise SettingsError("a PyTorch source needs torch; install the quantize extra: pip install torch==2.13.0 "
                            "'edgeperf[quantize]' (a CPU torch first, or pip pulls a CUDA build)") from None
    return torch


def _names(fn: Any, count: int) -> tuple[str, ...]:
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return tuple(params[:count]) if len(params) >= count else tuple(f"input_{i}" for i in range(count))


def _example_tuple(value: Any, where: str) -> tuple:
    torch = _torch()
    inputs = (value,) if isinstance(value, torch.Tensor) else tuple(value) if isinstance(value, (tuple, list)) else None
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise SettingsError(f"{where} must return (module, example_inputs) with example_inputs a tensor or a tuple of tensors")
    return inputs


def _from_function(ref: str) -> Source:
    torch = _torch()
    target, _, fn_name = ref.rpartition(":")
    path = Path(target)
    try:
        if target.endswith(".py"):
            if not path.is_file():
                raise ModelError(f"{ref}: {target} not found; give FILE.py:FUNCTION or package.module:FUNCTION")
            spec = importlib.util.spec_from_file_location(f"edgeperf_quantize_source_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            code_file = path
        else:
            module = importlib.import_module(target)
            code_file = Path(inspect.getfile(module))
    except ModuleNotFoundError as exc:
        raise ModelError(f"{ref}: cannot import {target} ({exc}); give FILE.py:FUNCTION or an importable module") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ModelError(f"{ref}: {target} has no function {fn_name!r}")
    made = fn()
    if not (isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], torch.nn.Module)):
        raise SettingsError(f"{ref} must return (nn.Module, example_inputs); it returned {type(made).__name__}")
    net, inputs = made[0].eval(), _example_tuple(made[1], ref)
    digest = hashlib.sha256(code_file.read_bytes())
    for key, tensor in net.state_dict().items():
        digest.update(key.encode() + b"\0")
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return Source(ref, "torch-module", digest.hexdigest(), None, net, inputs, _names(net.forward, len(inputs)))


def _from_torch_file(path: Path, shapes: dict[str, tuple[int, ...]]) -> Source:
    torch = _torch()
    if path.suffix == ".pt2":
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise ModelError(f"{path} is not a torch.export file ({type(exc).__name__}); "
                             "save one with torch.export.save") from None
        args, _kwargs = program.example_inputs or ((), {})
        if not args:
            raise ModelError(f"{path} records no example inputs; save it with torch.export.save "
                             "from torch.export.export(model, args)")
        names = tuple(s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT")
        return Source(str(path), "torch.export", sha256_of(path), path, program.module(), tuple(args),
                      names or _names(None, len(args)), program)
    try:
        script = torch.jit.load(str(path)).eval()
    except Exception:
        raise ModelError(f"{path} is not a TorchScript file (torch.jit.save); a pickled module is not loaded (that runs "
                         "code): give a torch.export .pt2 or FILE.py:FUNCTION") from None
    names = tuple(a.name for a in script.forward.schema.arguments[1:])
    missing = [n for n in names if n not in shapes]
    if missing:
        raise SettingsError(f"{path.name} is TorchScript, which records no input shapes; give them with "
                            f"{' '.join(f'--shape {n}=1x...' for n in missing)}")
    inputs = tuple(torch.zeros(shapes[n]) for n in names)
    return Source(str(path), "torchscript", sha256_of(path), path, script, inputs, names)


def load(ref: str, shapes: dict[str, tuple[int, ...]]) -> Source:
    """The source ``ref`` names, checked; one line and exit 2 for anything that is not one."""
    path = Path(ref).expanduser()
    if path.suffix in (".onnx", ".tflite") or ref.startswith("zoo:"):
        from agent import model_file

        model = model_file.resolve(ref)
        if model.format not in ("onnx", "tflite"):
            raise ModelError(f"{ref} is a {model.format} model; quantise from ONNX, a float .tflite or PyTorch")
        return Source(ref, model.format, model.sha256, model.path)
    if path.suffix in TORCH_FILES:
        if not path.is_file():
            raise ModelError(f"source {ref!r} not found; check the path")
        return _from_torch_file(path, shapes)
    if ":" in ref:
        return _from_function(ref)
    raise ModelError(f"source {ref!r} is not a model edgeperf quantises: give an .onnx, a float .tflite, a torch.export "
                     ".pt2, a TorchScript .pt, or FILE.py:FUNCTION returning (nn.Module, example_inputs)")


def export_onnx(source: Source, out: Path) -> str:
    """The float ONNX of a PyTorch source, written to ``out``; the method, for its provenance."""
    torch = _torch()
    with torch.no_grad():
        first = source.module(*source.example_inputs)
    n_out = len(first) if isinstance(first, (tuple, list)) else 1
    outputs = tuple(f"output_{i}" for i in range(n_out)) if n_out > 1 else ("output",)
    axes = {name: {0: "batch"} for name in (*source.input_names, *outputs)}
    try:
        if source.program is not None:  # the TorchScript exporter cannot trace an exported program's module
            torch.onnx.export(source.program, (), str(out), opset_version=OPSET, dynamo=True, external_data=False,
                              input_names=list(source.input_names), output_names=list(outputs), verbose=False)
        else:
            torch.onnx.export(source.module, source.example_inputs, str(out), opset_version=OPSET, dynamo=False,
                              input_names=list(source.input_names), output_names=list(outputs), dynamic_axes=axes)
    except Exception as exc:
        raise QuantizeError(f"torch.onnx.export failed on {source.name}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from None
    if source.program is not None:
        return f"torch.onnx.export of the exported program (dynamo exporter), opset {OPSET}, shapes as exported"
    return f"torch.onnx.export (TorchScript exporter), opset {OPSET}, free batch dimension"


def export_tflite(source: Source, out: Path) -> str:
    """The float LiteRT model of a source (a float .tflite source is its own); the method."""
    if source.kind == "tflite":
        out.write_bytes(source.path.read_bytes())
        return "the float .tflite source"
    import litert_torch  # checked by check_formats

    try:
        litert_torch.convert(source.module, source.example_inputs).export(str(out))
    except Exception as exc:
        raise QuantizeError(f"litert-torch could not convert {source.name}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from None
    return "litert-torch float conversion"
