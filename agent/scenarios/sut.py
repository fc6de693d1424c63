"""The system under test as both engines see it: run these samples, return their outputs.

Engines only call ``process``; they never touch a runtime. That keeps LoadGen's callback and the
native loop measuring the same work, and lets tests drive the engines with a deterministic SUT.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from agent.datasets import Samples
from agent.errors import InferenceError
from agent.runtimes.base import Session

Outputs = list[np.ndarray]
_MESSAGE_CHARS = 300  # of a runtime's error in the one line a failed inference prints
# what a runtime's error says for its developers: source paths, C++ signatures, ORT's status prefix
_NOISE = re.compile(r"\S*/\S+\.(?:h|hpp|cc|cpp|c|py):\d+\s*|\w+(?:::\w+)+\([^()]*\)\s*|\[ONNXRuntimeError\] : \d+ : \w+ : ")


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
        try:  # costs nothing unless raised (Python 3.11+; one cheap opcode before), so timing is unchanged
            if len(indices) == 1:
                return [self._run(self._feeds[indices[0]])]
            if self._batch == 1:
                return [self._run(self._feeds[i]) for i in indices]
            stacked = {name: np.concatenate([self._feeds[i][name] for i in indices]) for name in self._names}
            outputs = self._run(stacked)
        except Exception as exc:  # runtimes raise their own classes (ORT's Fail, LiteRT's RuntimeError, ...)
            raise InferenceError(
                f"the model failed at run time on sample {indices[0]} ({_runtime_message(exc)}); the inputs it was given "
                "may not suit it: set input sizes with --shape and values with --input (a campaign's shapes: and inputs:)"
            ) from None
        return [[out[j : j + 1] for out in outputs] for j in range(len(indices))]


def _runtime_message(exc: Exception) -> str:
    """A runtime's exception as a short clause: its first line without source paths, the end kept
    (ORT puts the useful part, e.g. "Input shape:{1}, requested shape:{3}", last)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    text = re.sub(_NOISE, "", lines[0] if lines else "").strip()
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= _MESSAGE_CHARS else "…" + text[-_MESSAGE_CHARS:]
