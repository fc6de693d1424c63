"""Concrete input shapes for models with dynamic dimensions, and the ``--shape`` syntax.

A free leading dimension is taken as the batch and set to 1; any other free dimension (sequence
length, image size) has no safe default, so the user must name it with ``--shape name=1x3x224x224``.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.errors import SettingsError
from agent.runtimes.base import TensorSpec


def parse_shape_overrides(items: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """``["x=1x3x224x224", "ids=1x128"]`` → ``{"x": (1, 3, 224, 224), "ids": (1, 128)}``."""
    out: dict[str, tuple[int, ...]] = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) < 1:
            raise SettingsError(f"bad --shape {item!r}; write NAME=D1xD2x..., e.g. --shape image=1x3x224x224")
        out[name] = shape
    return out


def _pattern(spec: TensorSpec, free: str) -> str:
    return "x".join(str(d) if isinstance(d, int) and d >= 0 else free for d in spec.shape)


def concrete_shape(spec: TensorSpec, overrides: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    """The shape to feed ``spec``: the override if given, else fixed dims with batch 1."""
    if spec.name in overrides:
        shape = overrides[spec.name]
        fixed_ok = all(not isinstance(d, int) or d < 0 or d == s for d, s in zip(spec.shape, shape, strict=False))
        if len(shape) != len(spec.shape) or not fixed_ok:
            given = "x".join(map(str, shape))
            raise SettingsError(f"--shape {spec.name}={given} does not fit input {spec.name!r} ({_pattern(spec, '?')})")
        return shape
    shape = []
    for axis, dim in enumerate(spec.shape):
        if isinstance(dim, int) and dim >= 0:
            shape.append(dim)
        elif axis == 0:
            shape.append(1)
        else:
            raise SettingsError(
                f"input {spec.name!r} has a free dimension{'' if dim is None else f' {dim!r}'} at axis {axis} "
                f"({_pattern(spec, '?')}); "
                f"give it with --shape {spec.name}={_pattern(spec, 'N')}"
            )
    return tuple(shape)


def unknown_overrides(specs: Iterable[TensorSpec], overrides: dict[str, tuple[int, ...]]) -> None:
    """Refuse ``--shape`` names the model does not have, listing the ones it does."""
    names = [s.name for s in specs]
    for name in overrides:
        if name not in names:
            raise SettingsError(f"--shape names input {name!r}, but the model's inputs are: {', '.join(names)}")
