"""Temperatures before/after, throttling seen, and cooldown — read from real files and tools."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

from devices import thermal


def zone(root: Path, name: str, kind: str, milli_c: int) -> Path:
    path = root / "sys/class/thermal" / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "type").write_text(kind + "\n")
    (path / "temp").write_text(f"{milli_c}\n")
    return path / "temp"


def test_cooldown_waits_until_the_hottest_sensor_is_cool_enough(tmp_path):
    cpu = zone(tmp_path, "thermal_zone0", "cpu-thermal", 72_000)
    zone(tmp_path, "thermal_zone1", "gpu-thermal", 40_000)

    def cool_down() -> None:
        for milli_c in range(72_000, 44_000, -2_000):
            staged = cpu.with_suffix(".new")
            staged.write_text(f"{milli_c}\n")
            staged.replace(cpu)  # sysfs reads are atomic; a plain rewrite could be read half-done
            time.sleep(0.02)

    threading.Thread(target=cool_down, daemon=True).start()
    result = thermal.cooldown(50.0, timeout_s=10, root=tmp_path, poll_s=0.01)
    assert result["reached"] and result["start_c"] == 72.0 and result["end_c"] <= 50.0
    assert 0.1 < result["waited_s"] < 5


def test_cooldown_gives_up_after_its_timeout(tmp_path):
    zone(tmp_path, "thermal_zone0", "cpu-thermal", 80_000)
    result = thermal.cooldown(50.0, timeout_s=0.3, root=tmp_path, poll_s=0.05)
    assert not result["reached"] and result["end_c"] == 80.0 and result["waited_s"] >= 0.3


def fake_vcgencmd(bin_dir: Path, state: Path) -> None:
    """A recorded-output stand-in for the Pi firmware tool: prints what ``state`` holds."""
    script = bin_dir / "vcgencmd"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = get_throttled ] && echo \"throttled=$(cat {state})\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_pi_throttling_that_appears_during_the_run_is_reported(tmp_path, monkeypatch):
    state = tmp_path / "mask"
    state.write_text("0x0")
    fake_vcgencmd(tmp_path, state)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    record = thermal.ThermalRecord()
    record.start()
    state.write_text("0x50005")  # under-voltage and throttling, now and since boot
    result = record.finish()
    assert result["throttled"] and result["pi_throttled"] == "0x50005"
    expected = {"under-voltage now", "throttled now", "under-voltage occurred", "throttling occurred"}
    assert expected <= set(result["throttle_reasons"])
    assert thermal.decode_throttled(0x80000) == ["soft temperature limit occurred"]


def cpufreq(root: Path, governor: str, cur_khz: int, max_khz: int = 2_400_000) -> Path:
    policy = root / "sys/devices/system/cpu/cpufreq/policy0"
    policy.mkdir(parents=True, exist_ok=True)
    (policy / "scaling_governor").write_text(governor + "\n")
    (policy / "scaling_max_freq").write_text(f"{max_khz}\n")
    (policy / "scaling_cur_freq").write_text(f"{cur_khz}\n")
    return policy / "scaling_cur_freq"


def test_a_frequency_drop_under_the_performance_governor_counts_as_throttling(tmp_path):
    cur = cpufreq(tmp_path, "performance", 2_400_000)
    watch = thermal.FrequencyWatch(tmp_path, interval_s=0.02)
    watch.start()
    cur.write_text("1800000\n")
    time.sleep(0.1)
    cur.write_text("2400000\n")
    assert watch.stop() == ["policy0 ran at 1800 MHz, below its 2400 MHz maximum, under the performance governor"]


def test_ondemand_scaling_is_not_throttling(tmp_path):
    cpufreq(tmp_path, "ondemand", 600_000)
    watch = thermal.FrequencyWatch(tmp_path, interval_s=0.02)
    watch.start()
    assert watch.stop() == []
