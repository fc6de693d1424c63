"""Affine (de)quantisation with a model's own parameters.

An int8 TFLite model with int8 input expects ``q = round(x / scale) + zero_point``, saturated to
the dtype's range; its int8 outputs mean ``scale * (q - zero_point)``. Getting this wrong costs
accuracy silently, so it is done in one place and tested against the model's parameters.
"""

from __future__ import annotations

import numpy as np

from agent.runtimes.base import TensorSpec


def to_model_input(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Real-valued data into the dtype the input wants (quantising when it is quantised)."""
    dtype = np.dtype(spec.dtype)
    if spec.quantised and np.issubdtype(np.asarray(x).dtype, np.floating):
        info = np.iinfo(dtype)
        q = np.round(np.asarray(x, dtype=np.float64) / spec.scale) + spec.zero_point
        return np.clip(q, info.min, info.max).astype(dtype)
    return np.asarray(x).astype(dtype, copy=False)


def to_real_output(y: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """A raw output as real values (dequantising when the output is quantised)."""
    if spec.quantised:
        return (y.astype(np.float32) - np.float32(spec.zero_point)) * np.float32(spec.scale)
    return y
