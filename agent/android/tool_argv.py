"""A job as the phone tool's command line: LiteRT's ``benchmark_model`` for ``.tflite``, ONNX Runtime's
``onnxruntime_perf_test`` for ``.onnx`` — or the one-line reason the tool cannot run it.

The job's options (``contract.RuntimeOptions``) and run length (``RunSettings``) map onto flags the
tools' sources define (``benchmark_model``: ``benchmark_tflite_model.cc`` and the delegate
providers; ``onnxruntime_perf_test``: ``command_args_parser.cc``). What a tool cannot do is refused,
never approximated:

- **Scenarios.** Both tools run one inference after another, so they measure SingleStream only.
  ``perf_test -c`` runs sessions concurrently, which is neither LoadGen's Offline (one query of all
  samples) nor its Server (Poisson arrivals), so Offline, Server and MultiStream are refused with
  that reason. Accuracy runs need outputs the tools do not write here, and are refused too.
- **Run length.** ``benchmark_model`` honours both of LoadGen's minimums itself (``--num_runs`` and
  ``--min_secs``: at least N runs and at least S seconds, asked with a 5 % margin: its clock counts
  the time between runs, which the summed latencies the run is judged by do not) and a
  ``--max_secs`` cap.
  ``perf_test`` has one or the other (``-m times -r N`` or ``-m duration -t S``): it runs for the
  minimum duration (whole seconds, rounded up), and the run is judged afterwards against the
  minimum query count.
- **Delegates and providers.** LiteRT's ``gpu``, ``nnapi``, ``hexagon`` and one external delegate
  library (a ``.so`` path on the phone) map to the tool's own flags; ONNX Runtime's CPU, NNAPI, QNN
  and XNNPACK execution providers to ``-e``. Anything else is refused with the names that work.
- **Inputs.** Both tools feed random inputs; ``--input`` values and dataset inputs are refused.
"""

from __future__ import annotations

import math

from agent.contract import RuntimeOptions
from agent.errors import SettingsError
from agent.scenarios.settings import RunSettings, Scenario

BENCHMARK_MODEL, PERF_TEST = "benchmark_model", "onnxruntime_perf_test"
TOOLS = {"tflite": BENCHMARK_MODEL, "onnx": PERF_TEST}
LITERT_DELEGATES = {"gpu": "--use_gpu=true", "nnapi": "--use_nnapi=true", "hexagon": "--use_hexagon=true"}
ORT_PROVIDERS = {"CPUExecutionProvider": "cpu", "NnapiExecutionProvider": "nnapi", "QNNExecutionProvider": "qnn",
                 "XnnpackExecutionProvider": "xnnpack"}
ORT_OPTIMIZATION = {"disable": "0", "basic": "1", "extended": "2", "all": "99"}
DEFAULT_MAX_SECS = 150.0  # benchmark_model's own default cap
# The run is judged by its runs' summed latency; the tools' own clocks also count the moments between runs,
# so they are asked for this much more than the minimum duration, and a run they end on time is not short.
DURATION_MARGIN = 1.05


def _common(tool: str, options: RuntimeOptions, settings: RunSettings) -> None:
    """What neither tool can do, refused in one line."""
    if settings.scenario != Scenario.SINGLE_STREAM:
        raise SettingsError(f"{tool} on a phone runs one inference after another, so it measures SingleStream only, not "
                            f"{settings.scenario.value}; use scenarios: [SingleStream] for phones, or a device with the agent")
    if settings.mode.scored:
        raise SettingsError(f"{tool} on a phone does not write the outputs accuracy is scored from; run accuracy on a "
                            "device with the agent")
    if options.inputs:
        raise SettingsError(f"{tool} feeds the model random inputs; inputs ({', '.join(options.inputs)}) cannot be set on "
                            "a phone: drop them for phone variants")


def benchmark_model(tool: str, model: str, options: RuntimeOptions, settings: RunSettings) -> list[str]:
    """``benchmark_model``'s command line for the model at ``model`` (a path on the phone)."""
    _common(BENCHMARK_MODEL, options, settings)
    argv = [tool, f"--graph={model}", f"--use_xnnpack={str(options.xnnpack).lower()}",
            f"--num_runs={max(1, settings.min_query_count)}", f"--min_secs={settings.min_duration_ms / 1000 * DURATION_MARGIN:g}",
            f"--max_secs={(settings.max_duration_ms / 1000 if settings.max_duration_ms else DEFAULT_MAX_SECS):g}"]
    if options.threads is not None:
        argv.append(f"--num_threads={options.threads}")
    external = [d for d in options.delegates if d.endswith(".so")]
    unknown = [d for d in options.delegates if d not in LITERT_DELEGATES and not d.endswith(".so")]
    if unknown:
        raise SettingsError(f"benchmark_model has no delegate {unknown[0]!r}; use {', '.join(LITERT_DELEGATES)} or the "
                            "path of a delegate library (.so) on the phone")
    if len(external) > 1:
        raise SettingsError(f"benchmark_model loads one external delegate library, not {len(external)}; keep one of "
                            f"{', '.join(external)}")
    argv += [LITERT_DELEGATES[d] for d in options.delegates if d in LITERT_DELEGATES]
    argv += [f"--external_delegate_path={path}" for path in external]
    if options.shapes:
        names = list(options.shapes)
        argv += [f"--input_layer={','.join(names)}",
                 "--input_layer_shape=" + ":".join(",".join(map(str, options.shapes[n])) for n in names)]
    return argv


def perf_test(tool: str, model: str, options: RuntimeOptions, settings: RunSettings) -> list[str]:
    """``onnxruntime_perf_test``'s command line for the model at ``model`` (a path on the phone): verbose, so
    every run's latency is printed, with random inputs (``-I``), for the minimum duration."""
    _common(PERF_TEST, options, settings)
    if options.shapes:
        raise SettingsError("onnxruntime_perf_test sets free dimensions by dimension name (-f), not input shapes by input; "
                            "drop shape for phone variants of ONNX models or give the model fixed shapes")
    providers = [p for p in options.providers if p != "CPUExecutionProvider"] or ["CPUExecutionProvider"]
    unknown = [p for p in providers if p not in ORT_PROVIDERS]
    if unknown or len(providers) > 1:
        what = f"no execution provider {unknown[0]!r}" if unknown else f"one execution provider at a time, not {providers}"
        raise SettingsError(f"onnxruntime_perf_test on a phone takes {what}; use one of {', '.join(ORT_PROVIDERS)}")
    argv = [tool, "-v", "-I", "-e", ORT_PROVIDERS[providers[0]], "-o", ORT_OPTIMIZATION[options.optimization_level],
            "-m", "duration", "-t", str(max(1, math.ceil(settings.min_duration_ms / 1000 * DURATION_MARGIN)))]
    if options.threads is not None:
        argv += ["-x", str(options.threads)]
    return [*argv, model]


def tool_for(model_format: str) -> str:
    """The tool that runs a model of ``model_format`` on a phone; other formats refused."""
    if model_format not in TOOLS:
        raise SettingsError(f"a phone runs .tflite models (benchmark_model) and .onnx models (onnxruntime_perf_test), "
                            f"not {model_format}; convert the model or run it on a device with the agent")
    return TOOLS[model_format]


def command(model_format: str, tool: str, model: str, options: RuntimeOptions, settings: RunSettings) -> list[str]:
    """The tool's command line for a model of ``model_format`` (``tflite`` or ``onnx``); other formats refused."""
    tool_for(model_format)
    return (benchmark_model if model_format == "tflite" else perf_test)(tool, model, options, settings)
