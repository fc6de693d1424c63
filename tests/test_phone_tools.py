"""The emulated phone's benchmark tools (``devices/emulators/phone_benchmark_model.py``,
``devices/emulators/phone_perf_test.py``) and fuel gauge (``devices/emulators/phone_battery.py``).

The tools run the committed Fashion-MNIST CNN with the real runtimes on this host, called as the
adb emulator calls an on-device program — ``program(argv, device)`` — on an ``AdbDevice`` that is
never started (a program only needs ``host_path``). Runs are kept short; no test asserts a speed:
they assert what the output says and that the bridge's parser reads it.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import stat
import time
from pathlib import Path

import pytest

from agent.android.tool_output import parse_benchmark_model
from devices.emulators.adb_device import AdbDevice
from devices.emulators.phone_battery import PhoneBattery
from devices.emulators.phone_benchmark_model import benchmark_model
from devices.emulators.phone_perf_test import onnxruntime_perf_test

ZOO = Path(__file__).resolve().parents[1] / "agent" / "zoo" / "fashion-mnist-cnn"
TMP = "/data/local/tmp/edgeperf"
TFLITE, ONNX = f"{TMP}/int8.tflite", f"{TMP}/int8.onnx"
SHORT = ["--num_runs=20", "--min_secs=0.2", "--warmup_runs=1", "--warmup_min_secs=0.05"]


@pytest.fixture
def phone(tmp_path: Path) -> AdbDevice:
    """A phone with the zoo model pushed to /data/local/tmp/edgeperf."""
    folder = tmp_path / "phone" / TMP.lstrip("/")
    folder.mkdir(parents=True)
    for name in ("int8.tflite", "int8.onnx"):
        shutil.copy(ZOO / name, folder / name)
    return AdbDevice(tmp_path / "phone", {"ro.product.model": "Pixel 7"})


def run(program, argv: list[str], device: AdbDevice) -> tuple[str, int]:
    out, status = program(argv, device)
    return out.decode(), status


# benchmark_model

def test_benchmark_model_output_is_read_by_the_bridge_parser(phone: AdbDevice) -> None:
    text, status = run(benchmark_model(), ["benchmark_model", f"--graph={TFLITE}", "--num_threads=2", *SHORT], phone)
    assert status == 0
    lines = text.splitlines()
    assert lines[0] == "INFO: STARTING!"
    assert f"INFO: Graph: [{TFLITE}]" in lines and "INFO: Num threads: [2]" in lines and "INFO: Min num runs: [20]" in lines
    assert f"INFO: Loaded model {TFLITE}" in lines
    assert re.search(r"^INFO: Initialized session in [0-9.e+-]+ms\.$", text, re.MULTILINE)
    assert ("INFO: Running benchmark for at least 20 iterations and at least 0.2 seconds but terminate if exceeding 150 "
            "seconds.") in lines
    run_result = parse_benchmark_model(text)
    assert run_result.inference.count >= 20
    assert run_result.warmup is not None and run_result.warmup.count >= 1
    assert run_result.init_ms > 0 and run_result.first_inference_us > 0
    assert run_result.inference.min <= run_result.inference.median <= run_result.inference.max
    assert run_result.memory_overall_mb is not None


def test_benchmark_model_applies_the_delegates_the_phone_has_in_flag_order(phone: AdbDevice) -> None:
    argv = ["benchmark_model", f"--graph={TFLITE}", "--use_gpu=true", "--use_xnnpack=true", *SHORT]
    text, status = run(benchmark_model(supported_delegates=("GPU",)), argv, phone)
    assert status == 0
    lines = text.splitlines()
    assert "INFO: Use gpu: [1]" in lines and "INFO: Use xnnpack: [1]" in lines
    assert "INFO: Going to apply 2 delegates one after another." in lines
    applied = [line for line in lines if line.startswith("INFO: Explicitly applied")]
    assert applied == [  # ranked by the flags' positions: --use_gpu came first
        "INFO: Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate.",
        "INFO: Explicitly applied XNNPACK delegate, and the model graph will be completely executed by the delegate.",
    ]
    assert sum("delegate created." in line for line in lines) == 1  # only the first provider to create one logs it
    assert "WARN" not in text
    assert parse_benchmark_model(text).inference.count >= 20


def test_benchmark_model_warns_for_delegates_the_phone_lacks_and_applies_none(phone: AdbDevice) -> None:
    argv = ["benchmark_model", f"--graph={TFLITE}", "--use_xnnpack=false", "--use_gpu=true", "--use_nnapi=true",
            "--use_hexagon=true", f"--external_delegate_path={TMP}/libvendor_delegate.so", *SHORT]
    text, status = run(benchmark_model(supported_delegates=()), argv, phone)
    assert status == 0
    lines = text.splitlines()
    assert "WARN: GPU acceleration is unsupported on this platform." in lines
    assert "WARN: NNAPI acceleration is unsupported on this platform." in lines
    assert ("WARN: Could not create Hexagon delegate: platform may not support delegate or required libraries are "
            "missing") in lines
    assert (f"INFO: Unable to load external delegate from : {TMP}/libvendor_delegate.so (dlopen failed: library "
            f'"{TMP}/libvendor_delegate.so" not found)') in lines
    # none created, so none counted or applied: the "Going to apply" line only appears for 2 or more
    assert "Going to apply" not in text and "Explicitly applied" not in text and "delegate created." not in text
    assert parse_benchmark_model(text).inference.count >= 20


def test_benchmark_model_one_supported_delegate_is_applied_without_the_count_line(phone: AdbDevice) -> None:
    argv = ["benchmark_model", f"--graph={TFLITE}", "--use_xnnpack=false", "--use_nnapi=true", *SHORT]
    text, status = run(benchmark_model(supported_delegates=("nnapi",)), argv, phone)
    assert status == 0
    assert "INFO: NNAPI delegate created.\n" in text
    assert ("INFO: Explicitly applied NNAPI delegate, and the model graph will be completely executed by the "
            "delegate.") in text
    assert "Going to apply" not in text  # TFLITE_MAY_LOG(INFO, created_delegates.size() >= 2)


def test_benchmark_model_missing_model_fails_as_the_tool_does(phone: AdbDevice) -> None:
    missing = f"{TMP}/missing.tflite"
    text, status = run(benchmark_model(), ["benchmark_model", f"--graph={missing}", *SHORT], phone)
    assert status == 1
    assert text.splitlines()[-4:] == [
        f"ERROR: Could not open '{missing}'.",
        "ERROR: The model allocation is null/empty",
        f"ERROR: Failed to load model {missing}",
        "ERROR: Benchmarking failed.",
    ]
    assert "Inference timings" not in text


def test_benchmark_model_refuses_flags_it_does_not_model(phone: AdbDevice) -> None:
    text, status = run(benchmark_model(), ["benchmark_model", f"--graph={TFLITE}", "--enable_op_profiling=true"], phone)
    assert status == 2 and "not modelled" in text


# onnxruntime_perf_test

def test_perf_test_verbose_prints_one_line_per_counted_run(phone: AdbDevice) -> None:
    argv = ["onnxruntime_perf_test", "-v", "-I", "-e", "cpu", "-o", "99", "-m", "times", "-r", "20", "-x", "2", ONNX]
    text, status = run(onnxruntime_perf_test(), argv, phone)
    assert status == 0
    lines = text.splitlines()
    assert lines[0] == "Setting intra_op_num_threads to 2"
    iterations = [re.fullmatch(r"iteration:(\d+),time_cost:([0-9.e+-]+)", line) for line in lines]
    numbers = [int(m.group(1)) for m in iterations if m]
    total = int(re.search(r"^Total inference requests: (\d+)$", text, re.MULTILINE).group(1))
    assert numbers == list(range(1, 21)) and total == 20
    assert re.search(r"^First inference time cost: \d+ ms$", text, re.MULTILINE)
    assert re.search(r"^Average inference time cost total: \d+\.\d{6} ms$", text, re.MULTILINE)
    assert re.search(r"^Number of inferences per second: \S+ $", text, re.MULTILINE)
    assert "Runs:20" in lines
    labels = [line.split(":")[0] for line in lines if line.endswith(" s") and "Latency" in line]
    assert labels == ["Min Latency", "Max Latency", "P50 Latency", "P90 Latency", "P95 Latency", "P99 Latency", "P999 Latency"]


def test_perf_test_duration_mode_runs_until_the_runs_sum_to_the_duration(phone: AdbDevice) -> None:
    text, status = run(onnxruntime_perf_test(), ["onnxruntime_perf_test", "-v", "-I", "-m", "duration", "-t", "1", ONNX], phone)
    assert status == 0
    costs = [float(c) for c in re.findall(r"^iteration:\d+,time_cost:(\S+)$", text, re.MULTILINE)]
    assert sum(costs) >= 1.0 and sum(costs[:-1]) < 1.0  # RunFixDuration: while total_time_cost < duration


def test_perf_test_execution_provider_the_build_lacks(phone: AdbDevice) -> None:
    argv = ["onnxruntime_perf_test", "-v", "-I", "-e", "nnapi", "-m", "times", "-r", "20", ONNX]
    text, status = run(onnxruntime_perf_test(providers=("cpu",)), argv, phone)
    assert status == 255
    assert text.endswith(" NNAPI is not supported in this build\n\n\n")
    assert "Session creation" not in text and "iteration:" not in text
    text, status = run(onnxruntime_perf_test(providers=("cpu", "nnapi")), argv, phone)
    assert status == 0 and "Total inference requests: 20" in text


def test_perf_test_missing_model(phone: AdbDevice) -> None:
    missing = f"{TMP}/missing.onnx"
    text, status = run(onnxruntime_perf_test(), ["onnxruntime_perf_test", "-I", "-m", "times", "-r", "20", missing], phone)
    assert status == 255
    assert f' open file "{missing}" failed: No such file or directory\n' in text


def test_perf_test_bad_option_shows_usage(phone: AdbDevice) -> None:
    text, status = run(onnxruntime_perf_test(), ["onnxruntime_perf_test", "-e", "bogus", ONNX], phone)
    assert status == 255 and text.startswith("perf_test [options...] model_path [result_file]")


def test_perf_test_without_generated_inputs_needs_test_data(phone: AdbDevice) -> None:
    text, status = run(onnxruntime_perf_test(), ["onnxruntime_perf_test", "-m", "times", "-r", "20", ONNX], phone)
    assert status == 255
    assert text.endswith("there is no test data for model edgeperf\nRun failed:failed to initialize.\n")


# the battery

def read(path: Path) -> str:
    return path.read_text().strip()


def wait_for(condition, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the gauge never got there"
        time.sleep(0.01)


@pytest.mark.parametrize("can_suspend, mode", [(True, 0o666), (False, 0o444)])
def test_battery_files_and_modes(tmp_path: Path, can_suspend: bool, mode: int) -> None:
    with PhoneBattery(tmp_path, can_suspend=can_suspend) as battery:
        supply = tmp_path / "sys/class/power_supply/battery"
        for name in ("type", "status", "capacity", "health", "temp", "current_now", "voltage_now", "charge_counter"):
            assert stat.S_IMODE(os.stat(supply / name).st_mode) == 0o444, name
        assert stat.S_IMODE(os.stat(supply / "input_suspend").st_mode) == mode
        assert read(supply / "type") == "Battery" and read(supply / "health") == "Good"
        assert read(supply / "input_suspend") == "0"
        assert 0 <= int(read(supply / "capacity")) <= 100 and int(read(supply / "temp")) > 0
        assert abs(int(read(supply / "voltage_now")) - 3_850_000) <= 1000
        assert read(tmp_path / "sys/class/thermal/thermal_zone0/type") == "cpu-0-0"
        assert read(tmp_path / "sys/class/thermal/thermal_zone1/type") == "battery"
        assert int(read(tmp_path / "sys/class/thermal/thermal_zone0/temp")) > 20_000
    assert battery._thread is None


def test_battery_values_change_at_the_update_rate_only(tmp_path: Path) -> None:
    with PhoneBattery(tmp_path, update_hz=10.0):
        voltage = tmp_path / "sys/class/power_supply/battery/voltage_now"
        changes, last, started = [], read(voltage), time.monotonic()
        while time.monotonic() - started < 1.0:
            value = read(voltage)
            if value != last:
                changes.append(time.monotonic())
                last = value
            time.sleep(0.002)
    assert 5 <= len(changes) <= 12  # ~10 updates in a second, never one per read
    gaps = [b - a for a, b in itertools.pairwise(changes)]
    assert min(gaps) > 0.05


def test_battery_busy_raises_the_discharge_current(tmp_path: Path) -> None:
    with PhoneBattery(tmp_path, update_hz=20.0, charger=False) as battery:
        supply = tmp_path / "sys/class/power_supply/battery"
        wait_for(lambda: int(read(supply / "current_now")) == -200_000)
        assert read(supply / "status") == "Discharging"
        zone = tmp_path / "sys/class/thermal/thermal_zone0/temp"
        idle_temp = int(read(zone))
        with battery.busy(), battery.busy():  # counted: nested holders keep it busy
            wait_for(lambda: int(read(supply / "current_now")) == -900_000)
            time.sleep(0.2)
            assert int(read(zone)) > idle_temp
        wait_for(lambda: int(read(supply / "current_now")) == -200_000)


def test_battery_charger_and_input_suspend(tmp_path: Path) -> None:
    with PhoneBattery(tmp_path, update_hz=20.0, charger=True):
        supply = tmp_path / "sys/class/power_supply/battery"
        wait_for(lambda: read(supply / "status") == "Charging")
        assert int(read(supply / "current_now")) == 800_000  # 1.0 A in, 0.2 A load: positive = charging
        (supply / "input_suspend").write_text("1\n")  # what `echo 1 > input_suspend` does
        wait_for(lambda: read(supply / "status") == "Discharging")
        assert int(read(supply / "current_now")) == -200_000


def test_battery_discharge_sign_positive_when_asked(tmp_path: Path) -> None:
    with PhoneBattery(tmp_path, update_hz=20.0, charger=False, discharge_negative=False):
        current = tmp_path / "sys/class/power_supply/battery/current_now"
        wait_for(lambda: int(read(current)) == 200_000)


def test_battery_true_energy_of_a_busy_window(tmp_path: Path) -> None:
    with PhoneBattery(tmp_path, charger=True, busy_a=0.9, voltage_v=3.85) as battery:
        time.sleep(0.1)
        with battery.busy():
            t0 = time.time()
            time.sleep(0.5)
            t1 = time.time()
        truth = battery.true_energy_j(t0, t1)
    assert truth == pytest.approx(0.9 * 3.85 * (t1 - t0), rel=0.02)


def test_tools_hold_the_battery_busy_while_running(phone: AdbDevice) -> None:
    battery = PhoneBattery(phone.root, charger=False, idle_a=0.2, busy_a=0.9)
    with battery:
        t0 = time.time()
        _, status = run(benchmark_model(battery=battery), ["benchmark_model", f"--graph={TFLITE}", *SHORT], phone)
        _, status2 = run(onnxruntime_perf_test(battery=battery),
                         ["onnxruntime_perf_test", "-I", "-m", "duration", "-t", "1", ONNX], phone)
        t1 = time.time()
    assert status == status2 == 0
    busy_spans = battery._timeline[1:]  # (time, amps) at every change after the start
    assert [amps for _, amps in busy_spans] == [0.9, 0.2, 0.9, 0.2]
    assert battery.true_energy_j(t0, t1) > 0.2 * battery.voltage_v * (t1 - t0)


# the bridge's own command lines and parsers

def _bridge_argv(model_format: str, model: str, **options) -> list[str]:
    from agent import contract
    from agent.android import tool_argv
    from agent.jobs import settings_for

    settings = settings_for("quick", "SingleStream", "performance",
                            contract.RunLength(min_duration_s=0.2, min_queries=20, max_duration_s=5))
    return tool_argv.command(model_format, "tool", model, contract.build(contract.RuntimeOptions, options), settings)


def test_bridge_benchmark_model_command_runs_and_parses(phone: AdbDevice) -> None:
    argv = _bridge_argv("tflite", TFLITE, threads=2, delegates=["gpu"])
    text, status = run(benchmark_model(supported_delegates=("GPU",)), argv, phone)
    assert status == 0 and "Unconsumed" not in text
    assert "INFO: Going to apply 2 delegates one after another." in text  # --use_xnnpack=true and --use_gpu=true
    assert parse_benchmark_model(text).inference.count >= 20


def test_bridge_perf_test_command_runs_and_parses(phone: AdbDevice) -> None:
    from agent.android.tool_output import parse_perf_test

    argv = _bridge_argv("onnx", ONNX, threads=2)
    text, status = run(onnxruntime_perf_test(), argv, phone)
    assert status == 0
    parsed = parse_perf_test(text)
    assert len(parsed.runs_s) == int(re.search(r"Total inference requests: (\d+)", text).group(1))
    assert sum(parsed.runs_s) >= 1.0  # -m duration -t 1: the runs' own times sum to the duration
    assert parsed.session_s is not None and parsed.first_inference_ms is not None
    assert parsed.peak_working_set_bytes is not None and parsed.peak_working_set_bytes > 0


def test_battery_power_source_measures_the_true_energy(tmp_path: Path) -> None:
    """The bridge's battery source (devices/power/battery.py) on the emulated gauge: discharging, and the
    energy it reads over a run with a busy second matches the gauge's ground truth."""
    from devices.power import battery as battery_source

    with PhoneBattery(tmp_path, update_hz=10.0, charger=False) as gauge:
        monitor = battery_source.open({"root": str(tmp_path / "sys/class/power_supply"), "rate": "20"})
        assert monitor.info.detail["status_at_open"] == "Discharging" and "warning" not in monitor.info.detail
        monitor.start()
        t0 = time.time()
        time.sleep(0.5)
        with gauge.busy():
            time.sleep(1.0)
        time.sleep(0.5)
        t1 = time.time()
        samples = monitor.stop()
    assert samples and all(not s.flags for s in samples)
    measured = sum(s.watts for s in samples) / len(samples) * (t1 - t0)
    assert measured == pytest.approx(gauge.true_energy_j(t0, t1), rel=0.05)
