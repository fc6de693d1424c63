"""``KIND:PATH[:N]``: a dataset on the user's disk, named by its kind, its folder and how many samples.

Standard data sets (ImageNet, COCO, Speech Commands …) are never downloaded: their licences and
sizes rule it out, and a device that measures must not depend on the internet. So the user points
at the copy they have, ``--dataset imagenet:/data/imagenet/val:500``. ``N`` takes the first N
samples in the kind's documented deterministic order (its loader's docstring), so two runs, two
devices or an int8 and an fp32 model score the same samples.

A trailing ``:digits`` is always ``N``; every other colon belongs to the path (``C:\\data``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from agent.errors import DatasetError

_LIMIT = re.compile(r"^(?P<path>.*):(?P<n>[0-9]+)$")
T = TypeVar("T")


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed ``KIND:PATH[:N]``: ``path`` as given (``~`` expanded), ``limit`` None for every sample."""

    kind: str
    path: Path
    limit: int | None


def parse(text: str, kinds: Sequence[str]) -> DatasetSpec | None:
    """``text`` as a spec of one of ``kinds``, or None when it names no such kind."""
    kind, sep, rest = text.partition(":")
    if not sep or kind not in kinds:
        return None
    limit = None
    match = _LIMIT.match(rest)
    if match:
        rest, limit = match["path"], int(match["n"])
        if limit < 1:
            raise DatasetError(f"dataset {text}: N is {limit}; write {kind}:PATH:N with N >= 1, or leave :N off for "
                               "every sample")
    if not rest.strip():
        raise DatasetError(f"dataset {text} names no folder; write {kind}:PATH[:N], e.g. {kind}:/data/{kind}:100")
    return DatasetSpec(kind, Path(rest).expanduser(), limit)


def first(items: Sequence[T], limit: int | None, what: str) -> list[T]:
    """The first ``limit`` of ``items`` (every one for None), or one line saying how many there are."""
    if not items:
        raise DatasetError(f"{what} holds no samples; check the path and its layout")
    if limit is not None and limit > len(items):
        raise DatasetError(f"{what} holds {len(items)} samples, fewer than the {limit} asked for; "
                           f"ask for at most :{len(items)}, or leave :N off for all of them")
    return list(items if limit is None else items[:limit])


def folder(path: Path, kind: str) -> Path:
    """``path`` when it is a folder, else one line saying what it is instead."""
    if path.is_dir():
        return path
    problem = "is a file; give the folder that holds the data" if path.exists() else "does not exist; check the path"
    raise DatasetError(f"{kind} dataset folder {path} {problem} ({kind}:PATH[:N])")
