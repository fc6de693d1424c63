"""What ``edgeperf quantize`` is asked to do, parsed and checked before any model is touched.

A dataset is written ``DATASET[:N]``: an agent dataset name (``fashion-mnist:subset``, ``synthetic``)
or a folder of ``.npy`` files, optionally followed by how many samples to use. Calibration takes
its samples from the **end** of the dataset and evaluation from the **start**, so one labelled
set split in two serves both without scoring a sample the ranges were measured on
(``--calibration fashion-mnist:subset:200 --eval fashion-mnist:subset:800``); ``pipeline`` says
when the two overlap.

The budget is an absolute drop in top-1, in percentage points (``1pp``): a relative "1 %" means
different things to different people, so it is refused with that reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import SettingsError

FORMATS = ("onnx", "tflite", "coreml")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")  # ORT's "distribution" is made for float8, not int8
COREML_WEIGHTS = ("int8", "palette6", "palette4")
MAX_SAMPLES = 1_000_000


@dataclass(frozen=True)
class DataSpec:
    """A dataset and how many of its samples to take (None: all of them)."""

    name: str
    count: int | None

    @property
    def text(self) -> str:
        return self.name if self.count is None else f"{self.name}:{self.count}"


@dataclass(frozen=True)
class Request:
    """One ``edgeperf quantize`` invocation."""

    source: str
    calibration: DataSpec
    formats: tuple[str, ...]
    outdir: Path
    eval: DataSpec | None = None
    budget_pp: float | None = None
    calibration_method: str = "minmax"
    per_channel: bool = True
    coreml_weights: str = "int8"
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    max_trials: int = 200
    threads: int | None = None


def parse_data(text: str, flag: str) -> DataSpec:
    """``fashion-mnist:subset:200`` → (``fashion-mnist:subset``, 200); a last part of digits is the count."""
    name, sep, tail = text.rpartition(":")
    if sep and tail.isdigit() and name:
        count = int(tail)
        if not 1 <= count <= MAX_SAMPLES:
            raise SettingsError(f"{flag} {text}: the sample count must be 1 to {MAX_SAMPLES:,}")
        return DataSpec(name, count)
    if not text.strip():
        raise SettingsError(f"{flag} is empty; give a dataset name or a folder of .npy files, "
                            f"e.g. {flag} fashion-mnist:subset:200")
    return DataSpec(text, None)


def parse_budget(text: str) -> float:
    """``1pp``, ``0.5pp`` or ``1`` → percentage points of top-1; a relative ``%`` is refused."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(pp)?\s*", text)
    if "%" in text:
        raise SettingsError(f"--accuracy-budget {text}: give the allowed drop in percentage points of top-1, e.g. 1pp "
                            "(a relative % is ambiguous)")
    value = float(match.group(1)) if match else math.nan
    if not (math.isfinite(value) and 0 <= value <= 100):
        raise SettingsError(f"--accuracy-budget {text}: expected percentage points from 0 to 100, e.g. 1pp or 0.5pp")
    return value


def parse_formats(text: str) -> tuple[str, ...]:
    """``onnx,tflite`` → ("onnx", "tflite"), each known and named once."""
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise SettingsError(f"--format {text!r}: use one or more of {', '.join(FORMATS)}, comma-separated")
    return names


def check_choice(value: str, choices: tuple[str, ...], flag: str) -> str:
    """``value`` if it is one of ``choices``, else one line listing them."""
    if value not in choices:
        raise SettingsError(f"{flag} {value!r}: use one of {', '.join(choices)}")
    return value
