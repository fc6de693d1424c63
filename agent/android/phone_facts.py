"""Reading a phone's facts over adb: its properties and the sysfs files ``agent.android.facts`` turns
into device facts, in a few round trips whatever the phone's number of cores and thermal zones.

The folders are listed first (``ls``), then the files are read in as few commands as adb allows
(its client refuses a shell command longer than 4 KiB: "shell command too long"), each ``cat``
preceded by a section line, so a phone with eight cores and forty thermal zones costs a handful
of round trips, not a hundred. A file the phone does not let the shell read (``Permission denied``,
common for thermal zones on production builds) is left out, never guessed: its ``cat`` fails, and
the command says so with a marker of its own rather than with an error text that differs between
Android's shells.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.android.adb import Adb
from agent.android.facts import parse_getprop, phone_facts

CPU_DIR = "/sys/devices/system/cpu"
THERMAL_DIR = "/sys/class/thermal"
BATTERY_DIR = "/sys/class/power_supply/battery"
BATTERY_FILES = ("capacity", "status", "health", "temp", "current_now", "voltage_now", "charge_counter")
SECTION = "__EDGEPERF_FILE="
MAX_COMMAND = 3000  # adb 29 refuses a shell command over 4 KiB; the end marker and margin fit in the rest
UNREADABLE = "__EDGEPERF_UNREADABLE"  # said by the phone for a file its shell may not read
_CPU = re.compile(r"^cpu(\d+)$")
_ZONE = re.compile(r"^thermal_zone(\d+)$")


def names(adb: Adb, folder: str) -> list[str]:
    out, status = adb.shell(f"ls {folder}", f"ls {folder}")
    return out.split() if status == 0 else []


def _batches(paths: Sequence[str]) -> list[str]:
    """One command per batch of files, each under adb's limit on a shell command."""
    commands, current = [], ""
    for path in paths:
        part = f"echo {SECTION}{path}; cat {path} 2>/dev/null || echo {UNREADABLE}"
        if current and len(current) + len(part) + 2 > MAX_COMMAND:
            commands.append(current)
            current = ""
        current = f"{current}; {part}" if current else part
    return [*commands, current] if current else commands


def read_files(adb: Adb, paths: Sequence[str]) -> dict[str, str]:
    """The text of every readable file of ``paths``; unreadable ones are left out."""
    out = "".join(adb.shell(command, "read sysfs")[0] for command in _batches(paths))
    found: dict[str, str] = {}
    for chunk in out.split(SECTION)[1:]:
        path, _, text = chunk.partition("\n")
        if not text.endswith(f"{UNREADABLE}\n"):
            found[path.strip()] = text
    return found


@dataclass(frozen=True)
class Layout:
    """The phone's CPUs and thermal zones by number: listed once, read as often as needed."""

    cpus: list[int]
    zones: list[int]

    @classmethod
    def of(cls, adb: Adb) -> Layout:
        return cls(sorted(int(m.group(1)) for name in names(adb, CPU_DIR) if (m := _CPU.match(name))),
                   sorted(int(m.group(1)) for name in names(adb, THERMAL_DIR) if (m := _ZONE.match(name))))

    def zone_files(self) -> list[str]:
        return [f"{THERMAL_DIR}/thermal_zone{n}/{f}" for n in self.zones for f in ("type", "temp")]

    def zone_texts(self, files: Mapping[str, str]) -> dict[str, str]:
        """Zone type → its ``temp`` text, from ``read_files`` of ``zone_files``."""
        out = {}
        for n in self.zones:
            kind, temp = files.get(f"{THERMAL_DIR}/thermal_zone{n}/type"), files.get(f"{THERMAL_DIR}/thermal_zone{n}/temp")
            if kind and temp is not None:
                out[kind.strip()] = temp
        return out


def collect(adb: Adb, layout: Layout | None = None) -> dict[str, Any]:
    """The phone's device facts (``agent.android.facts.phone_facts``) as the phone reports them now."""
    props = parse_getprop(adb.shell("getprop", "getprop")[0])
    kernel, status = adb.shell("uname -r", "uname")
    layout = layout or Layout.of(adb)
    paths = [f"{CPU_DIR}/cpu{n}/cpufreq/{f}" for n in layout.cpus for f in ("cpuinfo_max_freq", "scaling_governor")]
    paths += layout.zone_files() + [f"{BATTERY_DIR}/{f}" for f in BATTERY_FILES]
    files = read_files(adb, paths)
    cpu_files = {n: {f: files[p] for f in ("cpuinfo_max_freq", "scaling_governor")
                     if (p := f"{CPU_DIR}/cpu{n}/cpufreq/{f}") in files} for n in layout.cpus}
    thermal = layout.zone_texts(files)
    battery = {f: files[p] for f in BATTERY_FILES if (p := f"{BATTERY_DIR}/{f}") in files}
    return phone_facts(props, cpu_files or None, thermal or None, battery or None, kernel if status == 0 else "")
