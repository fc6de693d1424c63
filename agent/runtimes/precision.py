"""Name a model's precision from what its file holds, not from its file name.

Users compare "int8" against "fp32" rows; a dynamic-range model (int8 weights, float compute)
labelled int8 would mislead them. The runtimes collect the dtypes of the weight tensors and
whether activations are quantised, and this one rule names the result.
"""

from __future__ import annotations

from collections.abc import Iterable

INTEGER_WEIGHTS = frozenset({"int8", "uint8", "int4", "uint4"})


def classify(weight_dtypes: Iterable[str], quantised_activations: bool) -> str:
    """``fp32``, ``fp16``, ``int8`` or ``mixed`` from weight dtypes and activation quantisation.

    ``int8`` means integer weights *and* integer activations (full integer quantisation); integer
    weights with float activations (weight-only or dynamic-range) are ``mixed``.
    """
    kinds = set(weight_dtypes)
    if not kinds or kinds == {"float32"}:
        return "fp32"
    if kinds == {"float16"}:
        return "fp16"
    if kinds <= INTEGER_WEIGHTS and quantised_activations:
        return "int8"
    return "mixed"
