"""NVIDIA Jetson on-module power rails through jetson-stats' ``jtop`` client.

Jetsons carry INA3221 monitors on the module's input and main rails; ``jtop.service`` (root)
reads them and serves every client over ``/run/jtop.sock``. ``jetson.power`` is
``{'rail': {name: {volt mV, curr mA, power mW, avg mW, ...}}, 'tot': {..., 'name'}}`` where the
total is the module input rail (``VDD_IN`` on Orin/Xavier NX, ``POM_5V_IN`` on Nano, removed
from ``rail``) or, on boards without one, the sum of the rails (then it has no volt/curr).

The service samples at its own interval: the first client sets it and later clients get
whatever is running (jtop warns), typically 1 s, and jtop is unstable much below 0.1 s. A
short run therefore gets only a handful of samples — the energy accounting says so in the
result rather than pretending; use an INA219 or the serial meter for short runs.

jetson-stats is AGPL-3.0, so it is an optional extra and imported only when this source is
opened; ``available()`` looks for it without importing it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import time
from typing import Any

from devices.power.base import PollingMonitor, PowerSample, PowerSourceError, SourceInfo, positive_number, source_options

JTOP_SOCKET = "/run/jtop.sock"  # where jtop.service listens (jtop/service.py)
DEFAULT_INTERVAL_S = 0.5
OPTIONS = ("rail", "interval")
TOTAL = ("tot", "total")
NOT_INSTALLED = "jetson-stats not installed: pip install 'edgeperf[jetson]' (AGPL-3.0)"
SERVICE_FIX = "sudo systemctl enable --now jtop.service"
GROUP_FIX = "add your user to the jtop group (sudo usermod -aG jtop $USER) and log in again"


def _installed() -> bool:
    try:
        return importlib.util.find_spec("jtop") is not None
    except (ImportError, ValueError):  # a broken or half-removed install
        return False


def available() -> tuple[bool, str]:
    """jetson-stats importable and the service's socket present; neither imports nor connects."""
    if not _installed():
        return False, NOT_INSTALLED
    if not os.path.exists(JTOP_SOCKET):
        return False, f"jtop.service is not running: {SERVICE_FIX}"
    if not os.access(JTOP_SOCKET, os.R_OK | os.W_OK):
        return False, f"no access to {JTOP_SOCKET}: {GROUP_FIX}"
    return True, f"jtop.service at {JTOP_SOCKET}"


def connect_problem(message: str) -> str:
    """jtop's own words on a failed connection (made one line), plus the fix."""
    text = " ".join(str(message).split())
    lowered = text.lower()
    if "access" in lowered or "permission" in lowered:
        fix = GROUP_FIX
    elif "mismatch" in lowered and "version" in lowered:
        fix = "install the jetson-stats version the service runs (pip show jetson-stats); sudo systemctl restart jtop.service"
    else:
        fix = SERVICE_FIX
    return f"jtop: {text} — fix: {fix}"


def _rail_names(power: dict[str, Any]) -> list[str]:
    tot_name = power.get("tot", {}).get("name")
    return ([f"{tot_name} (total)"] if tot_name else ["tot (sum of rails)"]) + list(power.get("rail", {}))


def _resolve(power: dict[str, Any], rail: str | None) -> tuple[str | None, str]:
    """The ``rail`` option → (key in ``power['rail']``, or None for the total; the rail's label)."""
    tot = power.get("tot") or {}
    tot_label = tot.get("name") or "sum of all rails (no VDD_IN/POM_5V_IN on this board)"
    if rail is None or rail.lower() in TOTAL or (tot.get("name") and rail.lower() == tot["name"].lower()):
        if not tot:
            raise PowerSourceError("jtop: the service reports no power total on this board")
        return None, tot_label
    rails = power.get("rail", {})
    for name in rails:
        if name == rail or name.lower() == rail.lower():
            return name, name
    raise PowerSourceError(f"jtop: no rail {rail!r} on this board; rails: {', '.join(_rail_names(power))}")


class JtopMonitor(PollingMonitor):
    """One sample per new reading the service pushes; ``read`` blocks in ``jetson.ok()`` until then."""

    paced_by_read = True

    def __init__(self, client: Any, stack: contextlib.ExitStack, key: str | None, info: SourceInfo) -> None:
        super().__init__(info)
        self._client = client
        self._stack = stack
        self._key = key
        self._closed = False

    def start(self) -> None:
        """Drop the reading that is already waiting: it arrived at an unknown time before now, and a
        sample timestamped late would shift energy into the window."""
        self._client.ok(spin=True)
        super().start()

    def read(self) -> PowerSample:
        if not self._client.ok():  # blocks until the service pushes a new reading; raises its error if it has one
            raise PowerSourceError("jtop: no new reading from jtop.service within 3 intervals (was the service stopped?)")
        t_ns = time.monotonic_ns()
        power = self._client.power
        values = power["tot"] if self._key is None else power["rail"][self._key]
        volt, curr = values.get("volt"), values.get("curr")
        flags = ("offline",) if values.get("online") is False else ()
        return PowerSample(t_ns, values["power"] / 1000, volts=None if volt is None else volt / 1000,
                           amps=None if curr is None else curr / 1000, flags=flags)

    def close(self) -> None:
        """Leave the service: ``close()`` ends the client's reader thread (jtop's ``__exit__`` does not)."""
        if self._closed:
            return
        self._closed = True
        _leave(self._client, self._stack)


def _connect(module: Any, interval: float) -> tuple[Any, contextlib.ExitStack]:
    """``with jtop(interval) as jetson`` kept open: connects and waits for the service's first reading."""
    client = module.jtop(interval=interval)
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(client)
    except module.JtopException as exc:
        raise PowerSourceError(connect_problem(str(exc))) from None
    except OSError as exc:  # jtop re-raises socket errors it has no message for
        raise PowerSourceError(connect_problem(f"cannot connect to {JTOP_SOCKET} ({exc})")) from None
    return client, stack


def _leave(client: Any, stack: contextlib.ExitStack) -> None:
    with contextlib.suppress(Exception):
        client.close()
    stack.close()


def open(options: dict[str, str]) -> JtopMonitor:
    """Open the jtop source.

    Options: ``rail`` — ``tot`` (default: the module input, VDD_IN / POM_5V_IN) or a rail name
    such as ``VDD_CPU_GPU_CV``; ``interval`` — seconds between readings asked of the service
    (default 0.5; a service already running for another client keeps its own interval).
    """
    options = source_options("jtop", options, OPTIONS)
    interval = positive_number("jtop", options, "interval", DEFAULT_INTERVAL_S, "seconds", "s")
    ok, reason = available()
    if not ok:
        raise PowerSourceError(reason if reason == NOT_INSTALLED else f"jtop: {reason}")
    try:
        module = importlib.import_module("jtop")
    except ImportError as exc:
        raise PowerSourceError(f"{NOT_INSTALLED} (import failed: {exc})") from None
    client, stack = _connect(module, interval)
    service_interval = float(getattr(client, "interval", interval) or interval)
    note = "jtop.service samples at its own interval (about 1 Hz typical): a short run gets few samples"
    if service_interval > 2 * interval:
        # jtop's ok() gives up after 3 of *our* intervals; against a slower service it would time out
        # and end the client, so listen at the service's own pace instead.
        _leave(client, stack)
        client, stack = _connect(module, service_interval)
        note += f"; the service already ran at {service_interval:g} s, so the client follows it"
    try:
        power = client.power
        if not power:
            raise PowerSourceError("jtop: the service reports no power monitors on this board")
        key, label = _resolve(power, options.get("rail"))
    except BaseException:
        _leave(client, stack)
        raise
    tot = power.get("tot", {})
    detail = {
        "requested_interval_s": interval, "service_interval_s": service_interval,
        "total": tot.get("name") or "sum of rails", "rails": list(power.get("rail", {})),
        "jetson_stats_version": getattr(module, "__version__", None),
        "note": note,
    }
    info = SourceInfo(source="jtop", rail=label, measured=True, nominal_hz=1 / service_interval, detail=detail)
    return JtopMonitor(client, stack, key, info)
