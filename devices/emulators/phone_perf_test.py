"""ONNX Runtime's ``onnxruntime_perf_test`` as an on-device program for the adb emulator
(``AdbDevice.commands``).

Why: the bridge (``agent/android/tool_argv.py`` builds the command lines,
``agent/android/tool_output.py`` reads the output) can only be tested end to end against tools
that print what the real ones print, including how they fail. No phone is attached to the
machines this project is tested on, so this program runs the model that was pushed to the
emulated phone (its host file, ``device.host_path(path)``) with the REAL runtime on the host —
``onnxruntime`` for ``.onnx`` — so every latency printed is a real host run, and prints it line
for line as the tool's sources do. An execution provider the emulated phone "has" (``providers``)
is announced exactly as the tool announces it, but the model still runs on the host CPU: those
lines are modelled, not evidence of execution on that provider.

While warm-up and measured runs execute, the tool holds ``battery.busy()`` (a
``devices.emulators.phone_battery.PhoneBattery``) so the emulated fuel gauge sees the load.
The phone's other benchmark tool, LiteRT's ``benchmark_model``, is ``phone_benchmark_model``;
the helpers both use are in ``phone_tool_common``.

**onnxruntime_perf_test** (``onnxruntime_perf_test(providers, battery)``), from microsoft/onnxruntime
``onnxruntime/test/perftest/``:

- options as ``command_args_parser.cc`` parses them (getopt ``-m -e -r -t -x -y -o -S -I -s -v -Z
  -D``; ``-r`` switches to times mode and ``-t`` to duration mode, the last one wins; one positional
  argument is the model and turns ``-s`` statistics on, a second one is a result file); a bad option
  prints the usage (``ShowUsage``) and exits 255 (``main.cc`` returns -1). Options it has but this
  emulator does not model print ``adb emulator: … is not modelled`` with status 2.
- ``Setting intra_op_num_threads to N`` (``ort_test_session.cc``, when ``-x`` > 0), then one warm-up
  run, then the measured runs: ``-m times -r N`` runs N, ``-m duration -t S`` runs while the SUM of
  the runs' own times is below S (``performance_runner.h`` ``RunFixDuration``); with ``-v`` each
  prints ``iteration:N,time_cost:SECONDS`` (``RunOneIteration``).
- the summary (``performance_runner.cc`` ``PerformanceRunner::Run``): ``Session creation time cost:
  X s``, ``First inference time cost: N ms`` (integer, truncated), ``Total inference time cost: X s``,
  ``Total inference requests: N``, ``Average inference time cost total: X ms``, ``Total inference
  run time: X s``, ``Number of inferences per second: X `` (sic, trailing space), ``Avg CPU usage: N
  %`` (``posix/utils.cc``: process CPU ticks / wall ticks / cores), ``Peak working set size: N
  bytes`` (``ru_maxrss`` × 1024); then ``PerformanceResult::DumpToFile`` with no result file:
  ``Avg CPU usage:N``, ``Peak working set size:N``, ``Runs:N`` and, since statistics default to on
  without a result file, ``Min Latency: X s``, ``Max Latency``, ``P50``, ``P90``, ``P95``, ``P99``,
  ``P999 Latency: X s`` (``sorted[(size_t)(n·p)]``). The newest ``performance_runner.cc`` was not in
  the searchable index: the average line is ``Average inference time cost total: %f ms`` as builds
  since the submit/total timing change (microsoft/onnxruntime#25895, 2025) print it and the current
  ``perftest/README.md`` shows it; older builds printed ``Average inference time cost: X ms``
  (``%g``). Numbers are printed as ``ostream`` does (6 significant digits) except that line.
- ``-I`` (``PopulateGeneratedInputTestData``): inputs of the model's types with free dimensions as 1,
  filled with zeros (``T{}``) unless ``-S SEED`` ≥ 0 gives random floats in [0, 5) and random 8-bit
  integers (numpy's generator here, not ``std::default_random_engine``, so the values differ).
  Without ``-I`` the tool reads ``test_data_set_*`` folders next to the model: with none it prints
  ``there is no test data for model NAME`` and ``Run failed:failed to initialize.`` (status 255);
  reading them is not modelled.
- an execution provider this build lacks: the ``ORT_THROW("NNAPI is not supported in this
  build\\n")`` of ``ort_test_session.cc`` (likewise ``QNN``, ``Xnnpack``, ``CUDA``, …), caught in
  ``main.cc`` and printed to stderr with ``fprintf(stderr, "%s\\n", ex.what())``, exit status 255.
  ``OnnxRuntimeException::what()`` starts with the throw site (``path/file.cc:LINE function``): the
  path, line and function spelling belong to the build, so the ones printed here are placeholders
  (``/onnxruntime_src/…:0``); only the message after them is the source's.
- a missing model: ``OnnxModelInfo`` (``test/onnx/onnx_model_info.cc``) throws the status of
  ``Env::FileOpenRd`` (``platform/posix/env.cc`` ``ReportSystemError``): ``open file "PATH" failed: No
  such file or directory``, printed the same way, exit status 255.
- an emulated phone's NNAPI/QNN/XNNPACK provider runs on the host's CPU provider (the only one the
  host has). ``-v``'s ONNX Runtime verbose log (the environment at ``ORT_LOGGING_LEVEL_VERBOSE``) is
  not reproduced.

Nothing here was captured from a phone: every line is built from the sources named above.
"""

from __future__ import annotations

import getopt
import math
import os
import posixpath
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from devices.emulators.adb_device import Program
from devices.emulators.phone_tool_common import busy, maxrss_kb, ostream_g

if TYPE_CHECKING:
    from devices.emulators.adb_device import AdbDevice
    from devices.emulators.phone_battery import PhoneBattery

__all__ = ["onnxruntime_perf_test"]


# -e name -> the name ort_test_session.cc's "… is not supported in this build" uses
_EP_MESSAGE_NAMES = {
    "cpu": "CPU", "cuda": "CUDA", "dnnl": "DNNL", "openvino": "OpenVINO", "tensorrt": "TensorRT", "qnn": "QNN",
    "snpe": "SNPE", "nnapi": "NNAPI", "coreml": "COREML", "dml": "DML", "acl": "Acl", "armnn": "ArmNN", "rocm": "ROCM",
    "migraphx": "MIGraphX", "xnnpack": "Xnnpack", "vitisai": "VitisAI",
}
_GETOPT = "k:b:m:e:r:t:p:x:y:c:d:o:u:i:f:F:S:T:AMPIDZvhsqz"
_MODELLED_OPTIONS = set("metrxyoSIsvZD")
_USAGE = ("perf_test [options...] model_path [result_file]\n"
          "Options:\n"
          "\t-m [test_mode]: Specifies the test mode. Value could be 'duration' or 'times'.\n"
          "\t(the rest of command_args_parser.cc's ShowUsage is not reproduced)\n")
_THROW_SITE = {
    "session": ("/onnxruntime_src/onnxruntime/test/perftest/ort_test_session.cc:0 "
                "onnxruntime::perftest::OnnxRuntimeTestSession::OnnxRuntimeTestSession(Ort::Env &, std::random_device &, "
                "const PerformanceTestConfig &, const TestModelInfo &)"),
    "model": ("/onnxruntime_src/onnxruntime/test/onnx/onnx_model_info.cc:0 "
              "void OnnxModelInfo::InitOnnxModelInfo(const std::filesystem::path &)"),
    "runner": ("/onnxruntime_src/onnxruntime/test/perftest/performance_runner.cc:0 "
               "std::unique_ptr<TestModelInfo> onnxruntime::perftest::CreateModelInfo(const PerformanceTestConfig &)"),
}
_ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(int16)": np.int16, "tensor(uint16)": np.uint16, "tensor(int32)": np.int32,
    "tensor(uint32)": np.uint32, "tensor(int64)": np.int64, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
}


class _Thrown(Exception):
    """An exception reaching ``main.cc``'s catch: ``fprintf(stderr, "%s\\n", ex.what())``, return -1."""

    def __init__(self, site: str, message: str) -> None:
        super().__init__(f"{_THROW_SITE[site]} {message}\n")


def _strtol(text: str) -> int:
    """``strtol(text, nullptr, 10)``: the leading integer, 0 when there is none."""
    digits = ""
    for i, ch in enumerate(text.strip()):
        if ch.isdigit() or (i == 0 and ch in "+-"):
            digits += ch
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return 0


class _PerfTest:
    """One run of ``onnxruntime_perf_test`` (see the module docstring)."""

    def __init__(self, argv: list[str], device: AdbDevice, providers: set[str], battery: PhoneBattery | None) -> None:
        self.argv, self.device, self.providers, self.battery = argv, device, providers, battery
        self.out: list[str] = []
        self.mode = "duration"
        self.repeated = 1000
        self.duration = 600
        self.ep = "cpu"
        self.level = 99
        self.intra = 0
        self.inter = 0
        self.seed = -1
        self.generate = False
        self.verbose = False
        self.statistics = False
        self.spin_stop = False
        self.no_spinning = False
        self.model = ""
        self.result_file = ""

    def parse(self) -> str | None:
        """``CommandLineParser::ParseArguments``; None when it returns false, else "" or a refusal."""
        try:
            options, args = getopt.gnu_getopt(self.argv[1:], _GETOPT)
        except getopt.GetoptError as exc:
            what = "option requires an argument" if "requires argument" in exc.msg else "unknown option"
            self.out.append(f"{self.argv[0]}: {what} -- {exc.opt}\n")  # bionic getopt's warnx
            return None
        for flag, value in options:
            option = flag[1:]
            if option not in _MODELLED_OPTIONS:
                if option == "h":
                    return None
                return f"adb emulator: onnxruntime_perf_test -{option} is not modelled\n"
            if option == "m":
                if value not in ("duration", "times"):
                    return None
                self.mode = value
            elif option == "e":
                if value not in _EP_MESSAGE_NAMES:
                    return None
                self.ep = value
            elif option == "r":
                self.repeated = _strtol(value)
                if self.repeated <= 0:
                    return None
                self.mode = "times"
            elif option == "t":
                self.duration = max(0, _strtol(value))  # size_t; the source checks repeated_times here, not this
                self.mode = "duration"
            elif option == "x":
                self.intra = _strtol(value)
                if self.intra < 0:
                    return None
            elif option == "y":
                self.inter = _strtol(value)
                if self.inter < 0:
                    return None
            elif option == "o":
                level = _strtol(value)
                if level in (0, 1, 2, 3, 99) or level > 99:
                    self.level = min(level, 99)
                else:
                    return None
            elif option == "S":
                self.seed = _strtol(value)
            elif option == "I":
                self.generate = True
            elif option == "s":
                self.statistics = True
            elif option == "v":
                self.verbose = True
            elif option == "Z":
                self.spin_stop = True
            elif option == "D":
                self.no_spinning = True
        if len(args) == 1:
            self.statistics = True
        elif len(args) == 2:
            self.result_file = args[1]
        else:
            return None
        self.model = args[0]
        return ""

    def model_info(self) -> str:
        """``CreateModelInfo`` + ``OnnxModelInfo``: the host file of a readable, parseable ONNX model."""
        if not self.model.endswith((".onnx", ".ort")):
            raise _Thrown("runner", f"{self.model} is not supported")
        try:
            host = self.device.host_path(self.model)
            with open(host, "rb"):
                pass
        except FileNotFoundError:
            raise _Thrown("model", f'open file "{self.model}" failed: No such file or directory') from None
        except OSError as exc:
            raise _Thrown("model", f'open file "{self.model}" failed: {os.strerror(exc.errno or 13)}') from None
        import onnx

        try:
            onnx.load(host, load_external_data=False)
        except Exception:  # any parse failure is the tool's protobuf failure
            raise _Thrown("model", f'Failed to load model from "{self.model}" because protobuf parsing failed.') from None
        return host

    def session(self, host: str):  # -> onnxruntime.InferenceSession
        """``OnnxRuntimeTestSession``'s constructor."""
        import onnxruntime as ort

        if self.ep != "cpu" and self.ep not in self.providers:
            raise _Thrown("session", f"{_EP_MESSAGE_NAMES[self.ep]} is not supported in this build\n")
        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if self.intra > 0:
            self.out.append(f"Setting intra_op_num_threads to {self.intra}\n")
            options.intra_op_num_threads = self.intra
        if self.no_spinning:
            self.out.append("Disabling intra-op thread spinning entirely\n")
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.spin_stop:
            self.out.append("Disabling intra-op thread spinning between runs\n")
            options.add_session_config_entry("session.force_spinning_stop", "1")
        levels = {0: ort.GraphOptimizationLevel.ORT_DISABLE_ALL, 1: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  2: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, 3: ort.GraphOptimizationLevel.ORT_ENABLE_LAYOUT,
                  99: ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
        options.graph_optimization_level = levels[self.level]
        return ort.InferenceSession(host, sess_options=options, providers=["CPUExecutionProvider"])

    def inputs(self, session) -> dict[str, np.ndarray]:
        """``PopulateGeneratedInputTestData``: free dimensions as 1; zeros unless a seed is given."""
        rng = np.random.default_rng(self.seed) if self.seed >= 0 else None
        feeds = {}
        for node in session.get_inputs():
            shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in node.shape)
            dtype = _ORT_DTYPES.get(node.type)
            if dtype is None:
                raise _Thrown("session", f"Unsupported tensor data type: {node.type}")
            data = np.zeros(shape, dtype=dtype)
            if rng is not None:
                if np.dtype(dtype) == np.float32:
                    data = rng.uniform(0.0, 5.0, size=shape).astype(np.float32)
                elif np.dtype(dtype) in (np.int8, np.uint8):
                    data = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
                else:
                    self.out.append(" this type of data won't be random initialized\n")
            feeds[node.name] = data
        return feeds

    def model_name(self) -> str:
        """``PerformanceRunner::Initialize``: the model's folder name, without a ``test_`` prefix."""
        name = posixpath.basename(posixpath.dirname(self.model) or ".")
        return name[5:] if name.startswith("test_") else name

    def dump(self, times: list[float], cpu: int, peak: int) -> None:
        """``PerformanceResult::DumpToFile``."""
        have_file = bool(self.result_file)
        statistics = self.statistics
        lines: list[str] = []
        if have_file:
            try:
                host = self.device.host_path(self.result_file)
                with open(host, "a") as f:
                    for run, cost in enumerate(times):
                        f.write(f"{self.model_name()},{ostream_g(cost)},{peak},{cpu},{run}\n")
                    if times and statistics:
                        f.write("\n" + "".join(self.latency_lines(times)))
            except OSError:
                self.out.append(f"failed to open result file '{self.result_file}'. will dump stats to output.\n")
                have_file, statistics = False, True
        if not have_file:
            lines.append(f"Avg CPU usage:{cpu}\nPeak working set size:{peak}\nRuns:{len(times)}\n")
        if times and statistics:
            lines += self.latency_lines(times)
        self.out += lines

    @staticmethod
    def latency_lines(times: list[float]) -> list[str]:
        ordered = sorted(times)
        n = len(ordered)
        at = {label: ordered[int(n * p)] for label, p in (("P50", 0.5), ("P90", 0.9), ("P95", 0.95), ("P99", 0.99),
                                                          ("P999", 0.999))}
        return [f"Min Latency: {ostream_g(ordered[0])} s\n", f"Max Latency: {ostream_g(ordered[-1])} s\n"] + [
            f"{label} Latency: {ostream_g(value)} s\n" for label, value in at.items()]

    def __call__(self) -> tuple[bytes, int]:
        parsed = self.parse()
        if parsed is None:
            self.out.append(_USAGE)
            return "".join(self.out).encode(), 255
        if parsed:
            return parsed.encode(), 2
        if self.model.endswith(".ort"):
            return b"adb emulator: onnxruntime_perf_test with an .ort model is not modelled\n", 2
        try:
            host = self.model_info()
            create_start = time.perf_counter()
            session = self.session(host)
            create_end = time.perf_counter()
        except _Thrown as exc:
            self.out.append(f"{exc}\n")
            return "".join(self.out).encode(), 255
        if not self.generate:
            folder = posixpath.dirname(self.model) or "."
            name = self.model_name()
            try:
                sets = [e for e in os.scandir(self.device.host_path(folder)) if e.is_dir()]
            except OSError:
                sets = []
            if sets:
                return b"adb emulator: onnxruntime_perf_test without -I (test_data_set inputs) is not modelled\n", 2
            self.out.append(f"there is no test data for model {name}\nRun failed:failed to initialize.\n")
            return "".join(self.out).encode(), 255
        try:
            feeds = self.inputs(session)
        except _Thrown as exc:
            self.out.append(f"{exc}\n")
            return "".join(self.out).encode(), 255
        outputs = [o.name for o in session.get_outputs()]

        def run_once() -> float:
            start = time.perf_counter()
            session.run(outputs, feeds)
            return time.perf_counter() - start

        clk = os.sysconf("SC_CLK_TCK")
        times: list[float] = []
        total = 0.0
        with busy(self.battery):
            first_start = time.perf_counter()
            run_once()
            first_ms = int((time.perf_counter() - first_start) * 1000)
            run_start = time.perf_counter()
            cpu_start = os.times()
            while (len(times) < self.repeated) if self.mode == "times" else (total < self.duration):
                cost = run_once()
                times.append(cost)
                total += cost
                if self.verbose:
                    self.out.append(f"iteration:{len(times)},time_cost:{ostream_g(cost)}\n")
            run_end = time.perf_counter()
            cpu_end = os.times()
        wall_ticks = int(cpu_end.elapsed * clk) - int(cpu_start.elapsed * clk)
        proc_ticks = ((int(cpu_end.user * clk) - int(cpu_start.user * clk))
                      + (int(cpu_end.system * clk) - int(cpu_start.system * clk)))
        cpu = -1 if wall_ticks <= 0 else int(100.0 * proc_ticks / wall_ticks / (os.cpu_count() or 1))
        peak = maxrss_kb() * 1024
        run_time = run_end - run_start
        average = total / len(times) * 1000 if times else math.nan
        self.out += [
            f"Session creation time cost: {ostream_g(create_end - create_start)} s\n",
            f"First inference time cost: {first_ms} ms\n",
            f"Total inference time cost: {ostream_g(total)} s\n",
            f"Total inference requests: {len(times)}\n",
            f"Average inference time cost total: {average:f} ms\n",
            f"Total inference run time: {ostream_g(run_time)} s\n",
            f"Number of inferences per second: {ostream_g(len(times) / run_time if run_time > 0 else 0.0)} \n",
            f"Avg CPU usage: {cpu} %\n",
            f"Peak working set size: {peak} bytes\n",
        ]
        self.dump(times, cpu, peak)
        return "".join(self.out).encode(), 0


def onnxruntime_perf_test(providers: Iterable[str] = ("cpu",), battery: PhoneBattery | None = None) -> Program:
    """ONNX Runtime's ``onnxruntime_perf_test`` as an ``AdbDevice`` program. ``providers``: the ``-e`` names
    this build has (cpu, nnapi, qnn, xnnpack, …); the CPU provider is always built in."""
    built = {name.lower() for name in providers}

    def program(argv: list[str], device: AdbDevice) -> tuple[bytes, int]:
        return _PerfTest(argv, device, built, battery)()

    return program
