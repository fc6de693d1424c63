"""``edgeperf quantize``: an fp32 model to int8 ONNX / LiteRT / Core ML variants within an accuracy budget.

Runs on the controller host with the ``quantize`` extra (torch, litert-torch, coremltools); the
agent never imports it. ``pipeline.run`` is the entry point; docs/quantize.md explains the choices.
"""

from agent.errors import EdgeperfError


class QuantizeError(EdgeperfError):
    """The model cannot be quantised as asked (no quantisable operator, a converter or quantiser refused it)."""
