"""The bridge's adb client (``agent.android.adb``) against the adb device emulator, through Debian's
real ``adb``: a command's output and status, transfers, a program missing on the phone, and a phone
unplugged mid-run whose cut-off output is never taken for a finished one."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from agent.android import phone_facts
from agent.android.adb import Adb, PhoneError
from agent.android.tool_output import CutOff
from devices.emulators.adb_device import AdbDevice
from tests.phone_lab import adb_env
from tests.test_adb_device import PROPS, unplug_mid_run


@pytest.fixture
def phone(tmp_path):
    env = adb_env(tmp_path)
    root = tmp_path / "phone"
    (root / "data" / "local" / "tmp").mkdir(parents=True)
    with AdbDevice(root, PROPS) as device:
        adb = Adb(device.serial, env=env)
        adb.connect()
        try:
            yield device, adb
        finally:
            subprocess.run(["adb", "kill-server"], env={**os.environ, **env}, capture_output=True, timeout=15, check=False)


def test_a_command_gives_its_output_and_its_own_status(phone):
    _device, adb = phone
    assert adb.state() == "device"
    assert adb.shell("getprop ro.product.model", "getprop") == ("Pixel 7\n", 0)
    out, status = adb.shell("/data/local/tmp/benchmark_model --graph=m.tflite", "benchmark_model")
    assert status == 127 and "benchmark_model: inaccessible or not found" in out  # the binary is not on the phone


def test_push_and_pull_round_trip_and_a_missing_file_is_one_clear_line(phone, tmp_path):
    device, adb = phone
    local = tmp_path / "model.tflite"
    local.write_bytes(os.urandom(150_000))
    adb.push(local, "/data/local/tmp/edgeperf/model.tflite")
    back = tmp_path / "back.tflite"
    adb.pull("/data/local/tmp/edgeperf/model.tflite", back)
    assert back.read_bytes() == local.read_bytes()
    with pytest.raises(PhoneError, match=f"phone {device.serial}: pull /data/local/tmp/none failed") as info:
        adb.pull("/data/local/tmp/none", tmp_path / "none")
    assert "\n" not in str(info.value)


def test_a_phone_unplugged_mid_run_is_a_cut_off_run_and_comes_back_with_connect(phone):
    device, adb = phone
    unplug_mid_run(device, "/data/local/tmp/benchmark_model",
                   b"INFO: Inference timings in us: Init: 1, First inference: 1, Warmup (avg): 1, Inference (avg): 1\n")
    t0 = time.monotonic()
    with pytest.raises(CutOff, match="benchmark_model: the output ends without the command's end marker"):
        adb.shell("echo starting; /data/local/tmp/benchmark_model --graph=m.tflite", "benchmark_model", timeout_s=10)
    assert time.monotonic() - t0 < 5  # nothing hangs
    assert adb.state() != "device"
    device.replug()
    adb.connect()
    assert adb.shell("echo back", "echo") == ("back\n", 0)


def test_a_phones_facts_are_read_from_its_properties_and_sysfs(phone):
    device, adb = phone
    sys = device.root / "sys"
    for n, (freq, governor) in enumerate([("1803000", "schedutil")] * 2 + [("2850000", "performance")]):
        (sys / f"devices/system/cpu/cpu{n}/cpufreq").mkdir(parents=True)
        (sys / f"devices/system/cpu/cpu{n}/cpufreq/cpuinfo_max_freq").write_text(freq + "\n")
        (sys / f"devices/system/cpu/cpu{n}/cpufreq/scaling_governor").write_text(governor + "\n")
    (sys / "devices/system/cpu/online").write_text("0-2\n")  # not a core: left out of the count
    for n, (kind, temp) in enumerate([("skin-therm", "34125"), ("battery", "29800")]):
        (sys / f"class/thermal/thermal_zone{n}").mkdir(parents=True)
        (sys / f"class/thermal/thermal_zone{n}/type").write_text(kind + "\n")
        (sys / f"class/thermal/thermal_zone{n}/temp").write_text(temp + "\n")
    (sys / "class/power_supply/battery").mkdir(parents=True)
    (sys / "class/power_supply/battery/capacity").write_text("81\n")  # the other battery files are not there
    facts = phone_facts.collect(adb)
    assert facts["board"] == "Pixel 7" and facts["android_sdk"] == "34" and facts["cpu_count_logical"] == 3
    assert facts["cpu_clusters"] == [{"cores": [2], "max_mhz": 2850, "governor": "performance"},
                                     {"cores": [0, 1], "max_mhz": 1803, "governor": "schedutil"}]
    assert facts["temperatures_c"] == {"skin-therm": 34.125, "battery": 29.8}
    assert facts["battery"] == {"capacity": "81"}
    assert "kernel" not in facts  # uname is not on this phone: left out, not guessed
