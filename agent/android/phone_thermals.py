"""A phone's temperatures before and after a run, and the throttling the run met, read over adb.

Android throttles by capping a cluster's ``scaling_max_freq`` below its ``cpuinfo_max_freq``
(the thermal HAL's cooling devices), so a cap in place when the run ends is the throttling it
ran into; on a cool phone the two are equal. Zones whose temperature the shell may not read
(common on production builds) are left out, as ``agent.android.phone_facts`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.android.adb import Adb
from agent.android.facts import temperatures_c
from agent.android.phone_facts import CPU_DIR, Layout, read_files


@dataclass(frozen=True)
class Snapshot:
    """Zone type → °C, and per CPU (scaling_max_freq, cpuinfo_max_freq) in kHz."""

    temps_c: dict[str, float]
    caps_khz: dict[int, tuple[int, int]]


def snapshot(adb: Adb, layout: Layout) -> Snapshot:
    """The temperatures and frequency caps now, in one round trip."""
    paths = layout.zone_files()
    paths += [f"{CPU_DIR}/cpu{n}/cpufreq/{f}" for n in layout.cpus for f in ("scaling_max_freq", "cpuinfo_max_freq")]
    files = read_files(adb, paths)
    temps = temperatures_c(layout.zone_texts(files))
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
