"""A whole emulated phone for the bridge's tests: the adb device emulator, its fuel gauge and thermal
zones, its CPUs' cpufreq files, and its benchmark tools registered where the bridge pushes them, all
driven through Debian's real ``adb`` against a private adb server.

Nothing here stands in for the bridge: the tests run ``agent.android`` (in process, or as the
``edgeperf-agent android`` process) against this phone exactly as against a real one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.android.adb import Adb
from agent.android.tools import Toolbox
from controller.fleet.broker import free_port
from devices.emulators.adb_device import AdbDevice
from devices.emulators.phone_battery import PhoneBattery
from devices.emulators.phone_benchmark_model import benchmark_model
from devices.emulators.phone_perf_test import onnxruntime_perf_test

PROPS = {
    "ro.product.name": "panther", "ro.product.model": "Pixel 7", "ro.product.device": "panther",
    "ro.product.manufacturer": "Google", "ro.soc.model": "gs201", "ro.build.version.release": "14",
    "ro.build.version.sdk": "34", "ro.build.version.security_patch": "2026-10-05", "ro.product.cpu.abi": "arm64-v8a",
}
CLUSTERS = [("1803000", "schedutil")] * 4 + [("2350000", "schedutil")] * 2 + [("2850000", "schedutil")] * 2


@dataclass
class Lab:
    """One emulated phone and how to reach it."""

    device: AdbDevice
    battery: PhoneBattery
    tools_dir: Path
    env: dict[str, str]
    storage: Path
    extra: list[str] = field(default_factory=list)

    @property
    def serial(self) -> str:
        return self.device.serial

    def adb(self) -> Adb:
        return Adb(self.serial, env=self.env)

    @property
    def toolbox(self) -> Toolbox:
        return Toolbox(self.tools_dir)

    def install_tools(self, delegates: tuple[str, ...] = (), providers: tuple[str, ...] = ("cpu",)) -> None:
        """Register the phone's tools at the paths the bridge pushes the host's builds to."""
        for name, program in (("benchmark_model", benchmark_model(delegates, self.battery)),
                              ("onnxruntime_perf_test", onnxruntime_perf_test(providers, self.battery))):
            self.device.commands[self.toolbox.find(name).phone_path] = program

    def throttle(self, cpu: int, khz: int) -> None:
        """Cap one CPU's scaling_max_freq, as the thermal HAL does."""
        (self.device.root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_max_freq").write_text(f"{khz}\n")


def require_adb() -> str:
    """The adb client's path; the test is skipped, naming the platform's lack, where there is none (CI installs it)."""
    adb = shutil.which("adb")
    if adb is None:
        pytest.skip("platform: no adb client (apt-get install adb)")
    return adb


def adb_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a private adb server (its own port and home), so tests never share one."""
    require_adb()
    home = tmp_path / "adb-home"
    home.mkdir(exist_ok=True)
    return {"ANDROID_ADB_SERVER_PORT": str(free_port()), "HOME": str(home), "ANDROID_SDK_HOME": str(home)}


def _cpufreq(root: Path) -> None:
    for n, (freq, governor) in enumerate(CLUSTERS):
        folder = root / f"sys/devices/system/cpu/cpu{n}/cpufreq"
        folder.mkdir(parents=True)
        for name, value in (("cpuinfo_max_freq", freq), ("scaling_max_freq", freq), ("scaling_governor", governor)):
            (folder / name).write_text(value + "\n")
            (folder / name).chmod(0o444)


def make_lab(tmp_path: Path, *, can_suspend: bool = True, charger: bool = True, update_hz: float = 20.0, gauge: bool = True,
             delegates: tuple[str, ...] = (), providers: tuple[str, ...] = ("cpu",)) -> tuple[Lab, list]:
    """A started phone (and what to stop afterwards, in order)."""
    env = adb_env(tmp_path)
    root = tmp_path / "phone"
    (root / "data" / "local" / "tmp").mkdir(parents=True)
    _cpufreq(root)
    tools = tmp_path / "phone-tools"
    tools.mkdir()
    for name in ("benchmark_model", "onnxruntime_perf_test"):  # the host's "builds": bytes with a hash of their own
        (tools / name).write_bytes(f"\x7fELF arm64 build of {name}\n".encode())
    battery = PhoneBattery(root, update_hz=update_hz, can_suspend=can_suspend, charger=charger, gauge=gauge).start()
    device = AdbDevice(root, PROPS).start()
    storage = tmp_path / "bridge"
    storage.mkdir()
    lab = Lab(device, battery, tools, env, storage)
    lab.install_tools(delegates, providers)
    return lab, [device.stop, battery.stop, lambda: subprocess.run(
        ["adb", "kill-server"], env={**os.environ, **env}, capture_output=True, timeout=15, check=False)]
