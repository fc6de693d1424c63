"""Device facts every result carries, so two numbers are never compared blind.

Small fail-soft collectors in the style of pyperf's metadata: each reads one source and writes
keys only when it found a value; a missing file or tool never aborts a run. Paths are read under
``root`` so tests can point the collectors at captured /proc and /sys trees of a Raspberry Pi or
a Jetson.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

Facts = dict[str, Any]


def read_first_line(path: Path) -> str:
    """First line of a text file, stripped of whitespace and device-tree NULs; '' on any error."""
    try:
        with open(path, errors="replace") as f:
            return f.readline().strip().rstrip("\x00")
    except OSError:
        return ""


def _cpuinfo(root: Path) -> dict[str, str]:
    """Key/value pairs of /proc/cpuinfo (the first value of each key)."""
    out: dict[str, str] = {}
    try:
        text = (root / "proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in out:
            out[key.strip()] = value.strip()
    return out


def run_tool(*cmd: str) -> str:
    """Output of a fixed diagnostic command, or '' when it is absent, fails or hangs."""
    if shutil.which(cmd[0]) is None:
        return ""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _host_darwin(root: Path) -> bool:
    """macOS fallbacks (sysctl, mac_ver) describe this machine, so only a probe of "/" may use them."""
    return root == Path("/") and platform.system() == "Darwin"


def collect_board(facts: Facts, root: Path) -> None:
    if model := read_first_line(root / "proc/device-tree/model"):
        facts["board"] = model
    elif product := read_first_line(root / "sys/class/dmi/id/product_name"):
        vendor = read_first_line(root / "sys/class/dmi/id/sys_vendor")
        facts["board"] = f"{vendor} {product}".strip()
    elif _host_darwin(root) and (model := run_tool("sysctl", "-n", "hw.model")):
        facts["board"] = model


def collect_cpu(facts: Facts, root: Path) -> None:
    info = _cpuinfo(root)
    name = info.get("model name") or info.get("Model") or info.get("Hardware") or info.get("Processor")
    if not name and _host_darwin(root):
        name = run_tool("sysctl", "-n", "machdep.cpu.brand_string")
    if name:
        facts["cpu_model"] = name
    if revision := info.get("Revision"):
        facts["board_revision"] = revision
    facts["arch"] = platform.machine()
    if logical := os.cpu_count():
        facts["cpu_count_logical"] = logical
    try:
        import psutil

        if physical := psutil.cpu_count(logical=False):
            facts["cpu_count_physical"] = physical
    except ImportError:
        pass


# (CPU implementer, CPU part) from /proc/cpuinfo -> core name (Arm's and NVIDIA's part numbers)
ARM_CORES = {
    ("0x41", "0xd03"): "Cortex-A53", ("0x41", "0xd04"): "Cortex-A35", ("0x41", "0xd05"): "Cortex-A55",
    ("0x41", "0xd07"): "Cortex-A57", ("0x41", "0xd08"): "Cortex-A72", ("0x41", "0xd09"): "Cortex-A73",
    ("0x41", "0xd0a"): "Cortex-A75", ("0x41", "0xd0b"): "Cortex-A76", ("0x41", "0xd0c"): "Neoverse-N1",
    ("0x41", "0xd0d"): "Cortex-A77", ("0x41", "0xd40"): "Neoverse-V1", ("0x41", "0xd41"): "Cortex-A78",
    ("0x41", "0xd42"): "Cortex-A78AE", ("0x41", "0xd44"): "Cortex-X1", ("0x41", "0xd46"): "Cortex-A510",
    ("0x41", "0xd47"): "Cortex-A710", ("0x41", "0xd48"): "Cortex-X2", ("0x41", "0xd49"): "Neoverse-N2",
    ("0x41", "0xd4f"): "Neoverse-V2", ("0x4e", "0x004"): "NVIDIA Carmel",
}


def collect_arm_cores(facts: Facts, root: Path) -> None:
    """Core types of an Arm SoC ("4x Cortex-A76"), which cpuinfo names only by part number."""
    try:
        text = (root / "proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return
    cores: dict[str, int] = {}
    for block in text.split("\n\n"):
        fields = dict(
            (k.strip(), v.strip()) for k, sep, v in (line.partition(":") for line in block.splitlines()) if sep
        )
        key = (fields.get("CPU implementer", "").lower(), fields.get("CPU part", "").lower())
        if key[0]:
            name = ARM_CORES.get(key, f"Arm part {key[1]} (implementer {key[0]})")
            cores[name] = cores.get(name, 0) + 1
    if cores:
        facts["cpu_cores"] = ", ".join(f"{n}x {name}" for name, n in cores.items())
        facts.setdefault("cpu_model", facts["cpu_cores"])


def collect_frequency(facts: Facts, root: Path) -> None:
    """Governors and cur/min/max MHz per policy (big.LITTLE boards have several)."""
    base = root / "sys/devices/system/cpu/cpufreq"
    policies = sorted(base.glob("policy*")) if base.is_dir() else []
    governors, freqs = {}, {}
    for policy in policies:
        cpus = read_first_line(policy / "related_cpus") or policy.name
        if governor := read_first_line(policy / "scaling_governor"):
            governors[cpus] = governor
        mhz = {}
        for key, file in (("cur", "scaling_cur_freq"), ("min", "scaling_min_freq"), ("max", "scaling_max_freq")):
            if (khz := read_first_line(policy / file)).isdigit():
                mhz[key] = int(khz) // 1000
        if mhz:
            freqs[cpus] = mhz
    if governors:
        facts["cpu_governor"] = next(iter(governors.values())) if len(set(governors.values())) == 1 else governors
    if freqs:
        facts["cpu_freq_mhz"] = freqs


def collect_memory(facts: Facts, root: Path) -> None:
    try:
        text = (root / "proc/meminfo").read_text()
    except OSError:
        text = ""
    if match := re.search(r"^MemTotal:\s+(\d+) kB", text, re.M):
        facts["memory_total_mb"] = int(match.group(1)) // 1024
    elif _host_darwin(root) and (size := run_tool("sysctl", "-n", "hw.memsize")).isdigit():
        facts["memory_total_mb"] = int(size) >> 20


def collect_os(facts: Facts, root: Path) -> None:
    facts["os"] = platform.system()
    facts["kernel"] = platform.release()
    facts["python"] = f"{platform.python_implementation()} {platform.python_version()}"
    facts["hostname"] = socket.gethostname()
    try:
        release = (root / "etc/os-release").read_text(errors="replace")
    except OSError:
        release = ""
    if match := re.search(r'^PRETTY_NAME="?([^"\n]+)"?', release, re.M):
        facts["os_release"] = match.group(1)
    elif _host_darwin(root):
        facts["os_release"] = f"macOS {platform.mac_ver()[0]}"


def collect_jetson(facts: Facts, root: Path) -> None:
    """L4T release and nvpmodel power mode on NVIDIA Jetsons."""
    if line := read_first_line(root / "etc/nv_tegra_release"):
        if match := re.match(r"# R(\d+) \(release\), REVISION: ([\d.]+)", line):
            facts["l4t"] = f"{match.group(1)}.{match.group(2)}"
        else:
            facts["l4t"] = line
    mode = run_tool("nvpmodel", "-q") if root == Path("/") else ""
    if match := re.search(r"NV Power Mode: (\S+)", mode):
        facts["power_mode"] = match.group(1)


def collect_thermal(facts: Facts, root: Path) -> None:
    """Temperature per thermal zone in °C at probe time."""
    temps = {}
    for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        kind = read_first_line(zone / "type") or zone.name
        raw = read_first_line(zone / "temp")
        if raw.lstrip("-").isdigit():
            temps[kind] = int(raw) / 1000
    if temps:
        facts["temperatures_c"] = temps


def collect_gpus(facts: Facts, root: Path) -> None:
    """NVIDIA GPUs through NVML: name, driver, CUDA, memory, clocks, power limit (host only)."""
    if root != Path("/") or importlib.util.find_spec("pynvml") is None:
        return
    from devices.power import nvml

    if gpus := nvml.all_gpu_facts():
        facts["gpus"] = gpus


COLLECTORS: tuple[Callable[[Facts, Path], None], ...] = (
    collect_board, collect_cpu, collect_arm_cores, collect_frequency, collect_gpus, collect_memory, collect_os,
    collect_jetson, collect_thermal,
)


def collect(root: Path = Path("/")) -> Facts:
    """All facts this machine gives; a collector that fails is skipped, never fatal."""
    facts: Facts = {}
    for collector in COLLECTORS:
        try:
            collector(facts, root)
        except Exception as exc:  # fail-soft: a broken collector must not cost the user their run
            facts.setdefault("probe_errors", []).append(f"{collector.__name__}: {exc}")
    return facts
