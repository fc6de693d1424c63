"""What each model input is fed: ``--input NAME=VALUE|LOW:HIGH|PATH.npy|PATH.txt`` (a campaign's ``inputs:``).

Random data cannot drive a model that has a configuration input: a voice-activity model whose
int64 ``sr`` must be 16000 takes its 8 kHz branch on random integers and fails, or silently times
the wrong branch. So, like LiteRT's ``benchmark_model`` input value options, an input can be given

- a constant (``sr=16000``, ``scale=0.5``, ``flag=true``), broadcast to the input's shape;
- a range (``x=-1:1``), drawn uniformly per sample (integers: both ends included);
- a file: ``.npy`` whose dtype is the input's and whose shape is the input's (one value for every
  sample) or has one more leading axis of samples (cycled); string inputs also from a ``.txt``
  file, one string per line.

Every other input keeps its default range (``default_source``): the real range its quantisation
covers for a quantised input (the range the model declares), [0, 1) for floats, the whole range for
int8/uint8, [0, 99] for wider integers (ids stay valid embedding indices), and fair coins for bools.
Constants and ranges are real values: a quantised input gets them quantised with its own
parameters. Each input's source is recorded in the result (``dataset.inputs``), a file by sha256,
so a run can be repeated exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import DatasetError, SettingsError
from agent.runtimes.base import TensorSpec
from agent.runtimes.quant import to_model_input

STRING_DTYPES = ("string", "str", "bytes", "object")
HINT = "write --input NAME=VALUE, NAME=LOW:HIGH or NAME=PATH.npy (string inputs: NAME=PATH.txt, one per line)"


@dataclass(frozen=True)
class InputSource:
    """One input's values: ``constant`` (value), ``range`` (low, high) or ``file`` (path)."""

    kind: str
    value: float | int | bool | None = None
    low: float | int | None = None
    high: float | int | None = None
    path: Path | None = None


def _number(text: str) -> float | int | bool | None:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            value = kind(lowered)
        except ValueError:
            continue
        return value if np.isfinite(value) else None
    return None


def parse_source(name: str, text: str) -> InputSource:
    """``"16000"``, ``"-1:1"``, ``"x.npy"`` or ``"words.txt"`` as an ``InputSource``; a bad one is one line."""
    text = text.strip()
    if text.lower().endswith((".npy", ".txt")):
        return InputSource("file", path=Path(text).expanduser())
    if ":" in text:
        low, _, high = (_number(part) for part in text.partition(":"))
        if isinstance(low, bool) or isinstance(high, bool) or low is None or high is None:
            raise SettingsError(f"bad --input {name}={text}: a range is two finite numbers LOW:HIGH, e.g. {name}=-1:1")
        if low > high:
            raise SettingsError(f"bad --input {name}={text}: LOW {low} is above HIGH {high}; write {name}={high}:{low}")
        return InputSource("range", low=low, high=high)
    value = _number(text)
    if value is None:
        raise SettingsError(f"bad --input {name}={text!r}: not a finite number, a range or a .npy/.txt file; {HINT}")
    return InputSource("constant", value=value)


def parse_input_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["sr=16000", "x=-1:1"]`` → ``{"sr": "16000", "x": "-1:1"}``, each value checked."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name or not text.strip():
            raise SettingsError(f"bad --input {item!r}; {HINT}")
        if name in out:
            raise SettingsError(f"--input {name} is given twice ({out[name]!r} and {text!r}); keep one")
        parse_source(name, text)
        out[name] = text.strip()
    return out


def is_string(spec: TensorSpec) -> bool:
    return spec.dtype in STRING_DTYPES or spec.dtype.startswith("tensor(string")


def default_source(spec: TensorSpec) -> InputSource:
    """The range synthetic data draws ``spec`` from when no ``--input`` names it."""
    if is_string(spec):
        raise DatasetError(f"input {spec.name!r} takes strings, which synthetic data cannot make up; "
                           f"give them with --input {spec.name}=PATH.txt (one per line) or PATH.npy")
    dtype = np.dtype(spec.dtype)
    if spec.quantised:
        info = np.iinfo(dtype)
        return InputSource("range", low=spec.scale * (info.min - spec.zero_point), high=spec.scale * (info.max - spec.zero_point))
    if np.issubdtype(dtype, np.floating):
        return InputSource("range", low=0.0, high=1.0)
    if dtype == np.bool_:
        return InputSource("range", low=0, high=1)
    if dtype in (np.int8, np.uint8):
        info = np.iinfo(dtype)
        return InputSource("range", low=int(info.min), high=int(info.max))
    if np.issubdtype(dtype, np.integer):
        return InputSource("range", low=0, high=99)
    raise DatasetError(f"input {spec.name!r} has dtype {spec.dtype}, which synthetic data cannot fill; "
                       f"give its values with --input {spec.name}=PATH.npy")


def _real(spec: TensorSpec, dtype: np.dtype) -> bool:
    return spec.quantised or np.issubdtype(dtype, np.floating)


def _check_integers(spec: TensorSpec, dtype: np.dtype, what: str, *values: Any) -> None:
    info = np.iinfo(dtype) if dtype != np.bool_ else np.iinfo(np.uint8)
    top = 1 if dtype == np.bool_ else info.max
    for value in values:
        if float(value) != int(value) or not info.min <= int(value) <= top:
            raise SettingsError(f"--input {spec.name}={what}: input {spec.name!r} is {spec.dtype}, which holds integers "
                                f"{info.min}..{top}; give one of those")


def _constant(spec: TensorSpec, shape: tuple[int, ...], value: Any, count: int) -> list[np.ndarray]:
    dtype = np.dtype(spec.dtype)
    if _real(spec, dtype):
        filled = to_model_input(np.full(shape, float(value), dtype=np.float32), spec)
    else:
        _check_integers(spec, dtype, str(value).lower(), value)
        filled = np.full(shape, int(value)).astype(dtype)
    return [filled] * count


def _range(spec: TensorSpec, shape: tuple[int, ...], low: Any, high: Any, count: int,
           rng: np.random.Generator) -> list[np.ndarray]:
    dtype = np.dtype(spec.dtype)
    if _real(spec, dtype):
        span = np.float32(high - low)
        return [to_model_input(np.float32(low) + span * rng.random(shape, dtype=np.float32), spec) for _ in range(count)]
    _check_integers(spec, dtype, f"{low}:{high}", low, high)
    if dtype == np.bool_:
        return [rng.random(shape) < 0.5 if (low, high) == (0, 1) else np.full(shape, bool(low)) for _ in range(count)]
    return [rng.integers(int(low), int(high), size=shape, endpoint=True, dtype=dtype) for _ in range(count)]


def _read_file(spec: TensorSpec, path: Path) -> np.ndarray:
    if not path.is_file():
        raise SettingsError(f"--input {spec.name}={path}: no such file; check the path")
    if path.suffix.lower() == ".txt":
        if not is_string(spec):
            raise SettingsError(f"--input {spec.name}={path}: a .txt file gives strings, but input {spec.name!r} is "
                                f"{spec.dtype}; save its values with numpy.save as a .npy file")
        return np.array(path.read_text().splitlines(), dtype=object)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise SettingsError(f"--input {spec.name}={path}: not a readable .npy file ({exc}); write it with numpy.save") from None
    if is_string(spec):
        if array.dtype.kind not in "US":
            raise SettingsError(f"--input {spec.name}={path}: input {spec.name!r} takes strings, the file holds {array.dtype}")
        return array.astype(object)
    if array.dtype != np.dtype(spec.dtype):
        raise SettingsError(f"--input {spec.name}={path}: the file holds {array.dtype}, input {spec.name!r} takes "
                            f"{spec.dtype}; save it with array.astype('{spec.dtype}')")
    return array


def _from_file(spec: TensorSpec, shape: tuple[int, ...], path: Path, count: int) -> list[np.ndarray]:
    array = _read_file(spec, path)
    if is_string(spec) and array.ndim == 1 and array.shape != shape:
        per = int(np.prod(shape))
        if len(array) % per:
            raise SettingsError(f"--input {spec.name}={path}: {len(array)} strings do not fill samples of "
                                f"{'x'.join(map(str, shape))} ({per} each); give a multiple of {per}")
        array = array.reshape((-1, *shape))
    if array.shape == shape:
        return [array] * count
    if array.ndim == len(shape) + 1 and array.shape[1:] == shape and len(array):
        return [array[i % len(array)] for i in range(count)]
    if shape and shape[0] == 1 and array.shape[1:] == shape[1:] and len(array):
        return [array[i % len(array)][None] for i in range(count)]
    want = "x".join(map(str, shape))
    raise SettingsError(f"--input {spec.name}={path}: the array is {'x'.join(map(str, array.shape))}, input {spec.name!r} "
                        f"takes {want} (or N samples: Nx{want}); reshape it or set the input's size with --shape")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fill(spec: TensorSpec, shape: tuple[int, ...], text: str | None, count: int,
         rng: np.random.Generator) -> tuple[list[np.ndarray], dict[str, Any]]:
    """``count`` values for ``spec`` from its ``--input`` text (None: its default range), and the
    record of where they came from (``dataset.inputs[]`` in the result)."""
    source = parse_source(spec.name, text) if text is not None else default_source(spec)
    record: dict[str, Any] = {"name": spec.name, "shape": list(shape), "dtype": spec.dtype,
                              "source": source.kind if text is not None else "synthetic"}
    if source.kind == "file":
        values = _from_file(spec, shape, source.path, count)
        return values, record | {"path": str(source.path.resolve()), "sha256": _sha256(source.path)}
    if is_string(spec):
        raise SettingsError(f"--input {spec.name}={text}: input {spec.name!r} takes strings; give them from a file: "
                            f"--input {spec.name}=PATH.txt (one per line) or PATH.npy")
    if source.kind == "constant":
        return _constant(spec, shape, source.value, count), record | {"value": source.value}
    values = _range(spec, shape, source.low, source.high, count, rng)
    return values, record | {"low": source.low, "high": source.high}
