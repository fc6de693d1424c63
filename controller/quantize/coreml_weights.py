"""Core ML with compressed weights, by coremltools' optimisation API, from a PyTorch source.

coremltools converts and compresses on Linux, but predicts only on macOS; activation quantisation
needs predictions (calibration), so off a Mac the Core ML variant is weight-only: ``int8`` (linear
symmetric int8 weights, fp16 activations: W8A16) or ``palette6`` / ``palette4`` (k-means
palettisation, each weight one of 64 or 16 values per tensor). Its accuracy is measured where
Core ML runs — on macOS here, or later by a Mac agent's accuracy run — and is otherwise marked not
measured with that reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from controller.quantize import QuantizeError
from controller.quantize.sources import Source

TARGET = "iOS17"


def build(source: Source, weights: str, out: Path) -> dict[str, Any]:
    """Convert ``source`` to an ML program with ``weights`` compressed, saved at ``out``; its settings."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    try:
        if source.kind == "torchscript":
            inputs = [ct.TensorType(name=n, shape=tuple(t.shape)) for n, t in zip(source.input_names, source.example_inputs,
                                                                               strict=True)]
            mlmodel = ct.convert(source.module, inputs=inputs, convert_to="mlprogram",
                                 minimum_deployment_target=getattr(ct.target, TARGET))
        else:
            import torch

            program = torch.export.export(source.module, source.example_inputs).run_decompositions({})
            mlmodel = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=getattr(ct.target, TARGET))
        if weights == "int8":
            op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8")
            compressed = cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op))
        else:
            nbits = int(weights.removeprefix("palette"))
            op = cto.OpPalettizerConfig(mode="kmeans", nbits=nbits)
            compressed = cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=op))
    except Exception as exc:
        raise QuantizeError(f"coremltools could not convert {source.name}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from None
    if out.exists():
        shutil.rmtree(out)
    compressed.save(str(out))
    kind = "linear symmetric int8" if weights == "int8" else f"k-means palettisation, {weights.removeprefix('palette')} bits"
    return {"weights": kind, "activations": "fp16", "minimum_deployment_target": TARGET, "compute": "ML program"}
