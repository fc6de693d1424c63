"""The phone's benchmark tools — LiteRT's ``benchmark_model`` and ONNX Runtime's
``onnxruntime_perf_test`` — as on-device programs for the adb emulator (``AdbDevice.commands``).

Why: the bridge (``agent/android/tool_argv.py`` builds the command lines,
``agent/android/tool_output.py`` reads the output) can only be tested end to end against tools
that print what the real ones print, including how they fail. No phone is attached to the
machines this project is tested on, so these programs run the model that was pushed to the
emulated phone (its host file, ``device.host_path(path)``) with the REAL runtime on the host —
``ai_edge_litert`` for ``.tflite``, ``onnxruntime`` for ``.onnx`` — so every latency printed is a
real host run, and print it line for line as the tools' sources do. A delegate or execution
provider the emulated phone "has" (``supported_delegates`` / ``providers``) is announced exactly
as the tool announces it, but the model still runs on the host CPU: those lines are modelled,
not evidence of delegate execution.

While warm-up and measured runs execute, each tool holds ``battery.busy()`` (a
``devices.emulators.phone_battery.PhoneBattery``) so the emulated fuel gauge sees the load.

**benchmark_model** (``benchmark_model(supported_delegates, battery)``), from
google-ai-edge/LiteRT ``tflite/tools/`` (the newest sources found, Aug 2026; the same files live
under ``tensorflow/lite/tools/`` in older TensorFlow):

- every line through ``TFLITE_LOG`` (``logging.h``): ``INFO: ``/``WARN: `` on stdout, ``ERROR: ``
  on stderr; the runtime's own messages through ``TFLITE_LOG_PROD`` (``minimal_logging_android.cc``:
  ``INFO: …`` on stderr). Both reach ``adb shell`` in one stream, in program order.
- ``INFO: STARTING!`` and, on failure, ``ERROR: Benchmarking failed.`` with exit status 1
  (``benchmark_main.cc``: ``EXIT_FAILURE``).
- the parameter echo (``benchmark_model.cc`` ``BenchmarkModel::LogParams``,
  ``benchmark_tflite_model.cc`` ``BenchmarkTfLiteModel::LogParams``, each provider's ``LogParams``;
  ``LOG_TOOL_PARAM`` in ``tool_params.h``: only flags given on the command line, plus ``Graph`` and
  ``Signature to run`` always; bools print 1/0, floats as ``ostream`` does). The providers are
  listed in the order of the ``tflite_execution_providers`` BUILD target (XNNPACK, default, external,
  GPU, Hexagon, NNAPI): real builds register them in link order, which the sources do not fix.
- ``Loaded model PATH`` (``LoadModel``); on Android the runtime's ``Initialized TensorFlow Lite
  runtime.`` (``core/interpreter.cc``, ``TFLITE_IS_MOBILE_PLATFORM``).
- delegates (``benchmark_tflite_model.cc`` ``Init``, ``delegate_provider.cc``
  ``CreateAllRankedDelegates``): each requested delegate is created by its provider in registration
  order; the first one created logs ``NAME delegate created.`` (names are the providers'
  ``GetName()``: XNNPACK, GPU, NNAPI, Hexagon, EXTERNAL); they are applied in the order of their
  flags on the command line (the rank is the flag's argv position); ``Going to apply N delegates one
  after another.`` is logged only when N ≥ 2 (``TFLITE_MAY_LOG(INFO, created_delegates.size() >=
  2)``); each applied delegate logs ``Explicitly applied NAME delegate, and the model graph will be
  completely executed by the delegate.`` A requested delegate the phone lacks is not created, so it
  is neither counted nor applied; its provider says why: ``WARN: GPU acceleration is unsupported on
  this platform.`` (``gpu_delegate_provider.cc``), ``WARN: NNAPI acceleration is unsupported on this
  platform.`` (``nnapi_delegate_provider.cc``), ``WARN: Could not create Hexagon delegate: platform
  may not support delegate or required libraries are missing`` (``hexagon_delegate_provider.cc``),
  and for an external delegate library the loader's ``INFO: Unable to load external delegate from :
  PATH (ERROR)`` (``delegates/external/external_delegate.cc``; ERROR is bionic's ``dlerror()``).
  The delegates' own creation messages are modelled from ``xnnpack_delegate.cc`` (``Created
  TensorFlow Lite XNNPACK delegate for CPU.``), ``gpu/delegate.cc`` and ``nnapi_delegate.cc``.
  ``--use_xnnpack`` is real on the host: given (true or false) the tool drops the runtime's default
  XNNPACK delegate (``GetOpResolver``: ``BuiltinOpResolverWithoutDefaultDelegates``); true applies it.
- ``The input model file size (MB): X`` and ``Initialized session in Xms.`` (``BenchmarkModel::Run``).
- for the warm-up and then the measured runs: ``Running benchmark for at least N iterations and at
  least S seconds but terminate if exceeding M seconds.``, then the ``tsl::Stat`` line and a blank
  line (``BenchmarkModel::Run``; ``xla/tsl/util/stats_calculator.h`` ``StatWithPercentiles``: int64
  microseconds; ``count= first= curr= min= max= avg= std=`` then ``p5= median= p95=``; ``count=N
  curr=X`` when all runs were equal; the population std truncated to an integer; percentile p is
  ``sorted[n·p/100]``). Runs continue while fewer than N ran OR fewer than S seconds passed, and stop
  once M seconds passed.
- ``Inference timings in us: Init: …, First inference: …, Warmup (avg): …, Inference (avg): …``,
  the footprint note and ``Memory footprint delta from the start of the tool (MB): init=X
  overall=Y`` (``BenchmarkLoggingListener::OnBenchmarkEnd``; the delta of ``ru_maxrss``,
  ``profiling/memory_info.cc`` — here the host process's).
- a missing model (``tools/model_loader.cc``, ``converter/mmap_allocation.cc``,
  ``converter/core/model_builder_base.h``): ``ERROR: Could not open 'PATH'.``, ``ERROR: The model
  allocation is null/empty``, ``ERROR: Failed to load model PATH``, ``ERROR: Benchmarking failed.``,
  exit status 1. (TensorFlow ≤ 2.x builds said ``Failed to mmap model PATH`` instead.)

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

import contextlib
import getopt
import math
import os
import posixpath
import resource
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from devices.emulators.adb_device import Program

if TYPE_CHECKING:
    from devices.emulators.adb_device import AdbDevice
    from devices.emulators.phone_battery import PhoneBattery

__all__ = ["benchmark_model", "onnxruntime_perf_test"]


def _g(value: float) -> str:
    """A double as ``std::ostream`` prints it by default (``%g``, 6 significant digits)."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return format(value, "g")


def _busy(battery: PhoneBattery | None) -> contextlib.AbstractContextManager:
    return battery.busy() if battery is not None else contextlib.nullcontext()


def _host_file(device: AdbDevice, path: str) -> str | None:
    """The host file behind a device path, or None when the tool could not open it (missing, outside root)."""
    try:
        host = device.host_path(path)
    except OSError:
        return None
    return host if os.path.isfile(host) and os.access(host, os.R_OK) else None


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ---------------------------------------------------------------------------------------------
# benchmark_model
# ---------------------------------------------------------------------------------------------

class _Log:
    """The tool's output: TFLITE_LOG lines (INFO/WARN on stdout, ERROR on stderr) and the runtime's
    TFLITE_LOG_PROD lines (stderr), in the order they are written."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(f"INFO: {text}\n")

    def warn(self, text: str) -> None:
        self.lines.append(f"WARN: {text}\n")

    def error(self, text: str) -> None:
        self.lines.append(f"ERROR: {text}\n")

    def raw(self, text: str) -> None:
        self.lines.append(text)

    def bytes(self) -> bytes:
        return "".join(self.lines).encode()


# (flag, type, default, LogParams description or None when never echoed)
_BENCHMARK_FLAGS: list[tuple[str, str, object, str | None]] = [
    ("num_runs", "int", 50, "Min num runs"),
    ("min_secs", "float", 1.0, "Min runs duration (seconds)"),
    ("max_secs", "float", 150.0, "Max runs duration (seconds)"),
    ("num_threads", "int", -1, "Num threads"),
    ("warmup_runs", "int", 1, "Min warmup runs"),
    ("warmup_min_secs", "float", 0.5, "Min warmup runs duration (seconds)"),
    ("verbose", "bool", False, None),
    ("graph", "str", "", "Graph"),
    ("signature_to_run_for", "str", "", "Signature to run"),
    ("input_layer", "str", "", "Input layers"),
    ("input_layer_shape", "str", "", "Input shapes"),
]
# the providers' flags, in the order their LogParams run (see the module docstring)
_PROVIDER_FLAGS: list[tuple[str, str, object, str]] = [
    ("use_xnnpack", "bool", False, "Use xnnpack"),
    ("num_threads", "int", -1, "#threads used for CPU inference"),
    ("external_delegate_path", "str", "", "External delegate path"),
    ("use_gpu", "bool", False, "Use gpu"),
    ("use_hexagon", "bool", False, "Use Hexagon"),
    ("use_nnapi", "bool", False, "Use NNAPI"),
]
# flags the real tool has that this emulator does not model: refused, never silently ignored
_UNMODELLED_FLAGS = {
    "run_delay", "run_frequency", "use_caching", "benchmark_name", "output_prefix", "dry_run",
    "report_peak_memory_footprint", "memory_footprint_check_interval_ms", "gpu_invoke_loop_times", "list_signatures",
    "input_layer_value_range", "input_layer_value_files", "allow_fp16", "require_full_delegation", "enable_op_profiling",
    "op_profiling_output_mode", "op_profiling_output_file", "max_profiling_buffer_entries",
    "allow_dynamic_profiling_buffer_increase", "profiling_output_csv_file", "export_model_runtime_info",
    "model_runtime_info_output_file", "print_preinvoke_state", "print_postinvoke_state", "release_dynamic_tensors",
    "optimize_memory_for_large_tensors", "disable_delegate_clustering", "enable_builtin_cast_constant_cache",
    "output_filepath", "output_proto_filepath", "result_file_path", "xnnpack_force_fp16", "xnnpack_weight_cache_file_path",
    "gpu_precision_loss_allowed", "gpu_experimental_enable_quant", "gpu_backend", "gpu_inference_for_sustained_speed",
    "nnapi_execution_preference", "nnapi_accelerator_name", "nnapi_support_library_path", "hexagon_lib_path",
    "hexagon_profiling", "external_delegate_options", "max_delegated_partitions", "min_nodes_per_partition",
    "delegate_serialize_dir", "delegate_serialize_token", "help",
}
_TYPES = {name: kind for name, kind, _, _ in _BENCHMARK_FLAGS + _PROVIDER_FLAGS}
_DEFAULTS = {name: default for name, _, default, _ in _BENCHMARK_FLAGS + _PROVIDER_FLAGS}


def _parse_value(kind: str, text: str) -> object:
    if kind == "bool":
        if text not in ("true", "false", "0", "1"):
            raise ValueError(text)
        return text in ("true", "1")
    if kind == "int":
        value = int(text)
        if not -2**31 <= value < 2**31:
            raise ValueError(text)
        return value
    if kind == "float":
        return float(np.float32(float(text)))
    return text


def _param_text(value: object) -> str:
    """A parameter as ``LOG_TOOL_PARAM`` streams it: bools 1/0, floats as ``ostream``."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return _g(value)
    return str(value)


def _stat_line(values: list[int]) -> str:
    """``tsl::StatWithPercentiles<int64_t>::OutputToStream``."""
    n = len(values)
    if n == 0:
        return "count=0 p5=0 median=0 p95=0"  # quiet_NaN() of int64 is 0
    ordered = sorted(values)

    def pct(p: int) -> int:
        return ordered[n * p // 100]

    lo, hi = ordered[0], ordered[-1]
    if lo == hi:
        text = f"count={n} curr={values[-1]}" + ("(all same)" if n > 1 else "")
    else:
        total = sum(values)
        squared = float(sum(float(v) * v for v in values))
        avg = total / n
        variance = int(squared / n - avg * avg)  # ValueType (int64), truncated
        std = int(math.sqrt(variance)) if variance > 0 else 0
        text = f"count={n} first={values[0]} curr={values[-1]} min={lo} max={hi} avg={_g(avg)} std={std}"
    return f"{text} p5={pct(5)} median={pct(50)} p95={pct(95)}"


def _random_input(shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """Random data of the input's type, as ``BenchmarkTfLiteModel::PrepareInputData`` fills it."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-0.5, 0.5, size=shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    raise ValueError(f"input type {dtype} is not modelled")


class _BenchmarkModel:
    """One run of ``benchmark_model`` (see the module docstring)."""

    def __init__(self, argv: list[str], device: AdbDevice, supported: set[str], battery: PhoneBattery | None) -> None:
        self.argv, self.device, self.supported, self.battery = argv, device, supported, battery
        self.log = _Log()
        self.params: dict[str, object] = dict(_DEFAULTS)
        self.given: dict[str, int] = {}  # flag -> argv position (the delegates' rank)

    def fail(self) -> tuple[bytes, int]:
        self.log.error("Benchmarking failed.")
        return self.log.bytes(), 1

    def parse(self) -> str | None:
        """``Flags::Parse`` (``command_line_flags.cc``): ``--name=value``, the first occurrence of a flag
        wins; returns None, or the text of an ``adb emulator`` refusal."""
        unknown: list[str] = []
        ok = True
        for position, arg in enumerate(self.argv[1:], start=1):
            name, eq, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
            if name in _UNMODELLED_FLAGS and eq:
                return f"adb emulator: benchmark_model --{name} is not modelled\n"
            if not eq or name not in _TYPES or name in self.given:
                unknown.append(arg)
                continue
            try:
                self.params[name] = _parse_value(_TYPES[name], value)
            except ValueError:
                self.log.error(f"Failed to parse flag '{name}' against argv '{arg}'")
                ok = False
                continue
            self.given[name] = position
        if not ok:
            self.log.error(f"usage: {self.argv[0]}\nFlags:")  # Flags::Usage (the flag list is not reproduced)
            return ""
        if unknown:
            self.log.warn("Unconsumed cmdline flags: " + " ".join(unknown))
        return None

    def log_params(self) -> None:
        self.log.info(f"Log parameter values verbosely: [{_param_text(self.params['verbose'])}]")
        verbose = bool(self.params["verbose"])
        always = {"graph", "signature_to_run_for"}
        for name, _, _, description in _BENCHMARK_FLAGS:
            if description and (verbose or name in always or name in self.given):
                self.log.info(f"{description}: [{_param_text(self.params[name])}]")
        for name, _, _, description in _PROVIDER_FLAGS:
            if verbose or name in self.given:
                self.log.info(f"{description}: [{_param_text(self.params[name])}]")

    def input_layers(self) -> list[tuple[str, list[int]]] | None:
        """``PopulateInputLayerInfo``: names split on ',', shapes on ':'."""
        names_text, shapes_text = str(self.params["input_layer"]), str(self.params["input_layer_shape"])
        names = names_text.split(",") if names_text else []
        shapes = shapes_text.split(":") if shapes_text else []
        if len(names) != len(shapes):
            self.log.error(f"The number of items in --input_layer_shape ({shapes_text}, with {len(shapes)} items) must match "
                           f"the number of items in --input_layer ({names_text}, with {len(names)} items). For example "
                           "--input_layer=input1,input2 --input_layer_shape=1,224,224,4:1,20")
            return None
        layers = []
        for name, shape in zip(names, shapes, strict=True):
            dims = [int(d) for d in shape.split(",") if d]
            if -1 in dims:
                self.log.error("Any unknown sizes in the shapes (-1's) must be replaced with the size you want to "
                               "benchmark with.")
                return None
            layers.append((name, dims))
        return layers

    def create_delegates(self) -> list[tuple[int, str]]:
        """``CreateAllRankedDelegates``: (rank, name) of the delegates created, sorted by rank."""
        created: list[tuple[int, str]] = []
        requested = [("XNNPACK", bool(self.params["use_xnnpack"]), "use_xnnpack"),
                     ("EXTERNAL", bool(self.params["external_delegate_path"]), "external_delegate_path"),
                     ("GPU", bool(self.params["use_gpu"]), "use_gpu"),
                     ("Hexagon", bool(self.params["use_hexagon"]), "use_hexagon"),
                     ("NNAPI", bool(self.params["use_nnapi"]), "use_nnapi")]
        for name, wanted, flag in requested:
            if not wanted:
                continue
            if name == "XNNPACK":
                self.log.info("Created TensorFlow Lite XNNPACK delegate for CPU.")
            elif name == "EXTERNAL":
                path = str(self.params["external_delegate_path"])
                if name.upper() not in self.supported or _host_file(self.device, path) is None:
                    error = (f'dlopen failed: library "{path}" not found' if _host_file(self.device, path) is None
                             else f'dlopen failed: "{path}" has bad ELF magic')
                    self.log.info(f"Unable to load external delegate from : {path} ({error})")
                    continue
            elif name.upper() not in self.supported:
                if name == "GPU":
                    self.log.warn("GPU acceleration is unsupported on this platform.")
                elif name == "NNAPI":
                    self.log.warn("NNAPI acceleration is unsupported on this platform.")
                else:
                    self.log.warn("Could not create Hexagon delegate: platform may not support delegate or required "
                                  "libraries are missing")
                continue
            elif name == "GPU":
                self.log.info("Created TensorFlow Lite delegate for GPU.")
            elif name == "NNAPI":
                self.log.info("Created TensorFlow Lite delegate for NNAPI.")
            if not created:
                self.log.info(f"{name} delegate created.")
            created.append((self.given.get(flag, 0), name))
        return sorted(created)

    def run_loop(self, invoke: Callable[[], None], min_runs: int, min_secs: float, max_secs: float) -> list[int]:
        """``BenchmarkModel::Run(min_num_times, min_secs, max_secs, …)``: microsecond run times."""
        self.log.info(f"Running benchmark for at least {min_runs} iterations and at least {_g(min_secs)} seconds but "
                      f"terminate if exceeding {_g(max_secs)} seconds.")
        now_us = time.perf_counter_ns() // 1000
        min_finish_us = now_us + int(min_secs * 1e6)
        max_finish_us = now_us + int(max_secs * 1e6)
        times: list[int] = []
        run = 0
        while (run < min_runs or now_us < min_finish_us) and now_us <= max_finish_us:
            start = time.perf_counter_ns() // 1000
            invoke()
            end = time.perf_counter_ns() // 1000
            times.append(end - start)
            now_us = time.perf_counter_ns() // 1000
            run += 1
        self.log.info(_stat_line(times) + "\n")
        return times

    def __call__(self) -> tuple[bytes, int]:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.log.info("STARTING!")
        refusal = self.parse()
        if refusal:
            return refusal.encode(), 2
        if refusal is not None:
            return self.fail()
        graph = str(self.params["graph"])
        if not graph:
            self.log.error("Please specify the name of your TF Lite input file with --graph")
            return self.fail()
        layers = self.input_layers()
        if layers is None:
            return self.fail()
        self.log_params()

        start_rss = _maxrss_kb()
        init_start = time.perf_counter_ns() // 1000
        host = _host_file(self.device, graph)
        if host is None:
            self.log.error(f"Could not open '{graph}'.")
            self.log.error("The model allocation is null/empty")
            self.log.error(f"Failed to load model {graph}")
            return self.fail()
        with open(host, "rb") as f:
            content = f.read()
        if len(content) < 8 or content[4:8] != b"TFL3":
            self.log.error("The model is not a valid Flatbuffer buffer")
            self.log.error(f"Failed to load model {graph}")
            return self.fail()
        self.log.info(f"Loaded model {graph}")
        self.log.info("Initialized TensorFlow Lite runtime.")
        xnnpack_given = "use_xnnpack" in self.given
        if not xnnpack_given:  # the runtime's default XNNPACK delegate
            self.log.info("Created TensorFlow Lite XNNPACK delegate for CPU.")
        resolver = (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if xnnpack_given and not self.params["use_xnnpack"]
                    else OpResolverType.AUTO)
        threads = int(self.params["num_threads"])
        try:
            interpreter = Interpreter(model_path=host, num_threads=threads if threads > 0 else None,
                                      experimental_op_resolver_type=resolver)
        except (ValueError, RuntimeError) as exc:
            self.log.error(str(exc).strip() or "Failed to initialize the interpreter")
            return self.fail()
        inputs = interpreter.get_input_details()
        if layers and len(layers) != len(inputs):
            self.log.raw(f"FATAL: Inputs mismatch: Model inputs #:{len(layers)} expected: {len(inputs)}\n")
            return self.log.bytes(), 134  # TFLITE_TOOLS_CHECK_EQ aborts (SIGABRT)
        for (name, shape), detail in zip(layers, inputs, strict=False):
            if name != detail["name"]:
                self.log.warn(f"Tensor # {detail['index']} is named {detail['name']} but flags call it {name}")
            if len(shape) != len(detail["shape"]):
                self.log.error(f"Input tensor #{detail['index']} should have {len(detail['shape'])} dimensions!")
                return self.fail()
        for (_, shape), detail in zip(layers, inputs, strict=False):
            interpreter.resize_tensor_input(detail["index"], shape, strict=False)

        delegates = self.create_delegates()
        if len(delegates) >= 2:
            self.log.info(f"Going to apply {len(delegates)} delegates one after another.")
        for _, name in delegates:
            self.log.info(f"Explicitly applied {name} delegate, and the model graph will be completely executed by the "
                          "delegate.")
        try:
            interpreter.allocate_tensors()
        except RuntimeError:
            self.log.error("Failed to allocate tensors!")
            return self.fail()
        init_end = time.perf_counter_ns() // 1000
        init_rss = _maxrss_kb()
        startup_us = init_end - init_start
        size_mb = len(content) / 1e6
        if size_mb > 0:
            self.log.info(f"The input model file size (MB): {_g(size_mb)}")
        else:
            self.log.warn("Failed to get the input model file size.")
        self.log.info(f"Initialized session in {_g(startup_us / 1e3)}ms.")

        rng = np.random.default_rng()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], _random_input(tuple(detail["shape"]), detail["dtype"], rng))

        max_secs = float(self.params["max_secs"])  # type: ignore[arg-type]
        with _busy(self.battery):
            warmup = self.run_loop(interpreter.invoke, int(self.params["warmup_runs"]),  # type: ignore[call-overload]
                                   float(self.params["warmup_min_secs"]), max_secs)  # type: ignore[arg-type]
            measured = self.run_loop(interpreter.invoke, int(self.params["num_runs"]),  # type: ignore[call-overload]
                                     float(self.params["min_secs"]), max_secs)  # type: ignore[arg-type]
        end_rss = _maxrss_kb()

        warmup_first = warmup[0] if warmup else 0
        warmup_avg = sum(warmup) / len(warmup) if warmup else 0.0
        inference_avg = sum(measured) / len(measured) if measured else 0.0
        self.log.info(f"Inference timings in us: Init: {startup_us}, First inference: {warmup_first}, "
                      f"Warmup (avg): {_g(warmup_avg)}, Inference (avg): {_g(inference_avg)}")
        self.log.info("Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the "
                      "actual memory footprint of the model at runtime. Take the information at your discretion.")
        self.log.info(f"Memory footprint delta from the start of the tool (MB): init={_g((init_rss - start_rss) / 1024.0)} "
                      f"overall={_g((end_rss - start_rss) / 1024.0)}")
        return self.log.bytes(), 0


def benchmark_model(supported_delegates: Iterable[str] = (), battery: PhoneBattery | None = None) -> Program:
    """LiteRT's ``benchmark_model`` as an ``AdbDevice`` program. ``supported_delegates``: the delegates the
    emulated phone can create, by their providers' names (GPU, NNAPI, Hexagon, EXTERNAL; any case);
    XNNPACK (the CPU) always can."""
    supported = {name.upper() for name in supported_delegates}

    def program(argv: list[str], device: AdbDevice) -> tuple[bytes, int]:
        return _BenchmarkModel(argv, device, supported, battery)()

    return program


# ---------------------------------------------------------------------------------------------
# onnxruntime_perf_test
# ---------------------------------------------------------------------------------------------

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
                        f.write(f"{self.model_name()},{_g(cost)},{peak},{cpu},{run}\n")
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
        return [f"Min Latency: {_g(ordered[0])} s\n", f"Max Latency: {_g(ordered[-1])} s\n"] + [
            f"{label} Latency: {_g(value)} s\n" for label, value in at.items()]

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
        with _busy(self.battery):
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
                    self.out.append(f"iteration:{len(times)},time_cost:{_g(cost)}\n")
            run_end = time.perf_counter()
            cpu_end = os.times()
        wall_ticks = int(cpu_end.elapsed * clk) - int(cpu_start.elapsed * clk)
        proc_ticks = ((int(cpu_end.user * clk) - int(cpu_start.user * clk))
                      + (int(cpu_end.system * clk) - int(cpu_start.system * clk)))
        cpu = -1 if wall_ticks <= 0 else int(100.0 * proc_ticks / wall_ticks / (os.cpu_count() or 1))
        peak = _maxrss_kb() * 1024
        run_time = run_end - run_start
        average = total / len(times) * 1000 if times else math.nan
        self.out += [
            f"Session creation time cost: {_g(create_end - create_start)} s\n",
            f"First inference time cost: {first_ms} ms\n",
            f"Total inference time cost: {_g(total)} s\n",
            f"Total inference requests: {len(times)}\n",
            f"Average inference time cost total: {average:f} ms\n",
            f"Total inference run time: {_g(run_time)} s\n",
            f"Number of inferences per second: {_g(len(times) / run_time if run_time > 0 else 0.0)} \n",
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
