"""A phone's facts from what the phone says about itself: ``getprop`` and sysfs, read over adb.

The keys are the ones ``devices.probe`` gives a Linux device (``board``, ``cpu_model``,
``cpu_count_logical``, ``cpu_governor``, ``cpu_freq_mhz``, ``temperatures_c``, ``os``, ``arch``,
``kernel``), so scorecards, device classes and reports treat a phone like any device; the
Android-only ones (``android_release``, ``android_sdk``, ``security_patch``, ``abi``, ``soc``,
``cpu_clusters``, ``battery``) are added beside them. A property or file the phone does not have
is left out, never guessed.

``getprop`` prints one ``[key]: [value]`` line per property (``system/core/toolbox/getprop.cpp``);
a value may be empty and may hold ``]``. The CPU clusters are the distinct
``cpuinfo_max_freq`` of ``/sys/devices/system/cpu/cpuN/cpufreq`` (a big.LITTLE phone has two or
three), each with its cores and governor.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

_PROP = re.compile(r"^\[([^\]]+)\]: \[(.*)\]$")
SOC_PROPS = ("ro.soc.model", "ro.board.platform", "ro.hardware")  # the SoC's name, most specific first


def parse_getprop(text: str) -> dict[str, str]:
    """``getprop``'s output as a dict; lines that are not ``[key]: [value]`` (a wrapped value) are skipped."""
    out = {}
    for line in text.splitlines():
        found = _PROP.match(line.strip())
        if found:
            out[found.group(1)] = found.group(2)
    return out


def _clusters(cpus: Mapping[int, Mapping[str, str]]) -> list[dict[str, Any]]:
    """Cores grouped by their maximum frequency, fastest first, each with its governor(s)."""
    by_freq: dict[int, list[int]] = defaultdict(list)
    governors: dict[int, set[str]] = defaultdict(set)
    for cpu, files in sorted(cpus.items()):
        if (freq := files.get("cpuinfo_max_freq", "").strip()).isdigit():
            by_freq[int(freq)].append(cpu)
            if governor := files.get("scaling_governor", "").strip():
                governors[int(freq)].add(governor)
    return [{"cores": cores, "max_mhz": freq // 1000, "governor": ",".join(sorted(governors[freq])) or None}
            for freq, cores in sorted(by_freq.items(), reverse=True)]


def temperatures_c(thermal: Mapping[str, str]) -> dict[str, float]:
    """Zone type → °C from each zone's ``temp`` text (millidegrees); a zone whose text is not a number is left out."""
    return {zone: int(text.strip()) / 1000.0 for zone, text in thermal.items() if text.strip().lstrip("-").isdigit()}


def phone_facts(props: Mapping[str, str], cpus: Mapping[int, Mapping[str, str]] | None = None,
                thermal: Mapping[str, str] | None = None, battery: Mapping[str, str] | None = None,
                kernel: str = "") -> dict[str, Any]:
    """The device facts of a phone from its properties, its CPUs' cpufreq files (cpu number → file → text),
    its thermal zones (zone type → millidegrees text) and its battery's power_supply files."""
    facts: dict[str, Any] = {"os": "Android", "python": None}
    manufacturer, model = props.get("ro.product.manufacturer", ""), props.get("ro.product.model", "")
    if model:
        facts["board"] = f"{manufacturer} {model}".strip()
    if soc := next((props[k] for k in SOC_PROPS if props.get(k)), None):
        facts["soc"] = soc
        facts["cpu_model"] = soc
    for fact, prop in (("android_release", "ro.build.version.release"), ("android_sdk", "ro.build.version.sdk"),
                       ("security_patch", "ro.build.version.security_patch"), ("abi", "ro.product.cpu.abi"),
                       ("build_fingerprint", "ro.build.fingerprint"), ("serial", "ro.serialno")):
        if props.get(prop):
            facts[fact] = props[prop]
    if facts.get("android_release"):
        facts["os_release"] = f"Android {facts['android_release']}"
    if abi := facts.get("abi"):
        facts["arch"] = {"arm64-v8a": "aarch64", "armeabi-v7a": "armv7l", "x86_64": "x86_64", "x86": "i686"}.get(abi, abi)
    if kernel:
        facts["kernel"] = kernel.strip()
    if cpus:
        clusters = _clusters(cpus)
        facts["cpu_count_logical"] = len(cpus)
        facts["cpu_clusters"] = clusters
        facts["cpu_freq_mhz"] = {"max": max((c["max_mhz"] for c in clusters), default=None)}
        governors = sorted({c["governor"] for c in clusters if c["governor"]})
        if governors:
            facts["cpu_governor"] = ",".join(governors)
    if thermal and (temps := temperatures_c(thermal)):
        facts["temperatures_c"] = temps
    if battery:
        facts["battery"] = {k: battery[k].strip() for k in sorted(battery) if battery[k].strip()}
    return facts
