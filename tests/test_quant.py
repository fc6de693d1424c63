"""Int8 inputs are quantised, and outputs dequantised, with the model's own parameters."""

from __future__ import annotations

import numpy as np

from agent.runtimes.base import TensorSpec
from agent.runtimes.quant import to_model_input, to_real_output

# The zoo's int8 TFLite input: scale 1/255.1, zero point -128 (pixels in [0, 1]).
INPUT = TensorSpec("x", (1, 4), "int8", scale=0.003919653594493866, zero_point=-128)


def test_quantise_uses_scale_and_zero_point():
    q = to_model_input(np.array([[0.0, 0.5, 1.0, 0.25]], dtype=np.float32), INPUT)
    assert q.dtype == np.int8
    expected = np.round(np.array([0.0, 0.5, 1.0, 0.25]) / INPUT.scale) + INPUT.zero_point
    assert q.tolist() == [expected.astype(int).tolist()]


def test_quantise_saturates_instead_of_wrapping():
    q = to_model_input(np.array([[-5.0, 5.0, 0.0, 1.0]]), INPUT)
    assert q.tolist() == [[-128, 127, -128, 127]]


def test_dequantise_inverts_within_half_a_step(rng):
    x = rng.random((1, 4), dtype=np.float32)
    back = to_real_output(to_model_input(x, INPUT), INPUT)
    assert np.all(np.abs(back - x) <= INPUT.scale / 2 + 1e-7)


def test_float_and_integer_tensors_pass_through_unchanged():
    floats = TensorSpec("f", (2,), "float32")
    ids = TensorSpec("ids", (2,), "int64")
    assert to_model_input(np.array([0.1, 0.2]), floats).dtype == np.float32
    assert to_model_input(np.array([3, 4]), ids).tolist() == [3, 4]
    y = np.array([1.5, -2.0], dtype=np.float32)
    assert to_real_output(y, floats) is y
