"""Whole-device power from the battery's fuel gauge, ``/sys/class/power_supply/<name>/``.

On a laptop or phone-class board running on battery, the discharge power *is* the device's
power: ``current_now`` (µA) × ``voltage_now`` (µV), or ``power_now`` (µW) where the firmware
reports energy units (ThinkPads and other ACPI batteries in mW mode). Signs differ by driver:
the power_supply ABI says discharge current is negative, ACPI batteries report it positive — so
the magnitude is used, and the status says which way the energy flows.

Only a discharging battery measures the device. While charging (or full / not charging on AC),
the readings are the charge current or zero, not what the inference draws: such samples are
flagged ``status:<status>`` so the energy integration leaves them out and says so, the monitor
keeps a log of status changes, and ``available`` says no so ``auto`` moves on.

Fuel gauges are slow: most update about once a second (some ACPI firmware every few seconds),
so polling at the default 10 Hz mostly re-reads the same value — the energy accounting's
sample-count warning then tells a short run that the battery cannot resolve it.
"""

from __future__ import annotations

import time
from pathlib import Path

from devices.power.base import PollingMonitor, PowerSample, PowerSourceError, SourceInfo, positive_number, source_options

DEFAULT_ROOT = "/sys/class/power_supply"
DEFAULT_RATE_HZ = 10.0
OPTIONS = ("name", "rate", "root")
DISCHARGING = "Discharging"
CHARGING_NOTE = ("the battery was not discharging ({status}): on external power its readings are the charge current, "
                 "not the device's draw — readings taken so are flagged and left out; unplug the charger to measure")


def _attr(path: Path, name: str) -> str | None:
    """A sysfs attribute's text, or None when the supply does not have it."""
    try:
        return (path / name).read_text().strip()
    except FileNotFoundError:
        return None


def batteries(root: str | Path = DEFAULT_ROOT) -> list[Path]:
    """The system batteries under ``root``, sorted by name.

    Peripherals' batteries (a wireless mouse: ``scope`` = Device) are supplies of type Battery
    too, but they do not power this machine, so they are left out.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for supply in sorted(root.iterdir()):
        try:
            if _attr(supply, "type") != "Battery" or _attr(supply, "scope") == "Device":
                continue
        except OSError:
            continue
        found.append(supply)
    return found


def _method(path: Path) -> str | None:
    """How power is read on this supply: ``current×voltage``, ``power_now``, or None."""
    if (path / "current_now").exists() and (path / "voltage_now").exists():
        return "current_now x voltage_now"
    if (path / "power_now").exists():
        return "power_now"
    return None


def _find(root: str | Path, name: str | None) -> Path:
    found = batteries(root)
    if name is None:
        if not found:
            raise PowerSourceError(f"battery: no system battery under {root}")
        return found[0]
    path = Path(root) / name
    if not path.is_dir():
        known = ", ".join(p.name for p in found) or "none"
        raise PowerSourceError(f"battery: no power supply {name!r} under {root}; batteries here: {known}")
    if _attr(path, "type") != "Battery":
        raise PowerSourceError(f"battery: {name} is a {_attr(path, 'type')} supply, not a Battery")
    return path


class BatteryMonitor(PollingMonitor):
    """Samples the discharge power of one battery; readings while not discharging are flagged."""

    def __init__(self, path: Path, rate_hz: float, method: str, detail: dict) -> None:
        super().__init__(SourceInfo(source="battery", rail=f"{path.name} discharge (the whole device, on battery)",
                                    measured=True, nominal_hz=rate_hz, detail=detail))
        self.path = path
        self.method = method
        self.status_log: list[tuple[int, str]] = []  # (t_ns, status) at the start and at every change

    @property
    def statuses(self) -> set[str]:
        """Every status seen while sampling (the caller warns unless it is only ``Discharging``)."""
        return {status for _, status in self.status_log}

    @property
    def charging_seen(self) -> bool:
        """True if any reading was taken while the battery was not discharging."""
        return any(status != DISCHARGING for status in self.statuses)

    def read(self) -> PowerSample:
        status = _attr(self.path, "status") or "Unknown"
        volts = amps = None
        if self.method == "power_now":
            watts = abs(int(_attr(self.path, "power_now") or "")) / 1e6
            raw_volts = _attr(self.path, "voltage_now")
            if raw_volts is not None:
                volts = int(raw_volts) / 1e6
                amps = watts / volts if volts else None
        else:
            amps = abs(int(_attr(self.path, "current_now") or "")) / 1e6
            volts = int(_attr(self.path, "voltage_now") or "") / 1e6
            watts = amps * volts
        t_ns = time.monotonic_ns()
        if not self.status_log or self.status_log[-1][1] != status:
            self.status_log.append((t_ns, status))
        flags = () if status == DISCHARGING else (f"status:{status.lower().replace(' ', '-')}",)
        return PowerSample(t_ns, watts, volts=volts, amps=amps, flags=flags)


def _values_problem(path: Path, method: str | None) -> str | None:
    """None if the battery's readings can be read now, else why not."""
    if method is None:
        return f"{path.name} reports neither current_now and voltage_now nor power_now"
    names = ("power_now",) if method == "power_now" else ("current_now", "voltage_now")
    for name in names:
        try:
            int(_attr(path, name) or "")
        except PermissionError:
            return f"permission denied reading {path / name}"
        except (OSError, ValueError) as exc:
            # ACPI batteries answer ENODEV while the gauge is not ready (e.g. just after plugging)
            return f"cannot read {path / name} ({getattr(exc, 'strerror', None) or exc})"
    return None


def available(root: str | Path = DEFAULT_ROOT) -> tuple[bool, str]:
    """A discharging system battery with readable values; no device is opened beyond sysfs reads."""
    found = batteries(root)
    if not found:
        return False, f"no system battery under {root}"
    path = found[0]
    problem = _values_problem(path, _method(path))
    if problem:
        return False, problem
    status = _attr(path, "status") or "Unknown"
    if status != DISCHARGING:
        return False, (f"{path.name} is not discharging ({status}): on external power it does not measure the device; "
                       "unplug the charger")
    return True, f"{path.name} discharge power ({_method(path)})"


def open(options: dict[str, str]) -> BatteryMonitor:
    """Open a battery source.

    Options: ``name`` — the supply (``BAT0``; default the first system battery), ``rate`` —
    polls per second (default 10; the gauge itself usually updates about once a second),
    ``root`` — the power_supply directory (tests point it at a fake sysfs tree).
    """
    options = source_options("battery", options, OPTIONS)
    root = options.get("root", DEFAULT_ROOT)
    rate = positive_number("battery", options, "rate", DEFAULT_RATE_HZ, "samples per second", "samples per second")
    path = _find(root, options.get("name"))
    method = _method(path)
    problem = _values_problem(path, method)
    if problem:
        raise PowerSourceError(f"battery: {problem}")
    status = _attr(path, "status") or "Unknown"
    detail: dict = {"supply": path.name, "method": method, "status_at_open": status,
                    "note": "fuel gauges update about once a second; faster polling re-reads the same value"}
    for key in ("manufacturer", "model_name", "technology"):
        value = _attr(path, key)
        if value:
            detail[key] = value
    if status != DISCHARGING:
        detail["warning"] = CHARGING_NOTE.format(status=status)
    return BatteryMonitor(path, rate, method or "", detail)
