"""Static int8 ONNX with ONNX Runtime's own quantiser: QDQ, per-channel weights, calibrated activations.

ONNX Runtime's ``quantize_static`` is the maintained quantiser for ONNX (Intel Neural Compressor's
ONNX package wraps the same calls and pins numpy < 2: docs/quantize.md). The float model is
pre-processed once (``quant_pre_process``: shape inference and graph optimisation, as ORT
advises), every node is given a name (``nodes_to_exclude`` names nodes), and calibration runs
once: its ranges are cached in the work folder (``calibration_cache_path``), so each tuning
trial only re-writes the graph with a different set of nodes left in float.

QDQ with int8 activations and weights (S8S8) is what the zoo's int8 ONNX uses and what ORT
recommends for CPUs with VNNI and for GPU/TensorRT; settings are recorded in the provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from controller.quantize import QuantizeError

METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
_QDQ = ("QuantizeLinear", "DequantizeLinear")


class _Reader:
    """ORT's calibration reader over prepared feeds; ``rewind`` lets one reader serve again."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self.feeds, self.i = list(feeds), 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.feeds):
            return None
        self.i += 1
        return self.feeds[self.i - 1]

    def rewind(self) -> None:
        self.i = 0

    def __len__(self) -> int:
        return len(self.feeds)


class OnnxInt8:
    """Builds int8 QDQ variants of one float ONNX model, any nodes left in float."""

    def __init__(self, fp32: Path, feeds: Sequence[dict[str, np.ndarray]], method: str, per_channel: bool, workdir: Path) -> None:
        import onnx
        from onnxruntime.quantization.shape_inference import quant_pre_process

        self.workdir, self.per_channel, self.method = workdir, per_channel, method
        self.pre = workdir / "float.pre.onnx"
        self.notes: list[str] = []
        try:
            quant_pre_process(str(fp32), str(self.pre), skip_symbolic_shape=False)
        except Exception as exc:  # ORT's pre-processing is advice, not a requirement: quantise the model as it is
            self.notes.append(f"pre-processing skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
            self.pre.write_bytes(fp32.read_bytes())
        model = onnx.load(str(self.pre))
        for i, node in enumerate(model.graph.node):
            if not node.name:
                node.name = f"{node.op_type}_{i}"
        onnx.save(model, str(self.pre))
        self.node_order = [n.name for n in model.graph.node]
        self.reader = _Reader(feeds)
        self.cache = workdir / "calibration-ranges.json"

    def build(self, float_ops: tuple[str, ...], out: Path) -> None:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        self.reader.rewind()
        try:
            quantize_static(
                str(self.pre), str(out), self.reader, quant_format=QuantFormat.QDQ, per_channel=self.per_channel,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=list(float_ops),
                calibrate_method=getattr(CalibrationMethod, METHODS[self.method]), calibration_cache_path=str(self.cache),
            )
        except Exception as exc:
            raise QuantizeError(f"ONNX Runtime's quantiser failed on this model: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:300] if str(exc) else ''}; try another --calibration-method "
                                "or calibration samples, or quantise another format") from None

    def quantised_nodes(self, qdq: Path) -> list[str]:
        """Nodes of a QDQ model that read a dequantised tensor: those the quantiser took, in graph order."""
        import onnx

        model = onnx.load(str(qdq))
        dequantised = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
        taken = {n.name for n in model.graph.node if n.op_type not in _QDQ and any(i in dequantised for i in n.input)}
        return [name for name in self.node_order if name in taken]

    def why_nothing(self) -> str:
        """Why the quantiser took no node: the compute sits in control-flow subgraphs it does not
        enter (static quantisation stays in the main graph), or no operator is one it supports."""
        import onnx

        flow = sorted({n.op_type for n in onnx.load(str(self.pre)).graph.node
                       if any(a.type == onnx.AttributeProto.GRAPH for a in n.attribute)})
        if flow:
            return (f"its main graph holds its compute in {'/'.join(flow)} subgraphs, which ONNX Runtime's static "
                    "quantiser does not enter")
        return "none of its operators is one the quantiser supports"

    def settings(self) -> dict[str, Any]:
        return {"quant_format": "QDQ", "activations": "int8 (QInt8)", "weights": "int8 (QInt8)",
                "per_channel": self.per_channel, "calibration_method": self.method,
                "pre_processing": "; ".join(self.notes) or "quant_pre_process (shape inference, optimisation)"}
