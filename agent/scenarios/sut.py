"""The system under test as both engines see it: run these samples, return their outputs.

Engines only call ``process``; they never touch a runtime. That keeps LoadGen's callback and the
native loop measuring the same work, and lets tests drive the engines with a deterministic SUT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from agent.datasets import Samples
from agent.runtimes.base import Session

Outputs = list[np.ndarray]


class SystemUnderTest(Protocol):
    """Anything that can run samples by index."""

    @property
    def sample_count(self) -> int:
        """Samples available (LoadGen's QSL total count)."""
        ...

    @property
    def batch_size(self) -> int:
        """Most samples one ``process`` call should be given."""
        ...

    def process(self, indices: Sequence[int]) -> list[Outputs]:
        """Run the samples and return each one's outputs, in order."""
        ...


class ModelSut:
    """A runtime session over loaded samples; stacks samples only where the model allows it."""

    def __init__(self, session: Session, samples: Samples, batch_size: int = 1) -> None:
        self._run = session.run
        self._feeds = samples.feeds
        # Stack only where every sample is one row of a free batch dimension.
        single_rows = all(v.shape[:1] == (1,) for feed in samples.feeds[:1] for v in feed.values())
        self._batch = batch_size if session.batchable and single_rows else 1
        self._names = list(samples.feeds[0]) if samples.feeds else []

    @property
    def sample_count(self) -> int:
        return len(self._feeds)

    @property
    def batch_size(self) -> int:
        return self._batch

    def process(self, indices: Sequence[int]) -> list[Outputs]:
        if len(indices) == 1:
            return [self._run(self._feeds[indices[0]])]
        if self._batch == 1:
            return [self._run(self._feeds[i]) for i in indices]
        stacked = {name: np.concatenate([self._feeds[i][name] for i in indices]) for name in self._names}
        outputs = self._run(stacked)
        return [[out[j : j + 1] for out in outputs] for j in range(len(indices))]
