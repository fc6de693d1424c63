"""What every runtime session offers the engine, and the facts it reports about itself.

A session is set up from ``agent.contract.RuntimeOptions`` (the job options, defined once there).
A session takes inputs already in the model's own dtype (int8 models get quantised data, see
``quant.py``) and returns raw outputs. Converting data is done once when samples are loaded,
never inside the timed call, so the numbers measure the runtime and not numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

Dim = int | str | None  # a fixed size, a symbolic name, or unknown


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the runtime sees it."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str  # numpy dtype name: float32, int8, uint8, int64, ...
    scale: float | None = None  # affine quantisation: real = scale * (q - zero_point)
    zero_point: int | None = None

    @property
    def quantised(self) -> bool:
        return self.scale is not None and self.dtype in ("int8", "uint8", "int16")

    @property
    def dynamic(self) -> bool:
        return any(not isinstance(d, int) or d < 0 for d in self.shape)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"shape": [d if isinstance(d, int) else str(d) for d in self.shape]}


@dataclass(frozen=True)
class SessionInfo:
    """The session facts every result carries (the result's ``runtime`` and ``model`` blocks)."""

    runtime: str
    version: str
    accelerator: str  # the EP / delegate actually in use, not the one asked for
    threads: int | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    precision: str  # fp32 | fp16 | int8 | mixed
    parameters: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # the runtime's own session creation (parse, allocate, delegate/EP setup), timed by the session:
    # imports and our own model census stay outside it, or cross-runtime comparisons measure them
    load_ms: float = 0.0
    # the model file's own key-value metadata (ONNX metadata_props, TFLite Model.metadata text entries,
    # Core ML user_defined_metadata), as the runtime read it: where a quantiser's record travels
    metadata: dict[str, str] = field(default_factory=dict)


class Session(Protocol):
    """A loaded model ready to run."""

    info: SessionInfo

    @property
    def batchable(self) -> bool:
        """True when the leading input dimension is free, so samples can be stacked."""
        ...

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One inference on prepared inputs; outputs in the model's own dtype, in output order."""
        ...
