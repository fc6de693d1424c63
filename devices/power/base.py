"""One interface for every power source: start, stop, timestamped samples, and what was measured.

Energy per inference is only as honest as its samples, so each source says what it is (measured
or estimated, which rail, how fast it claims to sample) and each sample carries the host's
monotonic clock, the clock the benchmark window is cut from. Sources that poll a meter share
``PollingMonitor``: a daemon thread that reads, timestamps and appends — and that records a
failure instead of raising, because a run must never die because its power meter did.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devices.errors import EdgeperfError

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_ERRORS = 5


class PowerSourceError(EdgeperfError):
    """A power source that cannot be opened or read; the message names the fix."""


def source_options(source: str, options: Mapping[str, Any], allowed: Sequence[str]) -> dict[str, Any]:
    """A source's options from ``--power source:value,key=value``: the bare value is the first of
    ``allowed`` (``rapl:psys`` means ``domain=psys``), and an unknown key is refused by name."""
    out = dict(options)
    if "value" in out:
        out.setdefault(allowed[0], out.pop("value"))
    unknown = sorted(set(out) - set(allowed))
    if unknown:
        raise PowerSourceError(f"{source}: unknown option {', '.join(unknown)}; use {', '.join(allowed)}")
    return out


def positive_number(source: str, options: Mapping[str, Any], key: str, default: float, what: str, unit: str) -> float:
    """``options[key]`` (or ``default``) as a number above 0, or one line naming the source and the key."""
    try:
        value = float(options.get(key, default))
    except ValueError:
        raise PowerSourceError(f"{source}: {key} must be a number of {what}, not {options[key]!r}") from None
    if not value > 0:
        raise PowerSourceError(f"{source}: {key} must be above 0 {unit}")
    return value


@dataclass(frozen=True)
class PowerSample:
    """One reading. ``t_ns`` is ``time.monotonic_ns()`` on the host when the reading was taken."""

    t_ns: int
    watts: float | None  # instantaneous power; None for counter-only readings
    volts: float | None = None
    amps: float | None = None
    energy_j: float | None = None  # cumulative energy counter (RAPL, NVML), wrap-corrected
    flags: tuple[str, ...] = ()  # e.g. ("overflow",): the reading is not to be trusted

    @property
    def valid(self) -> bool:
        return not self.flags


@dataclass(frozen=True)
class SourceInfo:
    """What a source measures and how: recorded with every energy result."""

    source: str  # ina219 | serial | jtop | nvml | rapl | battery | estimate
    rail: str  # what the number covers, e.g. "board 5 V input", "VDD_IN", "package-0", "GPU 0"
    measured: bool  # False only for the estimate
    nominal_hz: float  # the rate the source is configured for (0: unknown)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "rail": self.rail, "measured": self.measured, "nominal_hz": self.nominal_hz,
                "detail": self.detail}


class PowerMonitor(ABC):
    """A running source: ``start`` begins sampling, ``stop`` ends it and returns every sample."""

    info: SourceInfo

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> list[PowerSample]: ...

    @abstractmethod
    def samples(self) -> list[PowerSample]:
        """Samples so far (a copy), without stopping."""

    @property
    def error(self) -> str | None:
        """Why sampling stopped early, if it did."""
        return None

    def close(self) -> None:  # noqa: B027 - most sources hold nothing to release
        """Release the device (bus, port, library); sampling must be stopped first."""


class PollingMonitor(PowerMonitor):
    """Sampling by calling ``read()`` in a thread at ``info.nominal_hz``, or as fast as ``read``
    returns when it blocks (a meter that signals conversion-ready paces itself)."""

    paced_by_read = False  # True when read() itself waits for fresh data

    def __init__(self, info: SourceInfo) -> None:
        self.info = info
        self._samples: list[PowerSample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None

    @abstractmethod
    def read(self) -> PowerSample:
        """One reading, timestamped with ``time.monotonic_ns()``; raise on a device error."""

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"power-{self.info.source}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        period_ns = 0 if self.paced_by_read or not self.info.nominal_hz else int(1e9 / self.info.nominal_hz)
        next_ns, errors = time.monotonic_ns(), 0
        while not self._stop.is_set():
            try:
                sample = self.read()
                errors = 0
            except Exception as exc:  # the run goes on; the failure is reported with the energy block
                errors += 1
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    self._error = f"{self.info.source} stopped after {errors} failed reads: {exc}"
                    log.warning(self._error)
                    return
                continue
            with self._lock:
                self._samples.append(sample)
            if period_ns:
                next_ns += period_ns
                delay = next_ns - time.monotonic_ns()
                if delay > 0:
                    self._stop.wait(delay / 1e9)
                else:
                    next_ns = time.monotonic_ns()  # fell behind: do not try to catch up in a burst

    def stop(self) -> list[PowerSample]:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        return self.samples()

    def samples(self) -> list[PowerSample]:
        with self._lock:
            return list(self._samples)

    @property
    def error(self) -> str | None:
        return self._error
