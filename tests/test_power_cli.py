"""Power on the command line: what is here, what 'auto' picks, and a clear line for what is not."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from devices import power


def agent(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, timeout=timeout)


def expected_auto() -> str:
    """What 'auto' should pick on the machine running the tests, worked out from the survey."""
    from agent.energy_meter import auto_order
    from devices import probe

    working = {a.name for a in power.survey() if a.available}
    return next(name for name in auto_order(probe.collect()) if name in working)


def test_power_list_names_every_source_and_the_auto_choice():
    proc = agent("power", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    assert {s["name"] for s in listing["sources"]} == set(power.SOURCES)
    assert all(s["reason"] for s in listing["sources"])  # every yes and every no says why
    assert listing["auto"] == expected_auto() and listing["auto_order"][-1] == "estimate"
    text = agent("power", "list").stdout
    assert "(auto)" in text and "auto order" in text


def test_power_sample_reports_the_achieved_rate():
    proc = agent("power", "sample", "--source", "estimate:idle_w=2,max_w=6", "--seconds", "1.2")
    assert proc.returncode == 0, proc.stderr
    assert "ESTIMATED" in proc.stdout and "Hz achieved (nominal 10 Hz)" in proc.stdout and "power W: mean" in proc.stdout


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("ina219:bus=99", "I2C bus 99"),
        ("ina219:addr=0x20", "0x40"),
        ("serial", "give the port"),
        ("serial:/dev/ttyEDGEPERF-none", "/dev/ttyEDGEPERF-none"),
        ("jtop", "jetson-stats not installed"),
        ("fluke", "unknown power source 'fluke'"),
    ],
)
def test_an_absent_or_wrong_source_is_one_line_and_nothing_runs(spec, fragment):
    proc = agent("bench", "zoo:fashion-mnist-cnn/int8.onnx", "--profile", "smoke", "--power", spec)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and "verdict" not in proc.stdout


def test_nvml_without_a_gpu_says_so():
    proc = agent("power", "sample", "--source", "nvml", "--seconds", "0.5")
    if proc.returncode == 0:  # a machine with an NVIDIA GPU measures instead: then it must say nvml
        assert proc.stdout.startswith("nvml:")
        return
    assert proc.returncode == 2 and ("NVML" in proc.stderr or "NVIDIA" in proc.stderr) and "Traceback" not in proc.stderr


def test_bench_with_auto_power_still_runs_and_says_how_energy_was_had(tmp_path):
    out = tmp_path / "r.json"
    proc = agent("bench", "zoo:fashion-mnist-cnn/int8.tflite", "--profile", "smoke", "--threads", "1", "--engine", "native",
                 "--power", "auto", "--idle-seconds", "0.5", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    energy = json.loads(out.read_text())["kpis"]["energy"]
    assert energy["source"] == expected_auto()
    if not energy["measured"]:
        assert any("estimated, not measured" in w for w in energy["warnings"])
        assert "ESTIMATED" in proc.stdout
    assert energy["energy_per_inference_mj"] > 0 and energy["idle_power_w"] > 0
    assert os.path.exists(out)
