"""Device profiles: the power figures the estimate uses and the power sources to try, per board.

One TOML file per device family (``rpi4.toml``, ``jetson-orin-nano.toml``, ``h100.toml``, ...).
A profile is matched from the device facts — a GPU's name first (a datacenter host is its
GPU), then the board name, then the CPU architecture (``generic-x86``). The figures are typical
published values, labelled as such; a measured source always wins over them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from devices.errors import EdgeperfError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Profile:
    """Power envelope and preferred sources of one device family."""

    name: str
    title: str
    match: tuple[str, ...]
    arch: str
    idle_w: float
    max_w: float
    power_sources: tuple[str, ...]
    notes: str = ""

    def estimate_w(self, cpu_fraction: float) -> float:
        """idle + (max - idle) × utilisation: the estimate's whole model, stated plainly."""
        return self.idle_w + (self.max_w - self.idle_w) * min(max(cpu_fraction, 0.0), 1.0)


@cache
def profiles() -> dict[str, Profile]:
    out = {}
    for path in sorted(HERE.glob("*.toml")):
        data: dict[str, Any] = tomllib.loads(path.read_text())
        out[data["name"]] = Profile(
            name=data["name"], title=data["title"], match=tuple(data["match"]), arch=data["arch"],
            idle_w=float(data["idle_w"]), max_w=float(data["max_w"]), power_sources=tuple(data["power_sources"]),
            notes=data.get("notes", ""),
        )
    return out


def get(name: str) -> Profile:
    try:
        return profiles()[name]
    except KeyError:
        raise EdgeperfError(f"no device profile {name!r}; known: {', '.join(profiles())}") from None


def match(facts: dict[str, Any]) -> Profile | None:
    """The profile for a device described by ``devices.probe.collect()``'s facts, if any fits."""
    gpus = " ".join(g.get("name", "") for g in facts.get("gpus", []))
    board = str(facts.get("board", ""))
    for text in (gpus, board):
        for profile in profiles().values():
            if text and any(m in text for m in profile.match):
                return profile
    if facts.get("arch") in ("x86_64", "AMD64"):
        return profiles()["generic-x86"]
    return None
