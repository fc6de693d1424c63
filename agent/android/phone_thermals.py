"""A phone's temperatures before and after a run, and the throttling the run met, read over adb.

Android throttles by capping a cluster's ``scaling_max_freq`` below its ``cpuinfo_max_freq``
(the thermal HAL's cooling devices), so a cap in place when the run ends is the throttling it
ran into; on a cool phone the two are equal. Zones whose temperature the shell may not read
(common on production builds) are left out, as ``agent.android.phone_facts`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agent.android.adb import Adb
from agent.android.phone_facts import CPU_DIR, THERMAL_DIR, names, read_files

_CPU = re.compile(r"^cpu(\d+)$")
_ZONE = re.compile(r"^thermal_zone(\d+)$")


@dataclass(frozen=True)
class Snapshot:
    """Zone type → °C, and per CPU (scaling_max_freq, cpuinfo_max_freq) in kHz."""

    temps_c: dict[str, float]
    caps_khz: dict[int, tuple[int, int]]


@dataclass(frozen=True)
class Layout:
    """The phone's CPUs and thermal zones, listed once per job."""

    cpus: list[int]
    zones: list[int]

    @classmethod
    def of(cls, adb: Adb) -> Layout:
        return cls(sorted(int(m.group(1)) for n in names(adb, CPU_DIR) if (m := _CPU.match(n))),
                   sorted(int(m.group(1)) for n in names(adb, THERMAL_DIR) if (m := _ZONE.match(n))))


def snapshot(adb: Adb, layout: Layout) -> Snapshot:
    """The temperatures and frequency caps now, in one round trip."""
    paths = [f"{THERMAL_DIR}/thermal_zone{n}/{f}" for n in layout.zones for f in ("type", "temp")]
    paths += [f"{CPU_DIR}/cpu{n}/cpufreq/{f}" for n in layout.cpus for f in ("scaling_max_freq", "cpuinfo_max_freq")]
    files = read_files(adb, paths)
    temps = {}
    for n in layout.zones:
        kind, temp = files.get(f"{THERMAL_DIR}/thermal_zone{n}/type", ""), files.get(f"{THERMAL_DIR}/thermal_zone{n}/temp", "")
        if kind.strip() and temp.strip().lstrip("-").isdigit():
            temps[kind.strip()] = int(temp.strip()) / 1000.0
    caps = {}
    for n in layout.cpus:
        cap, top = (files.get(f"{CPU_DIR}/cpu{n}/cpufreq/{f}", "").strip() for f in ("scaling_max_freq", "cpuinfo_max_freq"))
        if cap.isdigit() and top.isdigit():
            caps[n] = (int(cap), int(top))
    return Snapshot(temps, caps)


def block(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """The result's ``kpis.thermals`` from the two snapshots."""
    reasons = [f"cpu{n} capped at {cap // 1000} MHz of its {top // 1000} MHz when the run ended"
               for n, (cap, top) in sorted(after.caps_khz.items()) if cap < top]
    return {"before_c": before.temps_c, "after_c": after.temps_c,
            "max_before_c": max(before.temps_c.values(), default=None), "max_after_c": max(after.temps_c.values(), default=None),
            "throttled": bool(reasons), "throttle_reasons": reasons}
