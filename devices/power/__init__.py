"""Power sources by name: ``ina219``, ``serial``, ``jtop``, ``nvml``, ``rapl``, ``battery``, ``estimate``.

A source is chosen with a spec string — ``ina219:bus=1,addr=0x40,shunt=0.1``,
``serial:/dev/ttyACM0``, ``nvml:index=0``, ``rapl``, ``auto`` — and each source module offers
``available() -> (bool, reason)`` (cheap: no device is opened, no heavy library imported) and
``open(options) -> PowerMonitor`` (raises ``PowerSourceError`` naming the fix). ``auto`` takes the
first available source in the device profile's order and always ends at the estimate, so a run
never lacks an energy block — but an estimated one says so.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from devices.power.base import PowerMonitor, PowerSourceError

# name -> module; in the order ``auto`` tries them when no device profile says otherwise
SOURCES = {
    "ina219": "devices.power.ina219",
    "serial": "devices.power.serial_monitor",
    "jtop": "devices.power.jtop",
    "nvml": "devices.power.nvml",
    "rapl": "devices.power.rapl",
    "battery": "devices.power.battery",
    "estimate": "devices.power.estimate",
}
AUTO_ORDER = ("jtop", "nvml", "rapl", "battery", "estimate")  # ina219/serial need wiring details


@dataclass(frozen=True)
class Availability:
    """Whether a source can be opened here, and why (not)."""

    name: str
    available: bool
    reason: str


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"ina219:bus=1,addr=0x40"`` → ``("ina219", {"bus": "1", "addr": "0x40"})``;
    ``"serial:/dev/ttyACM0"`` → ``("serial", {"port": "/dev/ttyACM0"})``."""
    name, _, rest = spec.strip().partition(":")
    name = name.lower()
    if name != "auto" and name not in SOURCES:
        raise PowerSourceError(f"unknown power source {name!r}; use one of: auto, {', '.join(SOURCES)}")
    options: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            if "value" in options or options.get("port"):
                raise PowerSourceError(f"bad --power option {item!r} in {spec!r}; write KEY=VALUE")
            options["port" if name == "serial" else "value"] = key
            continue
        options[key.strip()] = value.strip()
    return name, options


def _module(name: str):
    return importlib.import_module(SOURCES[name])


def availability(name: str) -> Availability:
    ok, reason = _module(name).available()
    return Availability(name, ok, reason)


def survey(order: tuple[str, ...] = tuple(SOURCES)) -> list[Availability]:
    """Every source and whether it is usable here (``edgeperf-agent power list``)."""
    return [availability(name) for name in order]


def open_source(spec: str, order: tuple[str, ...] = AUTO_ORDER) -> PowerMonitor:
    """Open the source ``spec`` names; ``auto`` opens the first in ``order`` that works."""
    name, options = parse_spec(spec)
    if name != "auto":
        return _module(name).open(options)
    problems = []
    for candidate in order:
        ok, reason = _module(candidate).available()
        if not ok:
            problems.append(f"{candidate}: {reason}")
            continue
        try:
            return _module(candidate).open(options)
        except PowerSourceError as exc:
            problems.append(f"{candidate}: {exc}")
    raise PowerSourceError("no power source works here (" + "; ".join(problems) + ")")
