"""One fleet job on a phone: the model and the tool pushed, the tool run under the gauge, its output read.

Everything that can be refused is refused before the phone is touched (``tool_argv``: scenario,
mode, delegate, inputs; the tool's binary; the power source). Then, in one adb shell command:
the gauge's sampling loop in the background, an idle stretch for the baseline, the tool between
two clock stamps, the loop stopped (``gauge``); with the gauge measuring, charging is suspended
around that command and restored after it, whatever happened (``charging``). A phone without a
gauge has its CPU time read on either side of the tool instead, for an estimate (``phone_power``). What ends the job
says why in its own words: the phone unplugged mid-run (``CutOff``: the end marker never came),
the binary missing on the phone (the shell's "not found"), a delegate the phone cannot apply
(the tool applied fewer delegates than it was given), a phone that will not stop charging.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.android import charging, gauge, phone_facts, phone_power, phone_thermals, tool_argv, tool_output
from agent.android.adb import Adb, PhoneError
from agent.android.latency import Latencies, from_benchmark_model, from_runs
from agent.android.phone_power import Estimate, PowerSpec
from agent.android.result import Tool, document
from agent.android.tools import PHONE_DIR, Toolbox, install
from agent.contract import Job
from agent.energy_meter import DEFAULT_GRID_G_PER_KWH, DEFAULT_IDLE_S
from agent.errors import InferenceError, SettingsError
from agent.jobs import settings_for
from agent.model_file import ModelFile, resolve
from agent.runtimes import precision

TAIL_S = 0.3  # gauge readings kept after the tool ends, so the window's end lies between two of them
NOT_FOUND = "inaccessible or not found"
# benchmark_model's delegate providers' names (GetName()), as its "Explicitly applied NAME delegate" line says them
PROVIDER_NAMES = {"gpu": "GPU", "nnapi": "NNAPI", "hexagon": "Hexagon"}

Progress = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Phone:
    """The phone a bridge serves: adb to it, the bridge's storage, its tools, and its device id on the fleet."""

    adb: Adb
    storage: Path
    tools: Toolbox
    device_id: str


def _precision(model: ModelFile) -> str:
    """The model's precision from its file, as an agent's runtime would name it; ``unknown`` without the parser."""
    if model.format == "tflite":
        from agent.runtimes.litert import weights_census

        census = weights_census(model.path.read_bytes())
        return precision.classify(census[0], census[1]) if census else "unknown"
    if model.format == "onnx":
        from agent.runtimes.onnx import graph_census

        return graph_census(model.path)[0]
    return "unknown"


def _command(tool_argv_: list[str], source: str | Estimate | None, idle_s: float) -> str:
    """The one shell command of the run (module docstring): the gauge's loop around it, or the CPU time on either side."""
    run = [f"echo {gauge.T0}$EPOCHREALTIME", " ".join(shlex.quote(a) for a in tool_argv_) + " 2>&1",
           f"echo {gauge.TOOL_RC}$?", f"echo {gauge.T1}$EPOCHREALTIME"]
    if isinstance(source, Estimate):
        return "; ".join([f"cat {phone_power.STAT}", *run, f"cat {phone_power.STAT}"])
    if source is None:
        return "; ".join(run)
    return " ".join([gauge.sampler(PHONE_DIR), f"sleep {idle_s:g};", "; ".join(run) + f"; sleep {TAIL_S:g};",
                     gauge.stop(PHONE_DIR)])


def _tool_status(output: str, tool: str, phone_path: str) -> int:
    """The tool's exit status; a binary the phone does not have, or a tool that failed, as its own error."""
    found = [line for line in output.splitlines() if line.startswith(gauge.TOOL_RC)]
    status = int(found[-1][len(gauge.TOOL_RC):]) if found and found[-1][len(gauge.TOOL_RC):].strip().isdigit() else -1
    if status in (126, 127) and (NOT_FOUND in output or "Permission denied" in output):
        raise SettingsError(f"{tool} is not on the phone at {phone_path} (the phone's shell: "
                            f"{'not found' if status == 127 else 'not executable'}); give the bridge --tools DIR to push "
                            "it, or fix --phone-tools")
    if status != 0:
        errors = [line for line in output.splitlines() if "ERROR" in line or "error" in line.lower()]
        said = (errors or [line for line in output.splitlines() if line.strip() and not line.startswith("__EDGEPERF")]
                or [f"exit {status}"])[-1].strip()
        raise InferenceError(f"{tool} failed on the phone (exit {status}): {said[:300]}")
    return status


def _delegates_applied(output: str, delegates: tuple[str, ...]) -> str:
    """Check that ``benchmark_model`` applied every delegate it was given: a delegate its provider cannot create on
    this phone is dropped with a warning and the run goes on on the CPU, which must not pass for the delegate's."""
    applied = []
    for delegate in delegates:
        name = "EXTERNAL" if delegate.endswith(".so") else PROVIDER_NAMES.get(delegate, delegate)
        line = next((x for x in output.splitlines() if f"Explicitly applied {name} delegate" in x), None)
        if line is None:
            hint = next((x.split(":", 1)[-1].strip() for x in output.splitlines()
                         if name.lower() in x.lower() and ("unsupported" in x or "fail" in x.lower())), "")
            raise SettingsError(f"benchmark_model did not apply the {delegate} delegate on this phone"
                                f"{f' ({hint})' if hint else ''}: the run would have measured the CPU; drop {delegate} "
                                "for this phone, or use a delegate it supports")
        applied.append(line.split("INFO:", 1)[-1].strip())
    return "; ".join(applied)


def _latencies(tool: str, output: str) -> tuple[Latencies, float, float, float | None]:
    """The latency block, load and first-inference times (ms) and peak memory (MB) the tool reported."""
    if tool == tool_argv.BENCHMARK_MODEL:
        bm = tool_output.parse_benchmark_model(output)
        return from_benchmark_model(bm), bm.init_ms, bm.first_inference_us / 1000, None
    pt = tool_output.parse_perf_test(output)
    if pt.session_s is None or pt.first_inference_ms is None:
        raise InferenceError("this onnxruntime_perf_test build does not print 'Session creation time cost' and 'First "
                             "inference time cost' (builds before ONNX Runtime 1.13): use a current Android build")
    memory = None if pt.peak_working_set_bytes is None else pt.peak_working_set_bytes / (1 << 20)
    return from_runs(pt.runs_s), pt.session_s * 1000, pt.first_inference_ms, memory


def run(phone: Phone, job: Job, model_path: Path, progress: Progress) -> dict[str, Any]:
    """The result document of ``job`` run on the phone with the model at ``model_path`` (the verified artifact)."""
    settings = settings_for(job.profile, job.scenario, job.mode, job.overrides)
    model = dataclasses.replace(resolve(str(model_path)), name=job.model_name or job.artifact.name)
    name = tool_argv.tool_for(model.format)
    binary = phone.tools.find(name)
    phone_model = f"{PHONE_DIR}/models/{model.sha256[:16]}.{model.format}"
    argv = tool_argv.command(model.format, binary.phone_path, phone_model, job.options, settings)
    power = PowerSpec.parse(job.power) if job.power else None
    adb = phone.adb
    adb.connect()
    progress("preparing", {"tool": name})
    install(adb, binary)
    if adb.shell(f"ls {phone_model}", "look for the model")[1] != 0:
        adb.shell(f"mkdir -p {PHONE_DIR}/models", "make the models folder")
        adb.push(model.path, phone_model)
    adb.shell(gauge.stop_stale(PHONE_DIR), "stop a sampling loop left by a cut-off run")
    layout = phone_facts.Layout.of(adb)
    facts = phone_facts.collect(adb, layout)
    source = power.source(phone_power.has_gauge(facts), adb.serial) if power else None
    before = phone_thermals.snapshot(adb, layout)
    idle_s = DEFAULT_IDLE_S if job.power_idle_s is None else job.power_idle_s
    suspension = charging.suspend(adb, phone.storage) if source == gauge.SOURCE else None
    progress("running", {"tool": name, "energy": str(source) if source else "none"})
    try:
        output, _ = adb.shell(_command(argv, source, idle_s), f"{name} on the phone", timeout_s=job.timeout_s)
    finally:
        if suspension is not None:  # unreachable now: the pending record stays, and the bridge resumes it later
            with contextlib.suppress(PhoneError, tool_output.CutOff):
                charging.restore(adb, suspension, phone.storage)
    _tool_status(output, name, binary.phone_path)
    applied = _delegates_applied(output, job.options.delegates) if name == tool_argv.BENCHMARK_MODEL else ""
    latencies, load_ms, first_ms, memory_mb = _latencies(name, output)
    after = phone_thermals.snapshot(adb, layout)
    t0, t1 = gauge.stamp(output, gauge.T0), gauge.stamp(output, gauge.T1)
    if t0 is None or t1 is None:
        raise InferenceError(f"{name}'s run on the phone has no clock stamps: the phone's shell did not expand "
                             "$EPOCHREALTIME, which Android's mksh does; check that adb runs the phone's own /system/bin/sh")
    measured_s = (latencies.latency_ms["mean"] or 0.0) * latencies.runs / 1000
    window = gauge.measured_window(t1, min(measured_s, t1 - t0))
    tool = Tool(name, binary.sha256, binary.version, tuple(argv))
    doc = document(job.run_id, phone.device_id, facts, model, _precision(model), tool, settings, latencies, load_ms,
                   first_ms, (round(window[0] * 1e9), round(window[1] * 1e9)), memory_mb, job.options.threads,
                   accelerator=_accelerator(name, job))
    if applied:
        doc["runtime"]["details"]["delegates_applied"] = applied
    doc["kpis"]["thermals"] = phone_thermals.block(before, after)
    if power is not None:
        doc["kpis"]["energy"] = _energy(phone, job.run_id, source, suspension, output, window, (t0 - idle_s, t0),
                                        latencies.runs)
    doc["job"] = {"campaign": job.campaign, "key": job.key, "attempt": job.attempt}
    return doc


def _energy(phone: Phone, run_id: str, source: str | Estimate | None, suspension: charging.Suspension | None, output: str,
            window: tuple[float, float], idle: tuple[float, float], runs: int) -> dict[str, Any]:
    """The energy block: the gauge's readings pulled from the phone, the estimate from the CPU time in the output,
    or (``auto`` on a phone with neither) a block that says why it has no energy."""
    if suspension is not None:
        local = phone.storage / "jobs" / run_id / "gauge.txt"
        local.parent.mkdir(parents=True, exist_ok=True)
        phone.adb.pull(f"{PHONE_DIR}/gauge.txt", local)
        readings = gauge.parse(local.read_text(errors="replace"))
        return gauge.energy_block(readings, window, idle, runs, suspension.how, DEFAULT_GRID_G_PER_KWH)
    if isinstance(source, Estimate):
        busy = phone_power.utilisation(phone_power.cpu_times(output.partition(gauge.T0)[0]),
                                       phone_power.cpu_times(output.rpartition(gauge.T1)[2]))
        return phone_power.estimated_block(source, busy, window, runs, DEFAULT_GRID_G_PER_KWH)
    return phone_power.unavailable_block(phone.adb.serial, DEFAULT_GRID_G_PER_KWH)


def _accelerator(tool: str, job: Job) -> str:
    """What ran the model, as the job asked for it (the delegate check has confirmed it by then)."""
    if tool == tool_argv.BENCHMARK_MODEL:
        return "+".join(Path(d).name for d in job.options.delegates) or ("cpu/xnnpack" if job.options.xnnpack else "cpu/builtin")
    providers = [p for p in job.options.providers if p != "CPUExecutionProvider"]
    return tool_argv.ORT_PROVIDERS[providers[0]] if providers else "cpu"
