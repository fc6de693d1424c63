"""Device probe against captured /proc, /sys and /etc trees (tests/fixtures/probe/<board>/).

Each fixture holds only the files the probe reads, with the contents those boards really have.
Facts that describe the machine running the tests (arch, kernel, hostname, python, CPU counts)
come from this host whatever the root, so they are never compared with fixture values.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from devices import probe

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "probe"
RPI5 = FIXTURES / "rpi5"
ORIN_NANO = FIXTURES / "jetson-orin-nano"
X86 = FIXTURES / "x86-server"

# Keys that only the files under root can provide (on Linux, or with a root other than "/").
ROOT_KEYS = (
    "board", "board_revision", "cpu_model", "cpu_governor", "cpu_freq_mhz",
    "memory_total_mb", "os_release", "l4t", "power_mode", "temperatures_c",
)


def copy_tree(src: Path, tmp_path: Path) -> Path:
    """A writable copy of a fixture tree, for tests that change one file."""
    return Path(shutil.copytree(src, tmp_path / src.name))


def write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


# read_first_line


def test_read_first_line_strips_the_device_tree_nul():
    model = RPI5 / "proc/device-tree/model"
    assert model.read_bytes().endswith(b"\x00"), "the fixture must keep the NUL the real file has"
    assert probe.read_first_line(model) == "Raspberry Pi 5 Model B Rev 1.0"


def test_read_first_line_is_empty_for_a_missing_file(tmp_path):
    assert probe.read_first_line(tmp_path / "no" / "such" / "file") == ""


def test_read_first_line_is_empty_for_a_directory(tmp_path):
    assert probe.read_first_line(tmp_path) == ""


def test_read_first_line_returns_only_the_first_line(tmp_path):
    write(tmp_path / "release", "# R36 (release), REVISION: 4.3\n# KERNEL_VARIANT: oot\n")
    assert probe.read_first_line(tmp_path / "release") == "# R36 (release), REVISION: 4.3"


# Whole boards


def test_raspberry_pi_5():
    facts = probe.collect(root=RPI5)

    assert facts["board"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert facts["board_revision"] == "d04170"
    assert facts["cpu_governor"] == "ondemand"
    assert facts["cpu_freq_mhz"] == {"0 1 2 3": {"cur": 1500, "min": 1500, "max": 2400}}
    assert facts["memory_total_mb"] == 8245984 // 1024
    assert facts["os_release"] == "Debian GNU/Linux 12 (bookworm)"
    assert facts["temperatures_c"] == {"cpu-thermal": 51.3}
    assert "l4t" not in facts
    assert "probe_errors" not in facts


def test_raspberry_pi_5_cpu_model_is_the_cpuinfo_model_line():
    """The Pi kernel prints no CPU name: its cpuinfo has only the trailing `Model` line, so
    cpu_model repeats the board rather than naming the Cortex-A76 (CPU part 0xd0b)."""
    assert probe.collect(root=RPI5)["cpu_model"] == "Raspberry Pi 5 Model B Rev 1.0"


def test_jetson_orin_nano():
    facts = probe.collect(root=ORIN_NANO)

    assert facts["board"] == "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"
    assert facts["l4t"] == "36.4.3"
    assert facts["cpu_governor"] == "schedutil", "both clusters agree, so one string, not a dict"
    assert facts["cpu_freq_mhz"] == {
        "0 1 2 3": {"cur": 729, "min": 115, "max": 1728},  # kHz are floored: 729600 -> 729
        "4 5": {"cur": 1344, "min": 115, "max": 1728},
    }
    assert facts["memory_total_mb"] == 7802868 // 1024
    assert facts["os_release"] == "Ubuntu 22.04.5 LTS"
    assert "probe_errors" not in facts


def test_jetson_orin_nano_cpu_is_named_from_its_arm_part_numbers():
    """Orin's cpuinfo has no `model name`, `Model`, `Hardware`, `Processor` or `Revision` line,
    only Arm ids (implementer 0x41, part 0xd42): the probe names the cores from them."""
    facts = probe.collect(root=ORIN_NANO)
    assert facts["cpu_cores"] == "6x Cortex-A78AE"
    assert facts["cpu_model"] == "6x Cortex-A78AE"
    assert "board_revision" not in facts


def test_raspberry_pi_5_cores_are_named_next_to_the_board():
    facts = probe.collect(root=RPI5)
    assert facts["cpu_cores"] == "4x Cortex-A76"
    assert facts["cpu_model"] == "Raspberry Pi 5 Model B Rev 1.0"  # cpuinfo's own Model line wins


def test_jetson_orin_nano_temperatures_skip_offline_zones():
    """The Orin Nano has no DLA or PVA, so cv0/cv1/cv2-thermal have a type but an unreadable temp
    (captured here as a zone without a `temp` file); they must be left out, not reported as 0."""
    assert probe.collect(root=ORIN_NANO)["temperatures_c"] == {
        "cpu-thermal": 47.906,
        "gpu-thermal": 46.437,
        "soc0-thermal": 45.718,
        "soc1-thermal": 46.906,
        "soc2-thermal": 45.343,
        "tj-thermal": 47.906,
    }


def test_x86_server():
    facts = probe.collect(root=X86)

    assert facts["board"] == "Dell Inc. PowerEdge T150", "DMI vendor and product, no device tree"
    assert facts["cpu_model"] == "Intel(R) Xeon(R) E-2314 CPU @ 2.80GHz"
    assert facts["cpu_governor"] == "performance"
    assert facts["cpu_freq_mhz"] == {
        "0": {"cur": 4388, "min": 800, "max": 4500},
        "1": {"cur": 4400, "min": 800, "max": 4500},
        "2": {"cur": 4399, "min": 800, "max": 4500},
        "3": {"cur": 4300, "min": 800, "max": 4500},
    }
    assert facts["memory_total_mb"] == 32566504 // 1024
    assert facts["os_release"] == "Ubuntu 24.04.1 LTS"
    assert facts["temperatures_c"] == {"x86_pkg_temp": 41.0}
    for key in ("board_revision", "l4t", "probe_errors"):
        assert key not in facts


# Single collectors on edited copies


def test_governors_that_differ_are_reported_per_policy(tmp_path):
    """One string would hide that a big.LITTLE board runs its clusters under different policies."""
    root = copy_tree(ORIN_NANO, tmp_path)
    write(root / "sys/devices/system/cpu/cpufreq/policy4/scaling_governor", "performance\n")

    facts = {}
    probe.collect_frequency(facts, root)

    assert facts["cpu_governor"] == {"0 1 2 3": "schedutil", "4 5": "performance"}


def test_policy_without_related_cpus_is_keyed_by_its_name(tmp_path):
    policy = tmp_path / "sys/devices/system/cpu/cpufreq/policy0"
    write(policy / "scaling_governor", "powersave\n")
    write(policy / "scaling_max_freq", "3000000\n")
    write(policy / "scaling_cur_freq", "<unsupported>\n")

    facts = {}
    probe.collect_frequency(facts, tmp_path)

    assert facts == {"cpu_governor": "powersave", "cpu_freq_mhz": {"policy0": {"max": 3000}}}


def test_unrecognised_l4t_line_is_kept_verbatim(tmp_path):
    write(tmp_path / "etc/nv_tegra_release", "# R36 custom build\n")
    facts = {}
    probe.collect_jetson(facts, tmp_path)
    assert facts["l4t"] == "# R36 custom build"


def test_thermal_zone_edge_cases(tmp_path):
    """A zone without a type is named after its directory; sub-zero readings keep their sign;
    a temp that is not an integer is skipped."""
    thermal = tmp_path / "sys/class/thermal"
    write(thermal / "thermal_zone0/temp", "-5500\n")
    write(thermal / "thermal_zone1/type", "battery\n")
    write(thermal / "thermal_zone1/temp", "n/a\n")

    facts = {}
    probe.collect_thermal(facts, tmp_path)

    assert facts == {"temperatures_c": {"thermal_zone0": -5.5}}


# Fail-soft


def test_empty_root_yields_only_host_facts(tmp_path):
    facts = probe.collect(root=tmp_path)

    for key in (*ROOT_KEYS, "probe_errors"):
        assert key not in facts, key
    for key in ("os", "kernel", "python", "hostname", "arch"):
        assert facts[key], key


def test_directories_where_files_are_expected_are_skipped(tmp_path):
    """Reading a directory raises an OSError, which every collector treats as a missing file."""
    for path in (
        "proc/device-tree/model", "sys/class/dmi/id/product_name", "proc/cpuinfo", "proc/meminfo",
        "etc/os-release", "etc/nv_tegra_release",
        "sys/devices/system/cpu/cpufreq/policy0/scaling_governor",
        "sys/devices/system/cpu/cpufreq/policy0/scaling_max_freq",
        "sys/class/thermal/thermal_zone0/temp",
    ):
        (tmp_path / path).mkdir(parents=True)

    facts = probe.collect(root=tmp_path)

    for key in (*ROOT_KEYS, "probe_errors"):
        assert key not in facts, key


def test_a_failing_collector_is_recorded_and_the_others_still_run(tmp_path):
    """collect_memory reads meminfo as strict text, so bytes that are not text in any usual
    encoding make it raise (UnicodeDecodeError, not an OSError). collect() must record that under
    probe_errors and carry on with the collectors after it."""
    root = copy_tree(RPI5, tmp_path)
    write(root / "proc/meminfo", b"MemTotal:        8245984 kB\n\x81\xff\n")

    facts = probe.collect(root=root)

    assert len(facts["probe_errors"]) == 1
    assert facts["probe_errors"][0].startswith("collect_memory: ")
    assert "memory_total_mb" not in facts
    assert facts["board"] == "Raspberry Pi 5 Model B Rev 1.0"  # before it
    assert facts["os_release"] == "Debian GNU/Linux 12 (bookworm)"  # after it
    assert facts["temperatures_c"] == {"cpu-thermal": 51.3}  # last collector


def test_a_captured_tree_never_gets_facts_from_a_mac_host(tmp_path, monkeypatch):
    """The sysctl and mac_ver fallbacks describe the machine running the probe, so they apply
    only to root "/"; a fixture tree missing a file must not pick up the host Mac's model."""
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="Mac14,2\n", stderr="")

    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(subprocess, "run", fake_run)

    facts = probe.collect(root=tmp_path)

    assert calls == []
    for key in ("board", "cpu_model", "memory_total_mb", "os_release"):
        assert key not in facts, key
    assert facts["os"] == "Darwin"


@pytest.mark.parametrize("fixture", [RPI5, ORIN_NANO, X86], ids=lambda p: p.name)
def test_fixture_holds_only_files_the_probe_reads(fixture):
    """Keeps the captured trees small: every file must be one a collector opens."""
    read = {
        "proc/device-tree/model", "proc/cpuinfo", "proc/meminfo", "etc/os-release", "etc/nv_tegra_release",
        "sys/class/dmi/id/sys_vendor", "sys/class/dmi/id/product_name",
    }
    policy_files = {"related_cpus", "scaling_governor", "scaling_cur_freq", "scaling_min_freq", "scaling_max_freq"}
    for path in fixture.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(fixture).as_posix()
        parent = path.parent
        if parent.parent.as_posix().endswith("sys/devices/system/cpu/cpufreq"):
            assert parent.name.startswith("policy") and path.name in policy_files, rel
        elif parent.parent.as_posix().endswith("sys/class/thermal"):
            assert parent.name.startswith("thermal_zone") and path.name in {"type", "temp"}, rel
        else:
            assert rel in read, rel
