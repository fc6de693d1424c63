"""A PyTorch source for ``edgeperf quantize``: the zoo's Fashion-MNIST CNN as an ``nn.Module``.

``edgeperf quantize examples/quantize/fashion_cnn.py:model ...`` calls ``model()``, which returns
the module and example inputs — the shape every format is exported at. The weights are the zoo's
trained ones, read from its fp32 ONNX file, so the example needs no training and no download.
"""

from __future__ import annotations

import onnx
import torch
from onnx import numpy_helper
from torch import nn

from agent.zoo import zoo_root


def model() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Conv16-Pool-Conv32-Pool-FC64-FC10 over [N, 1, 28, 28] floats in [0, 1], with the zoo's weights."""
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )
    weights = onnx.load(str(zoo_root() / "fashion-mnist-cnn" / "fp32.onnx")).graph.initializer
    net.load_state_dict({w.name: torch.from_numpy(numpy_helper.to_array(w).copy()) for w in weights})
    return net.eval(), (torch.zeros(1, 1, 28, 28),)
