"""Static int8 LiteRT with Google's AI Edge Quantizer, from a float ``.tflite``.

A PyTorch source is first converted to a float ``.tflite`` by litert-torch (``sources``); the AI
Edge Quantizer then quantises it with its ``static_wi8_ai8`` recipe (int8 weights per channel,
int8 activations from min/max calibration). It works on the flatbuffer's own operators, so the
operators left in float are named as LiteRT names them (``FULLY_CONNECTED``) with their scope
(output tensor names), and a fall-back is one recipe entry: that scope, not quantised. Calibration
runs once; every trial re-quantises from the same ranges (a few hundredths of a second each).

litert-torch's own PT2E path (used for the zoo's ``int8.tflite``) gives int8 inputs and outputs
too, but an operator cannot be left in float there: its converter re-quantises a float operator
between quantised neighbours. The AI Edge Quantizer leaves the model's inputs and outputs float
(quantise and dequantise operators at the edges).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from controller.quantize import QuantizeError


def _ops(path: Path) -> list[tuple[str, str, bool]]:
    """(operator name, scope, whether its first output is an 8/16-bit integer) of every operator of
    the main subgraph, in order. The scope is the AI Edge Quantizer's: output tensor names, each
    followed by ``;``."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    integer = {schema.TensorType.INT8, schema.TensorType.UINT8, schema.TensorType.INT16}
    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    out = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        outputs = [graph.Tensors(t) for t in op.OutputsAsNumpy() if t >= 0]
        scope = "".join(t.Name().decode() + ";" for t in outputs)
        out.append((names.get(builtin, f"OP_{builtin}"), scope, bool(outputs) and outputs[0].Type() in integer))
    return out


def _label(name: str, scope: str) -> str:
    return f"{name} {scope.rstrip(';')}"


class TfliteInt8:
    """Builds int8 variants of one float ``.tflite``, any operators left in float."""

    def __init__(self, float_tflite: Path, feeds: Sequence[Sequence[np.ndarray]], per_channel: bool) -> None:
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_quantizer import quantizer

        self.path, self.per_channel = float_tflite, per_channel
        self.ops = _ops(float_tflite)
        self.labels = {_label(n, s): s for n, s, _ in self.ops if s}
        qt = quantizer.Quantizer(str(float_tflite))
        qt.load_quantization_recipe(self._recipe(()))
        signatures = Interpreter(model_path=str(float_tflite)).get_signature_list()
        if len(signatures) != 1:
            raise QuantizeError(f"{float_tflite.name} has {len(signatures)} signatures; the AI Edge Quantizer needs "
                                "exactly one (litert-torch writes one: serving_default)")
        self.signature, names = next(iter(signatures.items()))
        inputs = names["inputs"]
        if any(len(feed) != len(inputs) for feed in feeds):
            raise QuantizeError(f"the calibration samples have {len(feeds[0])} inputs, {float_tflite.name} takes {len(inputs)}")
        data = {self.signature: [dict(zip(inputs, feed, strict=True)) for feed in feeds]}
        try:
            self.ranges = qt.calibrate(data)
        except Exception as exc:
            raise QuantizeError(f"calibrating {float_tflite.name} failed: {type(exc).__name__}: {str(exc)[:300]}") from None

    def _recipe(self, float_ops: tuple[str, ...]) -> Any:
        from ai_edge_quantizer import qtyping, recipe_manager
        from ai_edge_quantizer.algorithm_manager import AlgorithmName

        manager = recipe_manager.RecipeManager()
        granularity = qtyping.QuantGranularity.CHANNELWISE if self.per_channel else qtyping.QuantGranularity.TENSORWISE
        manager.add_static_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                  activation_num_bits=8, weight_num_bits=8, weight_granularity=granularity)
        for label in float_ops:
            manager.add_quantization_config(regex=f"^{re.escape(self.labels[label])}$",
                                            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                            algorithm_key=AlgorithmName.NO_QUANTIZE)
        return manager.get_quantization_recipe()

    def build(self, float_ops: tuple[str, ...], out: Path) -> None:
        from ai_edge_quantizer import quantizer

        qt = quantizer.Quantizer(str(self.path))
        qt.load_quantization_recipe(self._recipe(float_ops))
        try:
            qt.quantize(self.ranges, enable_progress_report=False).export_model(str(out), overwrite=True)
        except Exception as exc:
            raise QuantizeError(f"the AI Edge Quantizer failed on {self.path.name}: "
                                f"{type(exc).__name__}: {str(exc)[:300]}") from None

    def quantised_ops(self, quantised: Path) -> list[str]:
        """Operators of the float model whose outputs are integer in ``quantised``: those it took, in order."""
        integer = {scope for _, scope, is_int in _ops(quantised) if is_int}
        return [_label(n, s) for n, s, _ in self.ops if s and s in integer]

    def settings(self) -> dict[str, Any]:
        return {"recipe": "static_wi8_ai8", "activations": "int8", "weights": "int8",
                "per_channel": self.per_channel, "calibration_method": "minmax", "inputs_outputs": "float"}

