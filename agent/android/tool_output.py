"""The output of the phone's benchmark tools, read as their sources print it, and the end marker
that tells a finished command from one cut off.

**The end marker.** Every command the bridge runs on the phone ends with ``; echo __EDGEPERF_RC=$?``
(``marked``). Debian's adb 29 exits 0 with whatever output it had when the device vanishes in the
middle of a command (newer adb exits 255), so an exit status of 0 does not mean the command ran to
its end: only the marker does. ``finished`` returns the output before the marker and the command's
own exit status, or raises ``CutOff`` when the marker is absent — a cut-off output is never taken
for a finished run.

**LiteRT ``benchmark_model``** (``tflite/tools/benchmark/benchmark_model.cc``,
``BenchmarkLoggingListener::OnBenchmarkEnd``; the statistics line is ``tsl::Stat::OutputToStream``
from ``xla/tsl/util/stats_calculator.h``). It prints, through ``TFLITE_LOG(INFO)`` (``INFO: `` in
front on current builds, nothing on older ones):

- ``Initialized session in 119.515ms.``
- for the warm-up and then the measured runs, one statistics line in microseconds:
  ``count=1000 first=52162 curr=49785 min=49088 max=686105 avg=63743.2 std=60716 p5=49620
  median=51891 p95=68628`` (builds before the percentiles were added end after ``std=``);
- ``Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4,
  Inference (avg): 63743.2``;
- optionally ``Memory footprint delta from the start of the tool (MB): init=55.4961 overall=55.4961``
  or ``Peak memory footprint (MB): init=… overall=…``.

It gives no per-run latencies: a phone's SingleStream row from ``benchmark_model`` has min, max,
mean, and p50/p95 where the build prints them (``median``, ``p95``), and every other percentile
null — never derived from the mean and standard deviation.

**ONNX Runtime ``onnxruntime_perf_test``** (``onnxruntime/test/perftest/performance_runner.{h,cc}``).
With ``-v`` it prints every measured run, ``iteration:N,time_cost:SECONDS`` (``RunOneIteration``).
Current builds then print ``Session creation time cost: S s``, ``First inference time cost: N ms``
(the warm-up run, whole milliseconds), ``Total inference requests: N`` and ``Peak working set
size: N bytes``; older ones ``Total time cost:…``, ``Total iterations:…``, ``Average time cost:…
ms``. The per-run latencies are the run's own, so its percentiles are computed here by LoadGen's
nearest rank, the same ``sorted[floor(n·p)]`` the tool's own statistics use (``DumpToFile``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.errors import EdgeperfError, InferenceError

END = "__EDGEPERF_RC="
_END_LINE = re.compile(r"^__EDGEPERF_RC=(\d+)\s*$", re.MULTILINE)
_STAT = re.compile(r"\b(count|first|curr|min|max|avg|std|p5|median|p95)=([-+0-9.eE]+)")
_INIT = re.compile(r"Initialized session in ([0-9.eE+-]+)\s*ms")
_TIMINGS = re.compile(r"Inference timings in us: Init: ([0-9.eE+-]+), First inference: ([0-9.eE+-]+), "
                      r"Warmup \(avg\): ([0-9.eE+-]+), Inference \(avg\): ([0-9.eE+-]+)")
_MEMORY = re.compile(r"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
                     r"init=([0-9.eE+-]+) overall=([0-9.eE+-]+)")
_ITERATION = re.compile(r"^iteration:(\d+),time_cost:([0-9.eE+-]+)\s*$", re.MULTILINE)
_TOTAL_RUNS = re.compile(r"^Total (?:iterations:|inference requests: )(\d+)\s*$", re.MULTILINE)
_SESSION = re.compile(r"^Session creation time cost: ?([0-9.eE+-]+) s\s*$", re.MULTILINE)
_FIRST = re.compile(r"^First inference time cost: ?([0-9.eE+-]+) ms\s*$", re.MULTILINE)
_WORKING_SET = re.compile(r"^Peak working set size: ?(\d+) bytes\s*$", re.MULTILINE)


class CutOff(EdgeperfError):
    """A command's output ended before its end marker: the phone went away (or the tool was killed) mid-run."""


def marked(command: str) -> str:
    """``command`` as the bridge sends it: its exit status printed after it, on a line of its own."""
    return f"{command}; echo {END}$?"


def finished(output: str, what: str) -> tuple[str, int]:
    """The output of a ``marked`` command before its end marker, and the command's exit status; ``CutOff``
    naming ``what`` when the marker is missing (adb 29 exits 0 with a truncated output when a device vanishes)."""
    found = list(_END_LINE.finditer(output))
    if not found:
        raise CutOff(f"{what}: the output ends without the command's end marker: the phone went away or the tool was "
                     "killed mid-run, so the run is not counted; check the cable (adb devices) and run it again")
    last = found[-1]
    return output[:last.start()], int(last.group(1))


@dataclass(frozen=True)
class Stat:
    """One ``tsl::Stat`` line of ``benchmark_model``, in microseconds; ``p5``/``median``/``p95`` None on
    builds that do not print them."""

    count: int
    first: float
    curr: float
    min: float
    max: float
    avg: float
    std: float
    p5: float | None = None
    median: float | None = None
    p95: float | None = None


@dataclass(frozen=True)
class BenchmarkModelRun:
    """What ``benchmark_model`` reported: session init, the warm-up and measured runs' statistics and the
    tool's own summary (microseconds), and its memory footprint where it printed one (MB)."""

    init_ms: float
    warmup: Stat | None
    inference: Stat
    first_inference_us: float
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None


def _stat(line: str) -> Stat | None:
    values = dict(_STAT.findall(line))
    if not {"count", "first", "curr", "min", "max", "avg", "std"} <= values.keys():
        return None
    numbers = {k: float(v) for k, v in values.items()}
    return Stat(int(numbers.pop("count")), **numbers)


def parse_benchmark_model(text: str) -> BenchmarkModelRun:
    """``benchmark_model``'s output (the module docstring); ``InferenceError`` naming what is missing."""
    stats = [s for line in text.splitlines() if (s := _stat(line)) is not None]
    timings = _TIMINGS.search(text)
    if timings is None or not stats:
        missing = "its 'Inference timings in us' summary" if timings is None else "a statistics line (count=… avg=…)"
        raise InferenceError(f"benchmark_model's output has no {missing}: the tool failed or is not LiteRT's "
                             f"benchmark_model; its last line was {_last_line(text)!r}")
    init = _INIT.search(text)
    memory = _MEMORY.search(text)
    return BenchmarkModelRun(
        init_ms=float(init.group(1)) if init else float(timings.group(1)) / 1000,
        warmup=stats[0] if len(stats) > 1 else None,
        inference=stats[-1],
        first_inference_us=float(timings.group(2)),
        memory_init_mb=float(memory.group(1)) if memory else None,
        memory_overall_mb=float(memory.group(2)) if memory else None,
    )


@dataclass(frozen=True)
class PerfTestRun:
    """What ``onnxruntime_perf_test -v`` reported: every measured run's latency (s, in run order), and where
    the build prints them, session creation (s), the warm-up run (whole ms) and the peak working set (bytes)."""

    runs_s: list[float]
    session_s: float | None = None
    first_inference_ms: float | None = None
    peak_working_set_bytes: int | None = None


def _number(pattern: re.Pattern[str], text: str) -> float | None:
    found = pattern.search(text)
    return float(found.group(1)) if found else None


def parse_perf_test(text: str) -> PerfTestRun:
    """``onnxruntime_perf_test -v``'s output (the module docstring); ``InferenceError`` when the per-run lines are
    missing or fewer than the tool says it ran (a cut output, or a run without ``-v``)."""
    runs = [(int(n), float(s)) for n, s in _ITERATION.findall(text)]
    total = _TOTAL_RUNS.search(text)
    if not runs or total is None:
        what = ("no per-run 'iteration:N,time_cost:S' lines (run it with -v)" if not runs
                else "no 'Total inference requests:' (or 'Total iterations:') line")
        raise InferenceError(f"onnxruntime_perf_test's output has {what}; its last line was {_last_line(text)!r}")
    if [n for n, _ in runs] != list(range(1, len(runs) + 1)) or len(runs) != int(total.group(1)):
        raise InferenceError(f"onnxruntime_perf_test printed {len(runs)} runs but says it ran {total.group(1)}: the "
                             "output is incomplete; run it again")
    working_set = _number(_WORKING_SET, text)
    return PerfTestRun([s for _, s in runs], _number(_SESSION, text), _number(_FIRST, text),
                       None if working_set is None else int(working_set))


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
