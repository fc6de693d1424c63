"""A campaign as an MLPerf-style results folder: LoadGen's logs where LoadGen ran, generated ones elsewhere.

People who know MLPerf read results as ``<system>/<model>/<scenario>/performance/run_N`` folders
of ``mlperf_log_summary.txt`` / ``mlperf_log_detail.txt`` and an ``accuracy`` folder, next to a
system description JSON; scripts written for MLPerf submissions parse exactly those files.
This exporter writes that layout for a campaign::

    out/<system>/systems/<system>.json
    out/<system>/<model>/<scenario>/performance/run_1/{mlperf_log_summary.txt, mlperf_log_detail.txt}
    out/<system>/<model>/<scenario>/accuracy/{mlperf_log_accuracy.json (LoadGen runs), accuracy.txt}

Where the loadgen engine ran and its log folder is readable here (a local or baseline run), the
files are LoadGen's own, copied byte for byte. Otherwise the result document is all there is:
a loadgen run gets its inline summary (LoadGen's text) and a detail log generated from the
document; a native-engine run gets both files generated in LoadGen's format from the same
numbers the document carries. Every generated detail log says so in a ``generic_message``
line, and a generated summary names ``edgeperf-native`` as its SUT, so nobody mistakes it for
LoadGen output. This is a results folder in MLPerf's shape, not a submission: the division is
``open`` and nothing here was audited.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter, defaultdict
from datetime import datetime, timezone
from hashlib import sha1
from pathlib import Path
from typing import Any

from agent import __version__
from agent.contract import Check, Result
from agent.scenarios import early_stopping
from agent.stats import REPORTED_PERCENTILES
from controller.analysis.scorecard import kpi_value
from controller.reports.exports import ExportError, safe_name

SUMMARY = "mlperf_log_summary.txt"
DETAIL = "mlperf_log_detail.txt"
ACCURACY_LOG = "mlperf_log_accuracy.json"
ACCURACY_TXT = "accuracy.txt"
NATIVE_SUT = "edgeperf-native"
NA = "N/A"
# LoadGen's reported percentiles (results.cc latency_percentiles) are the result's: the keys and fractions of one table
PERCENTILES = tuple(REPORTED_PERCENTILES.items())
# a robustness run's clean pass is LoadGen's AccuracyOnly run; its corrupted passes have no MLPerf form and are left out
TEST_MODES = {"performance": "PerformanceOnly", "accuracy": "AccuracyOnly", "robustness": "AccuracyOnly"}
_RULE = "================================================"


def export_campaign(results: list[Result], campaign: dict[str, Any], out_dir: Path, overwrite: bool = False) -> list[Path]:
    """Write ``results`` (one campaign's, in matrix order) under ``out_dir``; returns the files written.

    Repeats of the same device, model and scenario become ``run_1``, ``run_2``, … in the order
    given. A non-empty ``out_dir`` is refused unless ``overwrite`` is set, and even then only
    the ``<system>`` folders this export writes are replaced, and only if an earlier edgeperf
    export wrote them (their ``systems/<system>.json`` says ``submitter: edgeperf``): a
    mistyped ``--out`` must never cost anyone their files.
    """
    out_dir = Path(out_dir)
    systems = _unique_names([r.device.id for r in results])
    models = _unique_names([r.model.name for r in results], strip="zoo:")
    _prepare(out_dir, sorted(set(systems.values())), overwrite)

    written: list[Path] = []
    runs: Counter[Path] = Counter()
    accuracy: dict[Path, list[Result]] = defaultdict(list)
    by_system: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        system = systems[result.device.id]
        by_system[system].append(result)
        base = out_dir / system / models[result.model.name] / safe_name(result.scenario)
        if TEST_MODES[result.mode] == "AccuracyOnly":
            accuracy[base / "accuracy"].append(result)
        else:
            runs[base] += 1
            written += _write_performance(result, base / "performance" / f"run_{runs[base]}")
    for folder, group in accuracy.items():
        written += _write_accuracy(group, folder)
    for system, group in by_system.items():
        path = out_dir / system / "systems" / f"{system}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(system_description(group, campaign), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return sorted(written)


def _unique_names(values: list[str], strip: str = "") -> dict[str, str]:
    """Each distinct value's folder name; two values that sanitise alike get a short hash each."""
    names = {v: safe_name(v.removeprefix(strip)) for v in dict.fromkeys(values)}
    clashes = Counter(names.values())
    return {v: n if clashes[n] == 1 else f"{n}-{sha1(v.encode()).hexdigest()[:8]}" for v, n in names.items()}


def _prepare(out_dir: Path, systems: list[str], overwrite: bool) -> None:
    """Refuse to write over anything that is not an earlier edgeperf export of these systems."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise ExportError(f"{out_dir} is not empty; choose an empty folder, or pass --overwrite to replace an earlier export")
        for system in systems:
            folder = out_dir / system
            if not folder.exists():
                continue
            if not _written_by_us(folder / "systems" / f"{system}.json"):
                raise ExportError(
                    f"refusing to replace {folder}: no edgeperf export wrote it; move it aside or choose another --out")
            shutil.rmtree(folder)
    out_dir.mkdir(parents=True, exist_ok=True)


def _written_by_us(system_json: Path) -> bool:
    try:
        return json.loads(system_json.read_text()).get("submitter") == "edgeperf"
    except (OSError, ValueError, AttributeError):
        return False


# ---- which logs a run has ----------------------------------------------------------------------
def loadgen_log_dir(result: Result) -> Path | None:
    """LoadGen's log folder of a loadgen-engine run, when it is readable here and holds this run's logs.

    Fleet results name a folder on the device; a folder of that name here is used only if its
    summary is the one the result carries inline, so another run's logs are never copied.
    """
    logs = result.logs
    if result.engine != "loadgen" or not logs.dir:
        return None
    folder = Path(logs.dir)
    try:
        text = (folder / SUMMARY).read_text(errors="replace")
    except OSError:
        return None
    return folder if logs.summary is None or text == logs.summary else None


def inline_summary(result: Result) -> str | None:
    """LoadGen's own summary as the result carries it (None for a native-engine run)."""
    return result.logs.summary if result.engine == "loadgen" else None


def native_note(result: Result) -> str:
    """What a log generated for a native-engine run says about where it came from."""
    return (f"edgeperf's native engine produced this run, not LoadGen: edgeperf {__version__} generated this log "
            f"from result {result.run_id} in LoadGen's format")


def loadgen_files(result: Result) -> list[Path]:
    """LoadGen's own log files of ``result`` that can be read here (empty when there are none)."""
    folder = loadgen_log_dir(result)
    if folder is None:
        return []
    names = result.logs.files or (SUMMARY, DETAIL, ACCURACY_LOG)
    return [folder / name for name in names if (folder / name).is_file()]


def _write_performance(result: Result, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    if files := loadgen_files(result):
        return [Path(shutil.copyfile(src, folder / src.name)) for src in files]
    inline = inline_summary(result)
    if inline:
        note = (f"edgeperf {__version__} generated this detail log from result {result.run_id}: LoadGen ran on "
                f"{result.device.id} and its own detail log stayed there ({result.logs.dir or 'no folder recorded'}); "
                f"{SUMMARY} is LoadGen's own summary, carried in the result")
        summary = inline
    else:
        note = native_note(result)
        summary = summary_log(result)
    (folder / SUMMARY).write_text(summary, encoding="utf-8")
    (folder / DETAIL).write_text(detail_log(result, note), encoding="utf-8")
    return [folder / SUMMARY, folder / DETAIL]


def _write_accuracy(results: list[Result], folder: Path) -> list[Path]:
    """LoadGen's files of the first accuracy run that has them, and accuracy.txt for every run."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    source = next((files for r in results if (files := loadgen_files(r))), [])
    for src in source:
        written.append(Path(shutil.copyfile(src, folder / src.name)))
    if not source:
        inline = next((s for r in results if (s := inline_summary(r))), None)
        if inline:
            (folder / SUMMARY).write_text(inline, encoding="utf-8")
            written.append(folder / SUMMARY)
    (folder / ACCURACY_TXT).write_text("\n".join(accuracy_text(r) for r in results), encoding="utf-8")
    return [*written, folder / ACCURACY_TXT]


def accuracy_text(result: Result) -> str:
    """One run's accuracy.txt block; the first line is the ``accuracy=…%, good=…, total=…`` MLPerf scripts print."""
    acc, dataset = result.kpis.accuracy, result.dataset
    about = (f"run_id={result.run_id} engine={result.engine} device={result.device.id} model={result.model.name} "
             f"sha256={result.model.sha256} dataset={dataset.name if dataset else NA} ({dataset.source if dataset else NA}) "
             f"valid={str(result.valid).lower()}")
    if acc is None:
        return f"accuracy={NA} (no labels were scored in this run)\n{about}\n"
    n = acc.n
    good = acc.correct if acc.correct is not None else round(acc.top1 * n) if n else NA
    lo, hi = acc.ci95
    lines = [f"accuracy={acc.top1 * 100:.3f}%, good={good}, total={n}",
             f"top1={acc.top1:.6f} ci95_wilson=[{_f6(lo)}, {_f6(hi)}] n={n}"]
    if acc.f1_macro is not None:
        lines.append(f"precision_macro={_f6(acc.precision_macro)} recall_macro={_f6(acc.recall_macro)} "
                     f"f1_macro={_f6(acc.f1_macro)}")
    return "\n".join([*lines, about]) + "\n"


def _f6(x: float | None) -> str:
    return NA if x is None else f"{x:.6f}"


# ---- LoadGen's summary, generated --------------------------------------------------------------
def _ns(ms: float | None) -> int | None:
    """The document's milliseconds back to LoadGen's integer nanoseconds (they were ns / 1e6)."""
    return None if ms is None else round(ms * 1e6)


def _ns_text(ms: float | None) -> str:
    return NA if ms is None else str(_ns(ms))


def _checks(result: Result) -> dict[str, Check]:
    return {c.name: c for c in result.checks}


def _met(result: Result, name: str) -> bool:
    """A check that is absent passed: it does not apply to the scenario (as LoadGen's)."""
    check = _checks(result).get(name)
    return check is None or check.ok


def _percentile_key(p: float) -> str | None:
    return next((key for key, q in PERCENTILES if abs(q - p) < 1e-9), None)


def _early_stopping_lines(result: Result) -> list[str]:
    """LoadGen's "Early Stopping Result" text (results.cc ``EarlyStopping``) from the counts in ``result``."""
    k, scenario = result.kpis, result.scenario
    n, p = k.query_count, result.settings.effective.target_latency_percentile
    check = _checks(result).get("early_stopping")
    if scenario == "Server":
        if check is None or check.ok:
            return [" * Run successful."]
        if needs := re.search(r"needs (\d+)", check.detail):  # the native verdict: "N queries, T over latency; needs H+T"
            more = f"at least {int(needs.group(1)) - n} more"
        elif loadgen_said := re.search(r"at least (\d+) more", check.detail):  # LoadGen's own text
            more = f"at least {loadgen_said.group(1)} more"
        else:
            more = "more"
        return [" * Run unsuccessful.", f" * Processed {n} queries.", f" * Would need to run {more} queries,",
                " with the run being successful if every additional", " query were under latency."]
    need = early_stopping.min_queries(p)
    t = early_stopping.discard_count(n, p)
    if n < need or t is None:
        return [f" * Only processed {n} queries.", f" * Need to process at least {need} queries for early stopping."]
    lines = [f" * Processed at least {need} queries ({n}).", f" * Would discard {t - 1} highest latency queries.",
             f" * Early stopping {p * 100:.1f}th percentile estimate: {_ns_text(k.early_stopping_latency_ms)}"]
    if scenario == "SingleStream":
        need99 = early_stopping.min_queries(0.99)
        if n < need99 or k.early_stopping_p99_latency_ms is None:
            lines += [" * Not enough queries processed for 99.0th percentile",
                      " early stopping estimate (would need to process at", f" least {need99} total queries)."]
        else:
            lines.append(f" * Early stopping 99.0th percentile estimate: {_ns(k.early_stopping_p99_latency_ms)}")
    return lines


def _target_qps(result: Result) -> float:
    eff = result.settings.effective
    expected = max(1, eff.expected_latency_ns)
    return {
        "SingleStream": 1e9 / expected,
        "MultiStream": 1e9 / (expected * eff.samples_per_query),
        "Server": float(eff.server_target_qps),
        "Offline": float(eff.offline_expected_qps),
    }[result.scenario]


def loadgen_effective(result: Result) -> dict[str, Any]:
    """The run's settings as LoadGen's ``TestSettingsInternal`` holds them (its ``effective_*`` keys).

    Offline is one query of every sample, so its samples per query is the sample count and its
    query minimum 1; options the engines never use (accuracy-log sampling, issue-same tests)
    are LoadGen's defaults.
    """
    eff, scenario = result.settings.effective, result.scenario
    offline = scenario == "Offline"
    samples = result.dataset.samples if result.dataset else 0
    spq = result.kpis.sample_count if offline else eff.samples_per_query
    min_queries = 1 if offline else eff.min_query_count
    return {
        "samples_per_query": spq,
        "target_qps": _target_qps(result),
        "target_latency_ns": round(eff.server_target_latency_ms * 1e6) if scenario == "Server" else 0,
        "target_latency_percentile": eff.target_latency_percentile,
        "max_async_queries": 0 if scenario == "Server" else 1,
        "min_duration_ms": eff.min_duration_ms,
        "max_duration_ms": eff.max_duration_ms,
        "min_query_count": min_queries,
        "max_query_count": eff.max_query_count,
        "min_sample_count": spq if offline else min_queries * spq,  # Offline: every sample of its one query
        "qsl_rng_seed": 0,
        "sample_index_rng_seed": eff.sample_index_seed,
        "schedule_rng_seed": eff.schedule_seed,
        "accuracy_log_rng_seed": 0,
        "accuracy_log_probability": 0,
        "accuracy_log_sampling_target": 0,
        "print_timestamps": 0,
        "performance_issue_unique": 0,
        "performance_issue_same": 0,
        "performance_issue_same_index": 0,
        "performance_sample_count": samples,
        "accuracy_sample_count": samples,
    }


def _test_parameters(result: Result) -> list[str]:
    """LoadGen's "Test Parameters Used" block (``TestSettingsInternal::LogSummary``)."""
    eff = loadgen_effective(result)
    labels = {"target_latency_ns": "target_latency (ns): ", "min_duration_ms": "min_duration (ms): ",
              "max_duration_ms": "max_duration (ms): "}
    skipped = ("target_latency_percentile", "min_sample_count")  # logged in the detail log only
    return [f"{labels.get(key, key + ' : ')}{f'{value:g}' if key == 'target_qps' else value}"
            for key, value in eff.items() if key not in skipped]


def _counts_tail(result: Result) -> list[str]:
    """The warning and error count lines closing a summary: LoadGen's own where it ran (it counts
    warnings the result does not keep), otherwise none of either, as the native engine has none."""
    counts = [line for line in (inline_summary(result) or "").splitlines() if " encountered" in line]
    if len(counts) != 2:
        counts = ["No warnings encountered during test.", "No errors encountered during test."]
    return ["", counts[0], "", counts[1], ""]


def _latency(result: Result, name: str) -> float | None:
    """One of the result's latency figures (``p90``, ``mean``, …) in ms, by its KPI-dictionary key."""
    return kpi_value(result, f"latency_ms.{name}")


def summary_log(result: Result) -> str:
    """``mlperf_log_summary.txt`` for a run, in LoadGen's layout (``results.cc PerformanceSummary::LogSummary``).

    Every number comes from the result: latencies are its milliseconds back in ns, the verdict
    lines are its checks. Accuracy runs get what LoadGen writes for them, which is only the
    warning and error counts.
    """
    tail = _counts_tail(result)
    if TEST_MODES[result.mode] == "AccuracyOnly":
        return "\n".join(tail)
    k, scenario = result.kpis, result.scenario
    p = result.settings.effective.target_latency_percentile
    lines = [_RULE, "MLPerf Results Summary", _RULE, f"SUT name : {NATIVE_SUT}", f"Scenario : {scenario}",
             f"Mode     : {TEST_MODES[result.mode]}"]
    if scenario in ("SingleStream", "MultiStream"):
        key = _percentile_key(p)
        lines.append(f"{p * 100:.1f}th percentile latency (ns) : {_ns_text(_latency(result, key)) if key else NA}")
    elif scenario == "Server":
        lines.append(f"Completed samples per second    : {k.throughput_sps or 0:.2f}")
    else:
        lines.append(f"Samples per second: {float(k.throughput_sps or 0):g}")

    checks = _checks(result)
    min_queries = checks.get("min_queries")
    queries_word = ("Skipped" if min_queries is not None and min_queries.detail.startswith("skipped")
                    else "Yes" if _met(result, "min_queries") else "NO")
    lines.append(f"Result is : {'VALID' if result.valid else 'INVALID'}")
    if scenario == "Server":
        lines.append(f"  Performance constraints satisfied : {'Yes' if _met(result, 'latency_bound') else 'NO'}")
    lines += [f"  Min duration satisfied : {'Yes' if _met(result, 'min_duration') else 'NO'}",
              f"  Min queries satisfied : {queries_word}",
              f"  Early stopping satisfied: {'Yes' if _met(result, 'early_stopping') else 'NO'}"]
    if not result.valid:  # as LoadGen: early stopping explains itself below, the other constraints here
        lines.append("Recommendations:")
        lines += [f" * {c.advice or c.detail}" for c in checks.values() if not c.ok and c.name != "early_stopping"]
    if scenario != "Offline":
        lines += ["Early Stopping Result:", *_early_stopping_lines(result)]

    lines += ["", _RULE, "Additional Stats", _RULE]
    if scenario == "SingleStream":
        mean_ms = _latency(result, "mean")
        lines += [f"QPS w/ loadgen overhead         : {k.throughput_sps or 0:.2f}",
                  f"QPS w/o loadgen overhead        : {(1e3 / mean_ms if mean_ms else 0):.2f}", ""]
    elif scenario == "MultiStream":
        lines.append("Per-query latency:  ")
    lines += [f"Min latency (ns)                : {_ns_text(_latency(result, 'min'))}",
              f"Max latency (ns)                : {_ns_text(_latency(result, 'max'))}",
              f"Mean latency (ns)               : {_ns_text(_latency(result, 'mean'))}"]
    lines += [f"{q * 100:.2f} percentile latency (ns)   : {_ns_text(_latency(result, key))}" for key, q in PERCENTILES]
    lines += ["", _RULE, "Test Parameters Used", _RULE, *_test_parameters(result)]
    return "\n".join(lines + tail)


# ---- LoadGen's detail log, generated -----------------------------------------------------------
def _mllog(key: str, value: Any, time_ms: float, warning: bool = False) -> str:
    """One ``:::MLLOG`` line with the fields LoadGen writes (``logging.cc``); ``file`` names the generator."""
    event = {"key": key, "value": value, "time_ms": round(time_ms, 6), "namespace": "mlperf::logging",
             "event_type": "POINT_IN_TIME",
             "metadata": {"is_error": False, "is_warning": warning, "file": "edgeperf/controller/exports/mlperf.py",
                          "line_no": 0, "pid": 0, "tid": 0}}
    return ":::MLLOG " + json.dumps(event)


def _power_stamp(unix_ns: int) -> str:
    """LoadGen's power_begin/power_end format: UTC ``%m-%d-%Y %H:%M:%S.mmm``."""
    stamp = datetime.fromtimestamp(unix_ns / 1e9, tz=timezone.utc)
    return stamp.strftime("%m-%d-%Y %H:%M:%S.") + f"{stamp.microsecond // 1000:03d}"


def _requested_events(result: Result) -> list[tuple[str, Any]]:
    """LoadGen's ``requested_*`` keys: what the engine was asked to run, i.e. the calibrated effective settings."""
    s, scenario, mode = result.settings.effective, result.scenario, result.mode
    events: list[tuple[str, Any]] = [("requested_scenario", scenario), ("requested_test_mode", TEST_MODES[mode])]
    p = s.target_latency_percentile
    if scenario == "SingleStream":
        events += [("requested_single_stream_expected_latency_ns", s.expected_latency_ns),
                   ("requested_single_stream_target_latency_percentile", p)]
    elif scenario == "MultiStream":
        events += [("requested_multi_stream_expected_latency_ns", s.expected_latency_ns * s.samples_per_query),
                   ("requested_multi_stream_target_latency_percentile", p),
                   ("requested_multi_stream_samples_per_query", s.samples_per_query)]
    elif scenario == "Server":
        events += [("requested_server_target_qps", s.server_target_qps),
                   ("requested_server_target_latency_ns", round(s.server_target_latency_ms * 1e6)),
                   ("requested_server_target_latency_percentile", p)]
    else:
        events.append(("requested_offline_expected_qps", s.offline_expected_qps))
    min_queries = s.offline_min_sample_count if scenario == "Offline" else s.min_query_count
    events += [("requested_min_duration_ms", s.min_duration_ms), ("requested_max_duration_ms", s.max_duration_ms),
               ("requested_min_query_count", min_queries), ("requested_max_query_count", s.max_query_count),
               ("requested_sample_index_rng_seed", s.sample_index_seed), ("requested_schedule_rng_seed", s.schedule_seed),
               ("requested_performance_sample_count_override", result.dataset.samples if result.dataset else None)]
    return events


def detail_log(result: Result, note: str) -> str:
    """``mlperf_log_detail.txt`` for a run: LoadGen's keys for its settings, window and results.

    ``note`` becomes the first ``generic_message``: where this log came from. Keys follow
    ``results.cc PerformanceSummary::LogDetail``; values LoadGen would compute from raw
    latencies that the result does not keep (per-sample latencies of MultiStream, Server's
    scheduled rate) are left out rather than invented.
    """
    k, scenario, mode, window = result.kpis, result.scenario, result.mode, result.window
    end_ms = k.duration_s * 1e3
    begin_ns = window.begin_unix_ns if window else 0
    test_datetime = datetime.fromtimestamp(begin_ns / 1e9, tz=timezone.utc) if begin_ns else None
    start: list[tuple[str, Any]] = [
        ("generic_message", note),
        ("edgeperf_version", __version__),
        ("edgeperf_run_id", result.run_id),
        ("test_datetime", test_datetime.strftime("%Y-%m-%dT%H:%M:%SZ") if test_datetime else result.created_at),
        ("sut_name", NATIVE_SUT if result.engine != "loadgen" else "PySUT"),
        ("qsl_reported_total_count", result.dataset.samples if result.dataset else None),
        *_requested_events(result),
        ("effective_scenario", scenario),
        ("effective_test_mode", TEST_MODES[mode]),
        *((f"effective_{key}", value) for key, value in loadgen_effective(result).items()),
        ("generic_message", f"Starting {mode} mode"),
    ]
    end: list[tuple[str, Any]] = []
    if result.ended_by:
        end.append(("generic_message", result.ended_by))
    if k.energy is not None and window is not None and window.end_unix_ns:
        end += [("power_begin", _power_stamp(begin_ns)), ("power_end", _power_stamp(window.end_unix_ns))]
    if mode == "performance":
        end += _result_events(result)
    end.append(("num_errors", len(result.logs.errors)))
    lines = [_mllog(key, value, 0.0) for key, value in start if value is not None]
    # LoadGen's own warnings, as the result keeps them ("key: text"), with their flag
    lines += [_mllog(*warning.partition(": ")[::2], end_ms, warning=True) for warning in result.logs.warnings]
    lines += [_mllog(key, value, end_ms) for key, value in end if value is not None]
    return "\n".join(lines) + "\n"


def _result_events(result: Result) -> list[tuple[str, Any]]:
    k, scenario, checks = result.kpis, result.scenario, _checks(result)
    events: list[tuple[str, Any]] = [("result_validity", "VALID" if result.valid else "INVALID")]
    if scenario == "Server":
        events.append(("result_perf_constraints_met", _met(result, "latency_bound")))
    events += [("result_min_duration_met", _met(result, "min_duration")),
               ("result_min_queries_met", _met(result, "min_queries")),
               ("early_stopping_met", _met(result, "early_stopping"))]
    if not result.valid:
        failed = [c.advice or c.detail for c in checks.values() if not c.ok and c.name != "early_stopping"]
        events.append(("result_invalid_reason", " ".join(failed)))
    if scenario != "Offline":
        events.append(("early_stopping_result", " ".join(_early_stopping_lines(result))))
    events.append(("result_query_count", k.query_count))
    throughput = k.throughput_sps
    if scenario == "SingleStream":
        mean_ms = _latency(result, "mean")
        events += [("result_qps_with_loadgen_overhead", throughput),
                   ("result_qps_without_loadgen_overhead", 1e3 / mean_ms if mean_ms else None),
                   ("early_stopping_latency_ss", _ns(k.early_stopping_latency_ms)),
                   ("early_stopping_latency_ms", _ns(k.early_stopping_p99_latency_ms))]
    elif scenario == "MultiStream":
        events += [("result_min_query_latency_ns", _ns(_latency(result, "min"))),
                   ("result_max_query_latency_ns", _ns(_latency(result, "max"))),
                   ("result_mean_query_latency_ns", _ns(_latency(result, "mean")))]
        events += [(f"result_{q * 100:.2f}_percentile_per_query_latency_ns", _ns(_latency(result, key)))
                   for key, q in PERCENTILES]
        events.append(("early_stopping_latency_ms", _ns(k.early_stopping_latency_ms)))
        return [(key, value) for key, value in events if value is not None]
    elif scenario == "Server":
        events.append(("result_completed_samples_per_sec", throughput))
    else:
        events.append(("result_samples_per_second", throughput))
    events += [("result_min_latency_ns", _ns(_latency(result, "min"))), ("result_max_latency_ns", _ns(_latency(result, "max"))),
               ("result_mean_latency_ns", _ns(_latency(result, "mean")))]
    events += [(f"result_{q * 100:.2f}_percentile_latency_ns", _ns(_latency(result, key))) for key, q in PERCENTILES]
    return [(key, value) for key, value in events if value is not None]


# ---- system description ------------------------------------------------------------------------
def _joined(values: list[Any]) -> str:
    kept = [str(v) for v in dict.fromkeys(values) if v not in (None, "")]
    return ", ".join(kept) if kept else NA


def system_description(results: list[Result], campaign: dict[str, Any]) -> dict[str, Any]:
    """``systems/<system>.json`` in the spirit of MLPerf's ``system_desc_id.json``, from one device's results.

    Facts come from the first result (the probe runs per job, so they agree but for
    temperatures); frameworks and engines are collected over all of them. Whatever the probe
    cannot know (sockets, storage, cooling) is ``N/A`` rather than a guess.
    """
    first = results[0]
    facts = first.device.facts
    gpus = [g for g in facts.get("gpus") or [] if isinstance(g, dict)]
    freq = facts.get("cpu_freq_mhz") or {}
    max_mhz = [f.get("max") for f in freq.values() if isinstance(f, dict) and f.get("max")]
    memory_mb = facts.get("memory_total_mb")
    baseline = first.baseline or {}
    installed = facts.get("installed") or {}
    governor = facts.get("cpu_governor")
    hw_notes = [f"board: {facts['board']}" if facts.get("board") else "",
                f"cores: {facts['cpu_cores']}" if facts.get("cpu_cores") else "",
                f"cpu governor: {json.dumps(governor) if isinstance(governor, dict) else governor}" if governor else "",
                f"power mode: {facts['power_mode']}" if facts.get("power_mode") else "",
                f"arch: {facts['arch']}" if facts.get("arch") else ""]
    software = [facts.get("python"), f"kernel {facts['kernel']}" if facts.get("kernel") else None,
                f"L4T {facts['l4t']}" if facts.get("l4t") else None,
                *(v for v in installed.values() if v),
                *(f"NVIDIA driver {g['driver_version']}" for g in gpus if g.get("driver_version")),
                *(f"CUDA {g['cuda_driver_version']}" for g in gpus if g.get("cuda_driver_version"))]
    return {
        "submitter": "edgeperf",
        "division": "open",
        "system_name": first.device.id,
        "system_type": "datacenter" if baseline else "edge",
        "number_of_nodes": 1,
        "host_processor_model_name": facts.get("cpu_model") or NA,
        "host_processors_per_node": NA,
        "host_processor_core_count": facts.get("cpu_count_physical") or facts.get("cpu_count_logical") or NA,
        "host_processor_vcpu_count": facts.get("cpu_count_logical") or NA,
        "host_processor_frequency": f"{max(max_mhz)} MHz" if max_mhz else NA,
        "host_processor_caches": NA,
        "host_processor_interconnect": NA,
        "host_memory_capacity": f"{memory_mb / 1024:.1f} GB" if memory_mb else NA,
        "host_memory_configuration": NA,
        "host_storage_type": NA,
        "host_storage_capacity": NA,
        "host_networking": NA,
        "host_networking_topology": NA,
        "accelerator_model_name": _joined([g.get("name") for g in gpus]),
        "accelerators_per_node": len(gpus),
        "accelerator_memory_capacity": _joined([f"{g['memory_total_mib']} MiB" for g in gpus if g.get("memory_total_mib")]),
        "accelerator_memory_configuration": NA,
        "accelerator_frequency": _joined([f"{g['clocks_mhz']['sm_max']} MHz" for g in gpus
                                          if isinstance(g.get("clocks_mhz"), dict) and g["clocks_mhz"].get("sm_max")]),
        "accelerator_host_interconnect": NA,
        "accelerator_interconnect": NA,
        "accelerator_on-chip_memories": NA,
        "cooling": NA,
        "hw_notes": "; ".join(n for n in hw_notes if n) or NA,
        "operating_system": facts.get("os_release") or _joined([facts.get("os"), facts.get("kernel")]),
        "framework": _joined([f"{r.runtime.name} {r.runtime.version}" for r in results]),
        "other_software_stack": _joined(software),
        "sw_notes": "; ".join([
            f"device id {first.device.id}",
            f"edgeperf {__version__} (agent {_joined([r.agent_version for r in results])})",
            f"engines: {_joined([r.engine for r in results])}",
            f"accelerators used: {_joined([r.runtime.accelerator for r in results])}",
            f"campaign {campaign.get('name', NA)} ({campaign.get('id', NA)})",
            *([f"datacenter baseline: {baseline.get('kind', NA)}"] if baseline else []),
        ]),
    }
