"""Intel/AMD RAPL energy counters through the Linux powercap sysfs interface.

RAPL is the one meter every modern x86 CPU carries: a per-domain energy counter the firmware
updates about every millisecond, exposed as ``/sys/class/powercap/intel-rapl:N[/:M]/energy_uj``
(AMD Zen CPUs use the same ``intel-rapl`` names on recent kernels). Because it is a counter, not
a power reading, the energy over a window is a difference of two interpolated counter values —
exact however slowly we poll, as long as we poll faster than the counter wraps. So every sample
carries the cumulative ``energy_j`` (the integrator prefers it) and, for plots and the idle
baseline, ``watts`` from the difference to the previous reading.

What it covers: ``package-N`` is the whole CPU socket (cores, caches, memory controller, on-die
GPU), ``core``/``uncore``/``dram`` are sub-zones, ``psys`` (laptops) the SoC platform. It counts
every process on the socket, not only the benchmark — the idle baseline is what makes the
number about the inference.

Since Linux 5.10 (the PLATYPUS side channel, CVE-2020-8694) ``energy_uj`` is readable by root
only; the fix is to run as root or to make the files world-readable with a udev rule.
"""

from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from devices.power.base import PollingMonitor, PowerSample, PowerSourceError, SourceInfo, positive_number, source_options

DEFAULT_ROOT = "/sys/class/powercap"
DEFAULT_RATE_HZ = 100.0
OPTIONS = ("domain", "rate", "root")
ZONE_RE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")
PERMISSION_FIX = "run as root or `chmod o+r` the energy_uj files (a udev rule)"
UDEV_HINT = ('e.g. /etc/udev/rules.d/90-rapl.rules: SUBSYSTEM=="powercap", ACTION=="add", '
             'RUN+="/bin/chmod o+r /sys%p/energy_uj"')


@dataclass(frozen=True)
class Zone:
    """One powercap zone: ``intel-rapl:0`` (top level) or ``intel-rapl:0:1`` (a sub-zone)."""

    id: str
    path: Path
    name: str
    parent: str | None  # the top-level zone's id for a sub-zone
    parent_name: str = ""  # the top-level zone's name (package-1) for a sub-zone

    @property
    def top_level(self) -> bool:
        return self.parent is None

    @property
    def label(self) -> str:
        """A unique human name: ``package-0`` or ``package-1/core``."""
        return self.name if self.top_level else f"{self.parent_name}/{self.name}"


def _read_text(path: Path) -> str:
    return path.read_text().strip()  # (this module's ``open`` is the source's, not the builtin)


def zones(root: str | Path = DEFAULT_ROOT) -> list[Zone]:
    """Every RAPL zone under ``root``, top-level zones first, in numeric order."""
    root = Path(root)
    try:
        entries = os.listdir(root)
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        m = ZONE_RE.match(entry)
        if m and (root / entry).is_dir():
            try:
                name = _read_text(root / entry / "name")
            except OSError:
                name = entry
            key = (int(m.group(1)), -1 if m.group(2) is None else int(m.group(2)))
            found.append((key, entry, name))
    found.sort()
    names = {entry: name for _, entry, name in found}
    result = []
    for (package, sub), entry, name in found:
        parent = None if sub < 0 else f"intel-rapl:{package}"
        result.append(Zone(entry, root / entry, name, parent, names.get(parent, parent or "")))
    return result


def permission_message(path: Path | str) -> str:
    """The one line a user sees when the kernel refuses to let them read a counter."""
    return f"permission denied reading {path}: {PERMISSION_FIX}; {UDEV_HINT}"


def _select(all_zones: list[Zone], domain: str | None) -> list[Zone]:
    """The zones a ``domain`` option means (see ``open``)."""
    top = [z for z in all_zones if z.top_level]
    if not top:
        return []
    if domain is None:
        for wanted in ("package-0", "psys"):
            match = [z for z in top if z.name == wanted]
            if match:
                return match[:1]
        return top[:1]
    if domain == "all":
        packages = [z for z in top if z.name.startswith("package-")]
        return packages or top[:1]
    for candidates in ([z for z in all_zones if z.id == domain], [z for z in all_zones if z.label == domain],
                       [z for z in top if z.name == domain], [z for z in all_zones if z.name == domain]):
        if candidates:
            return candidates[:1]
    return []


def _read_counter(path: Path) -> int:
    return int((path / "energy_uj").read_text())


class RaplMonitor(PollingMonitor):
    """Samples one or more RAPL counters; wrap-corrected cumulative energy, summed over zones."""

    def __init__(self, selected: list[Zone], rate_hz: float, ranges: dict[str, int], label: str) -> None:
        super().__init__(SourceInfo(
            source="rapl", rail=label, measured=True, nominal_hz=rate_hz,
            detail={"method": "energy counter", "zones": [z.id for z in selected], "domains": [z.label for z in selected],
                    "max_energy_range_uj": ranges,
                    "note": "RAPL counts the whole CPU package (every process on it), not only the benchmark"},
        ))
        self.zones = selected
        self._ranges = [ranges[z.id] for z in selected]
        self._last_raw: list[int | None] = [None] * len(selected)
        self._wraps = [0] * len(selected)
        self._previous: tuple[int, float] | None = None

    def read(self) -> PowerSample:
        """Read every zone's counter, correct wrap-arounds, and derive power from the previous reading.

        A counter that went down wrapped once (``max_energy_range_uj + 1`` µJ later); two wraps
        between readings cannot be told apart from one, which is why the poll rate must stay far
        above ``max power / max_energy_range`` (at 100 Hz that is never close).
        """
        total_uj = 0
        for i, zone in enumerate(self.zones):
            raw = _read_counter(zone.path)
            last = self._last_raw[i]
            if last is not None and raw < last:
                self._wraps[i] += 1
            self._last_raw[i] = raw
            total_uj += raw + self._wraps[i] * (self._ranges[i] + 1)
        t_ns = time.monotonic_ns()
        energy_j = total_uj / 1e6
        watts = None
        if self._previous is not None and t_ns > self._previous[0]:
            watts = (energy_j - self._previous[1]) / ((t_ns - self._previous[0]) / 1e9)
        self._previous = (t_ns, energy_j)
        return PowerSample(t_ns, watts, energy_j=energy_j)


def _check_readable(zone: Zone) -> str | None:
    """None if the counter can be read, else the reason (one line, naming the fix)."""
    path = zone.path / "energy_uj"
    try:
        _read_counter(zone.path)
    except PermissionError:
        return permission_message(path)
    except FileNotFoundError:
        return f"{zone.id} ({zone.name}) has no energy_uj counter"
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            return permission_message(path)
        return f"cannot read {path}: {exc.strerror or exc}"
    except ValueError:
        return f"{path} does not hold a number"
    return None


def _missing_message(root: str | Path) -> str:
    return (f"no RAPL energy counters under {root} (not an Intel/AMD x86 CPU, or the intel_rapl_msr module is not "
            "loaded: sudo modprobe intel_rapl_msr; in a container, mount /sys/class/powercap)")


def available(root: str | Path = DEFAULT_ROOT) -> tuple[bool, str]:
    """Whether the default domain's counter can be read; reads one small sysfs file, nothing more."""
    selected = _select(zones(root), None)
    if not selected:
        return False, _missing_message(root)
    problem = _check_readable(selected[0])
    if problem:
        return False, problem
    return True, f"RAPL {selected[0].name} energy counter ({selected[0].id})"


def open(options: dict[str, str]) -> RaplMonitor:
    """Open a RAPL source.

    Options: ``domain`` — a zone name (``package-0``, ``psys``, ``dram``), a ``package-1/core``
    label, a zone id (``intel-rapl:0:1``), or ``all`` for the sum of every top-level package;
    default package-0, else psys, else the first top-level zone. ``rate`` — polls per second
    (default 100). ``root`` — the powercap directory (tests point it at a fake sysfs tree).
    """
    options = source_options("rapl", options, OPTIONS)
    root = options.get("root", DEFAULT_ROOT)
    rate = positive_number("rapl", options, "rate", DEFAULT_RATE_HZ, "samples per second", "samples per second")
    all_zones = zones(root)
    if not all_zones:
        raise PowerSourceError(_missing_message(root))
    domain = options.get("domain")
    selected = _select(all_zones, domain)
    if not selected:
        known = ", ".join(z.label for z in all_zones)
        raise PowerSourceError(f"rapl: no domain {domain!r} here; domains: {known}, or all")
    ranges = {}
    for zone in selected:
        problem = _check_readable(zone)
        if problem:
            raise PowerSourceError(f"rapl: {problem}")
        try:
            ranges[zone.id] = int(_read_text(zone.path / "max_energy_range_uj"))
        except (OSError, ValueError) as exc:
            raise PowerSourceError(f"rapl: cannot read {zone.path / 'max_energy_range_uj'} ({exc}); "
                                   "without it counter wrap-arounds cannot be corrected") from None
    label = "+".join(z.label for z in selected)
    return RaplMonitor(selected, rate, ranges, label)
