"""A deterministic system under test for the engines: every sample takes a fixed sleep.

Like LoadGen's own test SUTs, it lets engine behaviour (query counts, validity decisions) be
compared without a model's timing noise. It goes through the same ``process`` seam as a model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np


class FixedDelaySut:
    """Sleeps ``delay_s`` per sample and answers each sample with its own index."""

    def __init__(self, delay_s: float, sample_count: int = 100, batch_size: int = 1) -> None:
        self.delay_s, self._count, self._batch = delay_s, sample_count, batch_size
        self.calls: list[list[int]] = []

    @property
    def sample_count(self) -> int:
        return self._count

    @property
    def batch_size(self) -> int:
        return self._batch

    def process(self, indices: Sequence[int]) -> list[list[np.ndarray]]:
        self.calls.append(list(indices))
        time.sleep(self.delay_s * len(indices))
        return [[np.array([i], dtype=np.int64)] for i in indices]
