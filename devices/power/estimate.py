"""The estimate: CPU utilisation × the device profile's power envelope — always labelled estimated.

It exists so a device without a meter still gets an energy block, never so a number looks
measured. The model is the profile's ``idle_w + (max_w - idle_w) × utilisation`` with the
whole machine's CPU utilisation sampled at 10 Hz; options ``idle_w``/``max_w`` replace the
profile's figures, ``profile`` picks one by name.
"""

from __future__ import annotations

import time

import psutil

from devices import probe, profiles
from devices.power.base import PollingMonitor, PowerSample, PowerSourceError, SourceInfo

RATE_HZ = 10.0


class EstimateMonitor(PollingMonitor):
    """Estimated power from system-wide CPU utilisation between consecutive readings."""

    def __init__(self, profile: profiles.Profile) -> None:
        super().__init__(SourceInfo(
            source="estimate", rail=f"whole device (estimated from CPU use, profile {profile.name})", measured=False,
            nominal_hz=RATE_HZ, detail={"profile": profile.name, "idle_w": profile.idle_w, "max_w": profile.max_w,
                                        "model": "idle_w + (max_w - idle_w) x CPU utilisation"},
        ))
        self.profile = profile
        psutil.cpu_percent(interval=None)  # the first call only starts the interval

    def read(self) -> PowerSample:
        fraction = psutil.cpu_percent(interval=None) / 100.0
        return PowerSample(time.monotonic_ns(), self.profile.estimate_w(fraction))


def _profile(options: dict[str, str]) -> profiles.Profile | None:
    base = profiles.get(options["profile"]) if "profile" in options else profiles.match(probe.collect())
    if "idle_w" in options or "max_w" in options:
        try:
            idle = float(options.get("idle_w", base.idle_w if base else "nan"))
            top = float(options.get("max_w", base.max_w if base else "nan"))
        except ValueError:
            raise PowerSourceError("estimate: idle_w and max_w must be numbers (watts)") from None
        if not (0 <= idle <= top):
            raise PowerSourceError("estimate: give both idle_w and max_w, with 0 <= idle_w <= max_w")
        name = base.name if base else "custom"
        return profiles.Profile(name, f"{name} (user figures)", (), "", idle, top, ("estimate",), "figures from --power")
    return base


def available() -> tuple[bool, str]:
    profile = profiles.match(probe.collect())
    if profile is None:
        return False, "no device profile matches this board; use estimate:idle_w=..,max_w=.."
    return True, f"estimated from CPU use with profile {profile.name} ({profile.idle_w:g}-{profile.max_w:g} W)"


def open(options: dict[str, str]) -> EstimateMonitor:
    profile = _profile(options)
    if profile is None:
        raise PowerSourceError("estimate: no device profile matches this board; pass estimate:idle_w=..,max_w=..")
    return EstimateMonitor(profile)
