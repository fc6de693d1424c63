"""LiteRT's ``benchmark_model`` as an on-device program for the adb emulator (``AdbDevice.commands``).

Why: the bridge (``agent/android/tool_argv.py`` builds the command lines,
``agent/android/tool_output.py`` reads the output) can only be tested end to end against tools
that print what the real ones print, including how they fail. No phone is attached to the
machines this project is tested on, so this program runs the model that was pushed to the
emulated phone (its host file, ``device.host_path(path)``) with the REAL runtime on the host —
``ai_edge_litert`` for ``.tflite`` — so every latency printed is a real host run, and prints it
line for line as the tool's sources do. A delegate the emulated phone "has"
(``supported_delegates``) is announced exactly as the tool announces it, but the model still runs
on the host CPU: those lines are modelled, not evidence of delegate execution.

While warm-up and measured runs execute, the tool holds ``battery.busy()`` (a
``devices.emulators.phone_battery.PhoneBattery``) so the emulated fuel gauge sees the load.
The phone's other benchmark tool, ONNX Runtime's ``onnxruntime_perf_test``, is
``phone_perf_test``; the helpers both use are in ``phone_tool_common``.

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

Nothing here was captured from a phone: every line is built from the sources named above.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from devices.emulators.adb_device import Program
from devices.emulators.phone_tool_common import busy, maxrss_kb, ostream_g

if TYPE_CHECKING:
    from devices.emulators.adb_device import AdbDevice
    from devices.emulators.phone_battery import PhoneBattery

__all__ = ["benchmark_model"]


def _host_file(device: AdbDevice, path: str) -> str | None:
    """The host file behind a device path, or None when the tool could not open it (missing, outside root)."""
    try:
        host = device.host_path(path)
    except OSError:
        return None
    return host if os.path.isfile(host) and os.access(host, os.R_OK) else None


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
        return ostream_g(value)
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
        text = f"count={n} first={values[0]} curr={values[-1]} min={lo} max={hi} avg={ostream_g(avg)} std={std}"
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
        self.log.info(f"Running benchmark for at least {min_runs} iterations and at least {ostream_g(min_secs)} seconds but "
                      f"terminate if exceeding {ostream_g(max_secs)} seconds.")
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

        start_rss = maxrss_kb()
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
        init_rss = maxrss_kb()
        startup_us = init_end - init_start
        size_mb = len(content) / 1e6
        if size_mb > 0:
            self.log.info(f"The input model file size (MB): {ostream_g(size_mb)}")
        else:
            self.log.warn("Failed to get the input model file size.")
        self.log.info(f"Initialized session in {ostream_g(startup_us / 1e3)}ms.")

        rng = np.random.default_rng()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], _random_input(tuple(detail["shape"]), detail["dtype"], rng))

        max_secs = float(self.params["max_secs"])  # type: ignore[arg-type]
        with busy(self.battery):
            warmup = self.run_loop(interpreter.invoke, int(self.params["warmup_runs"]),  # type: ignore[call-overload]
                                   float(self.params["warmup_min_secs"]), max_secs)  # type: ignore[arg-type]
            measured = self.run_loop(interpreter.invoke, int(self.params["num_runs"]),  # type: ignore[call-overload]
                                     float(self.params["min_secs"]), max_secs)  # type: ignore[arg-type]
        end_rss = maxrss_kb()

        warmup_first = warmup[0] if warmup else 0
        warmup_avg = sum(warmup) / len(warmup) if warmup else 0.0
        inference_avg = sum(measured) / len(measured) if measured else 0.0
        self.log.info(f"Inference timings in us: Init: {startup_us}, First inference: {warmup_first}, "
                      f"Warmup (avg): {ostream_g(warmup_avg)}, Inference (avg): {ostream_g(inference_avg)}")
        self.log.info("Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the "
                      "actual memory footprint of the model at runtime. Take the information at your discretion.")
        self.log.info("Memory footprint delta from the start of the tool (MB): "
                      f"init={ostream_g((init_rss - start_rss) / 1024.0)} overall={ostream_g((end_rss - start_rss) / 1024.0)}")
        return self.log.bytes(), 0


def benchmark_model(supported_delegates: Iterable[str] = (), battery: PhoneBattery | None = None) -> Program:
    """LiteRT's ``benchmark_model`` as an ``AdbDevice`` program. ``supported_delegates``: the delegates the
    emulated phone can create, by their providers' names (GPU, NNAPI, Hexagon, EXTERNAL; any case);
    XNNPACK (the CPU) always can."""
    supported = {name.upper() for name in supported_delegates}

    def program(argv: list[str], device: AdbDevice) -> tuple[bytes, int]:
        return _BenchmarkModel(argv, device, supported, battery)()

    return program
