"""Reading a phone's facts over adb: its properties and the sysfs files ``agent.android.facts`` turns
into device facts, in four round trips whatever the phone's number of cores and thermal zones.

The folders are listed first (``ls``), then every file is read in one command, each ``cat``
preceded by a section line, so a phone with eight cores and forty thermal zones costs no more
round trips than one with two. A file the phone does not let the shell read (``cat: …: Permission
denied``, common for thermal zones on production builds) is left out, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from agent.android.adb import Adb
from agent.android.facts import parse_getprop, phone_facts

CPU_DIR = "/sys/devices/system/cpu"
THERMAL_DIR = "/sys/class/thermal"
BATTERY_DIR = "/sys/class/power_supply/battery"
BATTERY_FILES = ("capacity", "status", "health", "temp", "current_now", "voltage_now", "charge_counter")
SECTION = "__EDGEPERF_FILE="
_CPU = re.compile(r"^cpu(\d+)$")
_ZONE = re.compile(r"^thermal_zone(\d+)$")


def _names(adb: Adb, folder: str) -> list[str]:
    out, status = adb.shell(f"ls {folder}", f"ls {folder}")
    return out.split() if status == 0 else []


def read_files(adb: Adb, paths: Sequence[str]) -> dict[str, str]:
    """The text of every readable file of ``paths``, in one command; unreadable ones are left out."""
    if not paths:
        return {}
    out, _ = adb.shell("; ".join(f"echo {SECTION}{path}; cat {path}" for path in paths), "read sysfs")
    found: dict[str, str] = {}
    for chunk in out.split(SECTION)[1:]:
        path, _, text = chunk.partition("\n")
        if not text.startswith("cat: "):
            found[path.strip()] = text
    return found


def collect(adb: Adb) -> dict[str, Any]:
    """The phone's device facts (``agent.android.facts.phone_facts``) as the phone reports them now."""
    props = parse_getprop(adb.shell("getprop", "getprop")[0])
    kernel, status = adb.shell("uname -r", "uname")
    cpus = sorted(int(m.group(1)) for name in _names(adb, CPU_DIR) if (m := _CPU.match(name)))
    zones = sorted(int(m.group(1)) for name in _names(adb, THERMAL_DIR) if (m := _ZONE.match(name)))
    paths = [f"{CPU_DIR}/cpu{n}/cpufreq/{f}" for n in cpus for f in ("cpuinfo_max_freq", "scaling_governor")]
    paths += [f"{THERMAL_DIR}/thermal_zone{n}/{f}" for n in zones for f in ("type", "temp")]
    paths += [f"{BATTERY_DIR}/{f}" for f in BATTERY_FILES]
    files = read_files(adb, paths)
    cpu_files = {n: {f: files[p] for f in ("cpuinfo_max_freq", "scaling_governor")
                     if (p := f"{CPU_DIR}/cpu{n}/cpufreq/{f}") in files} for n in cpus}
    thermal = {}
    for n in zones:
        kind, temp = files.get(f"{THERMAL_DIR}/thermal_zone{n}/type"), files.get(f"{THERMAL_DIR}/thermal_zone{n}/temp")
        if kind and temp is not None:
            thermal[kind.strip()] = temp
    battery = {f: files[p] for f in BATTERY_FILES if (p := f"{BATTERY_DIR}/{f}") in files}
    return phone_facts(props, cpu_files or None, thermal or None, battery or None, kernel if status == 0 else "")
