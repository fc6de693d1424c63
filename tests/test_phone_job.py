"""One job on a phone (``agent.android.phone_job``), through Debian's real adb, against an emulated phone
whose tools run the model with the real runtimes and whose fuel gauge knows the true energy: the result
document, energy under suspended charging, thermals, and each fault ending the job with its own reason."""

from __future__ import annotations

import threading
import time

import pytest

from agent import contract
from agent.android import charging, phone_job, tool_argv
from agent.android.phone_job import Phone
from agent.android.tool_output import CutOff
from agent.android.tools import Toolbox
from agent.errors import SettingsError
from agent.model_file import resolve
from devices.emulators.phone_benchmark_model import benchmark_model
from tests.phone_lab import make_lab

SUSPEND_NODE = "sys/class/power_supply/battery/input_suspend"


def _job(artifact: str, **fields) -> tuple[contract.Job, object]:
    model = resolve(f"zoo:fashion-mnist-cnn/{artifact}")
    given = {"run_id": "phone-1", "scenario": "SingleStream", "mode": "performance", "profile": "smoke",
             "dataset": "synthetic", "controller": "ctl", "options": {"threads": 1}} | fields
    given["artifact"] = {"url": "http://controller/a", "sha256": model.sha256, "size": model.size_bytes, "name": artifact}
    return contract.build(contract.Job, given), model


def _phone(phone_lab, tools: Toolbox | None = None) -> Phone:
    adb = phone_lab.adb()
    adb.connect()
    return Phone(adb, phone_lab.storage, tools or phone_lab.toolbox, "android-test")


def _run(phone_lab, job, model, tools=None):
    phases = []
    doc = phone_job.run(_phone(phone_lab, tools), job, model.path, lambda phase, details: phases.append(phase))
    assert phases == ["preparing", "running"]
    return doc


def test_benchmark_model_with_energy_measured_by_the_gauge_under_suspended_charging(phone_lab):
    job, model = _job("int8.tflite", power="fuel-gauge", power_idle_s=0.5)
    doc = _run(phone_lab, job, model)
    result = contract.convert("result", doc)  # the same contract an agent's result meets
    assert result.engine == "benchmark_model" and result.scenario == "SingleStream"
    assert result.model.precision == "int8" and result.device.facts["board"] == "Google Pixel 7"
    assert result.runtime.details["tool_sha256"] == phone_lab.toolbox.find("benchmark_model").sha256
    latency = result.kpis.latency_ms
    assert latency.p90 is None and latency.p99 is None and latency.p50 is not None  # only what the tool printed
    assert {c.name: c.ok for c in result.checks}["loadgen"] is False
    energy = result.kpis.energy
    assert energy.measured and energy.source == "fuel-gauge"
    assert energy.source_detail["charging"] == "charging suspended (input_suspend=1)"
    assert energy.source_detail["gauge_update_hz"] == pytest.approx(phone_lab.battery.update_hz, rel=0.25)
    window = (doc["window"]["begin_unix_ns"] / 1e9, doc["window"]["end_unix_ns"] / 1e9)  # the phone's clock is the host's here
    truth = phone_lab.battery.true_energy_j(*window)
    assert energy.energy_j == pytest.approx(truth, rel=0.08), (energy.energy_j, truth)
    assert energy.idle_power_w == pytest.approx(phone_lab.battery.idle_a * phone_lab.battery.voltage_v, rel=0.05)
    assert energy.energy_per_inference_mj == pytest.approx(energy.energy_j * 1e3 / result.kpis.query_count)
    # charging is back as it was, and nothing is left pending
    assert (phone_lab.device.root / SUSPEND_NODE).read_text().strip() == "0"
    assert not (phone_lab.storage / charging.PENDING).exists()
    thermals = doc["kpis"]["thermals"]
    assert "cpu-0-0" in thermals["before_c"] and thermals["throttled"] is False


def test_perf_test_gives_every_percentile_and_a_throttled_cpu_is_reported(phone_lab):
    phone_lab.throttle(6, 1_500_000)
    job, model = _job("fp32.onnx")
    doc = _run(phone_lab, job, model)
    result = contract.convert("result", doc)
    latency = result.kpis.latency_ms
    assert result.engine == "onnxruntime_perf_test" and result.model.precision == "fp32"
    assert None not in (latency.p50, latency.p90, latency.p99, latency.p999)  # every run was printed
    assert result.kpis.latency_histogram.n == result.kpis.query_count > 0
    assert result.kpis.energy is None and result.kpis.memory.peak_rss_mb > 0
    assert result.kpis.load_time_ms > 0 and result.kpis.first_inference_ms >= 0
    assert doc["kpis"]["thermals"]["throttled"] is True
    assert doc["kpis"]["thermals"]["throttle_reasons"] == ["cpu6 capped at 1500 MHz of its 2850 MHz when the run ended"]
    assert doc["reproduce"]["argv"][:3] == [phone_lab.toolbox.find("onnxruntime_perf_test").phone_path, "-v", "-I"]


def test_a_delegate_the_phone_cannot_apply_ends_the_job_with_that_reason(phone_lab):
    job, model = _job("int8.tflite", options={"threads": 1, "delegates": ["gpu"]})
    with pytest.raises(SettingsError, match=r"did not apply the gpu delegate on this phone \(GPU acceleration is "
                                            r"unsupported on this platform\.\): the run would have measured the CPU") as info:
        _run(phone_lab, job, model)
    assert "\n" not in str(info.value)
    phone_lab.device.commands[phone_lab.toolbox.find("benchmark_model").phone_path] = benchmark_model(("GPU",), phone_lab.battery)
    doc = _run(phone_lab, job, model)  # a phone with the GPU delegate: applied, and said so
    assert "Explicitly applied GPU delegate" in doc["runtime"]["details"]["delegates_applied"]
    assert doc["runtime"]["accelerator"] == "gpu"


def test_an_execution_provider_the_build_lacks_ends_the_job_with_the_tools_words(phone_lab):
    job, model = _job("fp32.onnx", options={"threads": 1, "providers": ["NnapiExecutionProvider"]})
    with pytest.raises(Exception, match=r"onnxruntime_perf_test failed on the phone \(exit 255\): .*NNAPI is not supported "
                                        r"in this build"):
        _run(phone_lab, job, model)


def test_a_binary_missing_on_the_phone_is_said_so(phone_lab):
    job, model = _job("int8.tflite")
    with pytest.raises(SettingsError, match="benchmark_model is not on the phone at /data/local/tmp/bin/benchmark_model "
                                            r"\(the phone's shell: not found\)"):
        _run(phone_lab, job, model, tools=Toolbox(phone_dir="/data/local/tmp/bin"))


def test_a_phone_that_refuses_to_suspend_charging_is_not_measured_while_charging(tmp_path):
    refusing, stops = make_lab(tmp_path, can_suspend=False)
    try:
        job, model = _job("int8.tflite", power="fuel-gauge")
        with pytest.raises(charging.ChargingRefused, match=r"refuses to suspend charging \(input_suspend: /system/bin/sh: "
                                                           r"can't create .*input_suspend: Permission denied\)"):
            _run(refusing, job, model)
        assert (refusing.device.root / SUSPEND_NODE).read_text().strip() == "0"
        assert not (refusing.storage / charging.PENDING).exists()
    finally:
        for stop in stops:
            stop()


def test_a_phone_on_battery_needs_no_suspension(tmp_path):
    unplugged, stops = make_lab(tmp_path, charger=False)
    try:
        job, model = _job("int8.tflite", power="fuel-gauge", power_idle_s=0.2)
        doc = _run(unplugged, job, model)
        assert doc["kpis"]["energy"]["source_detail"]["charging"] == "on battery (the phone was not charging)"
    finally:
        for stop in stops:
            stop()


def test_a_phone_without_a_gauge_is_estimated_from_its_cpu_time_and_labelled_so(tmp_path):
    gaugeless, stops = make_lab(tmp_path, gauge=False)
    try:
        job, model = _job("int8.tflite", power="estimate:idle_w=0.5,max_w=4.5")
        doc = _run(gaugeless, job, model)
        energy = contract.convert("result", doc).kpis.energy
        busy = energy.source_detail["cpu_utilisation"]
        assert energy.measured is False and energy.source == "estimate" and "estimated, not measured" in energy.warnings[0]
        assert 0.05 < busy < 0.3  # one of the emulated phone's eight cores ran the tool
        assert energy.avg_power_w == pytest.approx(0.5 + 4.0 * busy)
        window_s = (doc["window"]["end_unix_ns"] - doc["window"]["begin_unix_ns"]) / 1e9
        assert energy.energy_j == pytest.approx(energy.avg_power_w * window_s)
        with pytest.raises(SettingsError, match=f"phone {gaugeless.serial} exposes no fuel gauge"):
            _run(gaugeless, _job("int8.tflite", power="fuel-gauge")[0], model)
        auto = _run(gaugeless, _job("int8.tflite", power="auto")[0], model)["kpis"]["energy"]
        assert auto["energy_j"] is None and "for an estimate give power: estimate:idle_w=W,max_w=W" in auto["warnings"][0]
    finally:
        for stop in stops:
            stop()


@pytest.mark.parametrize(("spec", "message"), [
    ("estimate", "an estimate on a phone needs both figures"),
    ("estimate:idle_w=3,max_w=1", "0 <= idle_w <= max_w"),
    ("fuel-gauge:rate=5", "takes no options on a phone"),
    ("rapl", "names a source on a host"),
])
def test_a_phones_power_spec_is_checked_before_the_phone_is_touched(phone_lab, spec, message):
    job, model = _job("int8.tflite", power=spec)
    with pytest.raises(SettingsError, match=message):
        _run(phone_lab, job, model)
    assert not (phone_lab.device.root / "data/local/tmp/edgeperf").exists()


def test_host_power_sources_are_refused_for_a_phone(phone_lab):
    job, model = _job("int8.tflite", power="ina219:bus=1")
    with pytest.raises(SettingsError, match="names a source on a host; a phone's energy comes from its own battery gauge"):
        _run(phone_lab, job, model)


def test_unplugged_mid_run_the_job_is_cut_off_and_charging_is_resumed_when_the_phone_is_back(phone_lab):
    tool = phone_lab.toolbox.find("benchmark_model").phone_path
    real = phone_lab.device.commands[tool]

    def unplugged_while_running(argv, device):
        threading.Timer(0.3, device.unplug).start()
        return real(argv, device)

    phone_lab.device.commands[tool] = unplugged_while_running
    job, model = _job("int8.tflite", power="fuel-gauge", power_idle_s=0.2, overrides={"min_duration_s": 3})
    phone = _phone(phone_lab)
    started = time.monotonic()
    with pytest.raises(CutOff, match="the output ends without the command's end marker"):
        phone_job.run(phone, job, model.path, lambda *_: None)
    assert time.monotonic() - started < 30  # nothing waits for the job's timeout
    assert (phone_lab.device.root / SUSPEND_NODE).read_text().strip() == "1"  # the phone went before it could be restored
    assert (phone_lab.storage / charging.PENDING).exists()
    phone_lab.device.replug()
    phone.adb.connect()
    said = charging.restore_pending(phone.adb, phone_lab.storage)
    assert said and "resumed charging" in said
    assert (phone_lab.device.root / SUSPEND_NODE).read_text().strip() == "0"
    assert not (phone_lab.storage / charging.PENDING).exists()


def test_what_a_phone_tool_cannot_do_is_refused_before_the_phone_is_touched(phone_lab):
    job, model = _job("int8.tflite", scenario="Offline")
    with pytest.raises(SettingsError, match="measures SingleStream only, not Offline"):
        _run(phone_lab, job, model)
    assert not (phone_lab.device.root / "data/local/tmp/edgeperf").exists()
    assert tool_argv.tool_for("tflite") == "benchmark_model"
