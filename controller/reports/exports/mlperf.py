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
from agent.scenarios import early_stopping
from agent.stats import REPORTED_PERCENTILES
from controller.reports.exports import ExportError, safe_name

SUMMARY = "mlperf_log_summary.txt"
DETAIL = "mlperf_log_detail.txt"
ACCURACY_LOG = "mlperf_log_accuracy.json"
ACCURACY_TXT = "accuracy.txt"
NATIVE_SUT = "edgeperf-native"
NA = "N/A"
# LoadGen's reported percentiles (results.cc latency_percentiles) are the result's: the keys and fractions of one table
PERCENTILES = tuple(REPORTED_PERCENTILES.items())
TEST_MODES = {"performance": "PerformanceOnly", "accuracy": "AccuracyOnly"}
_RULE = "================================================"


def export_campaign(docs: list[dict[str, Any]], campaign: dict[str, Any], out_dir: Path, overwrite: bool = False) -> list[Path]:
    """Write ``docs`` (one campaign's results, in matrix order) under ``out_dir``; returns the files written.

    Repeats of the same device, model and scenario become ``run_1``, ``run_2``, … in the order
    given. A non-empty ``out_dir`` is refused unless ``overwrite`` is set, and even then only
    the ``<system>`` folders this export writes are replaced, and only if an earlier edgeperf
    export wrote them (their ``systems/<system>.json`` says ``submitter: edgeperf``): a
    mistyped ``--out`` must never cost anyone their files.
    """
    out_dir = Path(out_dir)
    systems = _unique_names([d["device"]["id"] for d in docs])
    models = _unique_names([d["model"]["name"] for d in docs], strip="zoo:")
    _prepare(out_dir, sorted(set(systems.values())), overwrite)

    written: list[Path] = []
    runs: Counter[Path] = Counter()
    accuracy: dict[Path, list[dict[str, Any]]] = defaultdict(list)
    by_system: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in docs:
        system = systems[doc["device"]["id"]]
        by_system[system].append(doc)
        base = out_dir / system / models[doc["model"]["name"]] / safe_name(doc["scenario"])
        if doc["mode"] == "accuracy":
            accuracy[base / "accuracy"].append(doc)
        else:
            runs[base] += 1
            written += _write_performance(doc, base / "performance" / f"run_{runs[base]}")
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
def loadgen_log_dir(doc: dict[str, Any]) -> Path | None:
    """LoadGen's log folder of a loadgen-engine run, when it is readable here and holds this run's logs.

    Fleet results name a folder on the device; a folder of that name here is used only if its
    summary is the one the document carries inline, so another run's logs are never copied.
    """
    logs = doc.get("logs") or {}
    if doc.get("engine") != "loadgen" or not logs.get("dir"):
        return None
    folder = Path(logs["dir"])
    try:
        text = (folder / SUMMARY).read_text(errors="replace")
    except OSError:
        return None
    inline = logs.get("summary")
    return folder if inline is None or text == inline else None


def inline_summary(doc: dict[str, Any]) -> str | None:
    """LoadGen's own summary as the result carries it (None for a native-engine run)."""
    return (doc.get("logs") or {}).get("summary") if doc.get("engine") == "loadgen" else None


def native_note(doc: dict[str, Any]) -> str:
    """What a log generated for a native-engine run says about where it came from."""
    return (f"edgeperf's native engine produced this run, not LoadGen: edgeperf {__version__} generated this log "
            f"from result {doc['run_id']} in LoadGen's format")


def loadgen_files(doc: dict[str, Any]) -> list[Path]:
    """LoadGen's own log files of ``doc`` that can be read here (empty when there are none)."""
    folder = loadgen_log_dir(doc)
    if folder is None:
        return []
    names = (doc.get("logs") or {}).get("files") or [SUMMARY, DETAIL, ACCURACY_LOG]
    return [folder / name for name in names if (folder / name).is_file()]


def _write_performance(doc: dict[str, Any], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    if files := loadgen_files(doc):
        return [Path(shutil.copyfile(src, folder / src.name)) for src in files]
    inline = inline_summary(doc)
    if inline:
        note = (f"edgeperf {__version__} generated this detail log from result {doc['run_id']}: LoadGen ran on "
                f"{doc['device']['id']} and its own detail log stayed there ({doc['logs'].get('dir', 'no folder recorded')}); "
                f"{SUMMARY} is LoadGen's own summary, carried in the result")
        summary = inline
    else:
        note = native_note(doc)
        summary = summary_log(doc)
    (folder / SUMMARY).write_text(summary, encoding="utf-8")
    (folder / DETAIL).write_text(detail_log(doc, note), encoding="utf-8")
    return [folder / SUMMARY, folder / DETAIL]


def _write_accuracy(docs: list[dict[str, Any]], folder: Path) -> list[Path]:
    """LoadGen's files of the first accuracy run that has them, and accuracy.txt for every run."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    source = next((files for d in docs if (files := loadgen_files(d))), [])
    for src in source:
        written.append(Path(shutil.copyfile(src, folder / src.name)))
    if not source:
        inline = next((s for d in docs if (s := inline_summary(d))), None)
        if inline:
            (folder / SUMMARY).write_text(inline, encoding="utf-8")
            written.append(folder / SUMMARY)
    (folder / ACCURACY_TXT).write_text("\n".join(accuracy_text(d) for d in docs), encoding="utf-8")
    return [*written, folder / ACCURACY_TXT]


def accuracy_text(doc: dict[str, Any]) -> str:
    """One run's accuracy.txt block; the first line is the ``accuracy=…%, good=…, total=…`` MLPerf scripts print."""
    acc = doc["kpis"].get("accuracy")
    dataset = doc.get("dataset") or {}
    about = (f"run_id={doc['run_id']} engine={doc['engine']} device={doc['device']['id']} model={doc['model']['name']} "
             f"sha256={doc['model']['sha256']} dataset={dataset.get('name', NA)} ({dataset.get('source', NA)}) "
             f"valid={str(bool(doc['valid'])).lower()}")
    if not acc or acc.get("top1") is None:
        return f"accuracy={NA} (no labels were scored in this run)\n{about}\n"
    n = acc.get("n")
    good = acc.get("correct", round(acc["top1"] * n) if n else NA)
    lo, hi = acc.get("ci95") or (None, None)
    lines = [f"accuracy={acc['top1'] * 100:.3f}%, good={good}, total={n}",
             f"top1={acc['top1']:.6f} ci95_wilson=[{_f6(lo)}, {_f6(hi)}] n={n}"]
    if acc.get("f1_macro") is not None:
        lines.append(f"precision_macro={_f6(acc.get('precision_macro'))} recall_macro={_f6(acc.get('recall_macro'))} "
                     f"f1_macro={_f6(acc.get('f1_macro'))}")
    return "\n".join([*lines, about]) + "\n"


def _f6(x: float | None) -> str:
    return NA if x is None else f"{x:.6f}"


# ---- LoadGen's summary, generated --------------------------------------------------------------
def _ns(ms: float | None) -> int | None:
    """The document's milliseconds back to LoadGen's integer nanoseconds (they were ns / 1e6)."""
    return None if ms is None else round(ms * 1e6)


def _ns_text(ms: float | None) -> str:
    return NA if ms is None else str(_ns(ms))


def _checks(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in doc.get("checks") or []}


def _met(doc: dict[str, Any], name: str) -> bool:
    """A check that is absent passed: it does not apply to the scenario (as LoadGen's)."""
    return bool(_checks(doc).get(name, {"ok": True})["ok"])


def _percentile_key(p: float) -> str | None:
    return next((key for key, q in PERCENTILES if abs(q - p) < 1e-9), None)


def _early_stopping_lines(doc: dict[str, Any]) -> list[str]:
    """LoadGen's "Early Stopping Result" text (results.cc ``EarlyStopping``) from the counts in ``doc``."""
    k, eff, scenario = doc["kpis"], doc["settings"]["effective"], doc["scenario"]
    n, p = int(k.get("query_count") or 0), float(eff["target_latency_percentile"])
    check = _checks(doc).get("early_stopping")
    if scenario == "Server":
        if check is None or check["ok"]:
            return [" * Run successful."]
        detail = check.get("detail", "")
        if needs := re.search(r"needs (\d+)", detail):  # the native verdict: "N queries, T over latency; needs H+T"
            more = f"at least {int(needs.group(1)) - n} more"
        elif loadgen_said := re.search(r"at least (\d+) more", detail):  # LoadGen's own text
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
             f" * Early stopping {p * 100:.1f}th percentile estimate: {_ns_text(k.get('early_stopping_latency_ms'))}"]
    if scenario == "SingleStream":
        need99 = early_stopping.min_queries(0.99)
        if n < need99 or k.get("early_stopping_p99_latency_ms") is None:
            lines += [" * Not enough queries processed for 99.0th percentile",
                      " early stopping estimate (would need to process at", f" least {need99} total queries)."]
        else:
            lines.append(f" * Early stopping 99.0th percentile estimate: {_ns(k['early_stopping_p99_latency_ms'])}")
    return lines


def _target_qps(doc: dict[str, Any]) -> float:
    eff = doc["settings"]["effective"]
    expected = max(1, int(eff.get("expected_latency_ns") or 1))
    return {
        "SingleStream": 1e9 / expected,
        "MultiStream": 1e9 / (expected * int(eff.get("samples_per_query") or 1)),
        "Server": float(eff.get("server_target_qps") or 0),
        "Offline": float(eff.get("offline_expected_qps") or 0),
    }[doc["scenario"]]


def loadgen_effective(doc: dict[str, Any]) -> dict[str, Any]:
    """The run's settings as LoadGen's ``TestSettingsInternal`` holds them (its ``effective_*`` keys).

    Offline is one query of every sample, so its samples per query is the sample count and its
    query minimum 1; options the engines never use (accuracy-log sampling, issue-same tests)
    are LoadGen's defaults.
    """
    eff, scenario = doc["settings"]["effective"], doc["scenario"]
    offline = scenario == "Offline"
    samples = int((doc.get("dataset") or {}).get("samples") or 0)
    spq = int(doc["kpis"].get("sample_count") or 0) if offline else int(eff.get("samples_per_query") or 1)
    min_queries = 1 if offline else int(eff.get("min_query_count") or 0)
    return {
        "samples_per_query": spq,
        "target_qps": _target_qps(doc),
        "target_latency_ns": round(float(eff.get("server_target_latency_ms") or 0) * 1e6) if scenario == "Server" else 0,
        "target_latency_percentile": eff.get("target_latency_percentile"),
        "max_async_queries": 0 if scenario == "Server" else 1,
        "min_duration_ms": eff.get("min_duration_ms", 0),
        "max_duration_ms": eff.get("max_duration_ms", 0),
        "min_query_count": min_queries,
        "max_query_count": eff.get("max_query_count", 0),
        "min_sample_count": spq if offline else min_queries * spq,  # Offline: every sample of its one query
        "qsl_rng_seed": 0,
        "sample_index_rng_seed": eff.get("sample_index_seed", 0),
        "schedule_rng_seed": eff.get("schedule_seed", 0),
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


def _test_parameters(doc: dict[str, Any]) -> list[str]:
    """LoadGen's "Test Parameters Used" block (``TestSettingsInternal::LogSummary``)."""
    eff = loadgen_effective(doc)
    labels = {"target_latency_ns": "target_latency (ns): ", "min_duration_ms": "min_duration (ms): ",
              "max_duration_ms": "max_duration (ms): "}
    skipped = ("target_latency_percentile", "min_sample_count")  # logged in the detail log only
    return [f"{labels.get(key, key + ' : ')}{f'{value:g}' if key == 'target_qps' else value}"
            for key, value in eff.items() if key not in skipped]


def _counts_tail(doc: dict[str, Any]) -> list[str]:
    """The warning and error count lines closing a summary: LoadGen's own where it ran (it counts
    warnings the document does not keep), otherwise none of either, as the native engine has none."""
    counts = [line for line in (inline_summary(doc) or "").splitlines() if " encountered" in line]
    if len(counts) != 2:
        counts = ["No warnings encountered during test.", "No errors encountered during test."]
    return ["", counts[0], "", counts[1], ""]


def summary_log(doc: dict[str, Any]) -> str:
    """``mlperf_log_summary.txt`` for a run, in LoadGen's layout (``results.cc PerformanceSummary::LogSummary``).

    Every number comes from the result document: latencies are its milliseconds back in ns,
    the verdict lines are its checks. Accuracy runs get what LoadGen writes for them, which is
    only the warning and error counts.
    """
    tail = _counts_tail(doc)
    if doc["mode"] == "accuracy":
        return "\n".join(tail)
    k, eff, scenario = doc["kpis"], doc["settings"]["effective"], doc["scenario"]
    lat = k.get("latency_ms") or {}
    p = float(eff["target_latency_percentile"])
    lines = [_RULE, "MLPerf Results Summary", _RULE, f"SUT name : {NATIVE_SUT}", f"Scenario : {scenario}",
             f"Mode     : {TEST_MODES[doc['mode']]}"]
    if scenario in ("SingleStream", "MultiStream"):
        key = _percentile_key(p)
        lines.append(f"{p * 100:.1f}th percentile latency (ns) : {_ns_text(lat.get(key)) if key else NA}")
    elif scenario == "Server":
        lines.append(f"Completed samples per second    : {float(k.get('throughput_sps') or 0):.2f}")
    else:
        lines.append(f"Samples per second: {float(k.get('throughput_sps') or 0):g}")

    checks = _checks(doc)
    min_queries = checks.get("min_queries", {"ok": True, "detail": ""})
    queries_word = "Skipped" if str(min_queries.get("detail", "")).startswith("skipped") else "Yes" if min_queries["ok"] else "NO"
    lines.append(f"Result is : {'VALID' if doc['valid'] else 'INVALID'}")
    if scenario == "Server":
        lines.append(f"  Performance constraints satisfied : {'Yes' if _met(doc, 'latency_bound') else 'NO'}")
    lines += [f"  Min duration satisfied : {'Yes' if _met(doc, 'min_duration') else 'NO'}",
              f"  Min queries satisfied : {queries_word}",
              f"  Early stopping satisfied: {'Yes' if _met(doc, 'early_stopping') else 'NO'}"]
    if not doc["valid"]:  # as LoadGen: early stopping explains itself below, the other constraints here
        lines.append("Recommendations:")
        lines += [f" * {c['advice'] or c['detail']}" for c in checks.values() if not c["ok"] and c["name"] != "early_stopping"]
    if scenario != "Offline":
        lines += ["Early Stopping Result:", *_early_stopping_lines(doc)]

    lines += ["", _RULE, "Additional Stats", _RULE]
    if scenario == "SingleStream":
        mean_ms = lat.get("mean")
        lines += [f"QPS w/ loadgen overhead         : {float(k.get('throughput_sps') or 0):.2f}",
                  f"QPS w/o loadgen overhead        : {(1e3 / mean_ms if mean_ms else 0):.2f}", ""]
    elif scenario == "MultiStream":
        lines.append("Per-query latency:  ")
    lines += [f"Min latency (ns)                : {_ns_text(lat.get('min'))}",
              f"Max latency (ns)                : {_ns_text(lat.get('max'))}",
              f"Mean latency (ns)               : {_ns_text(lat.get('mean'))}"]
    lines += [f"{q * 100:.2f} percentile latency (ns)   : {_ns_text(lat.get(key))}" for key, q in PERCENTILES]
    lines += ["", _RULE, "Test Parameters Used", _RULE, *_test_parameters(doc)]
    return "\n".join(lines + tail)


# ---- LoadGen's detail log, generated -----------------------------------------------------------
def _mllog(key: str, value: Any, time_ms: float) -> str:
    """One ``:::MLLOG`` line with the fields LoadGen writes (``logging.cc``); ``file`` names the generator."""
    event = {"key": key, "value": value, "time_ms": round(time_ms, 6), "namespace": "mlperf::logging",
             "event_type": "POINT_IN_TIME",
             "metadata": {"is_error": False, "is_warning": False, "file": "edgeperf/controller/exports/mlperf.py",
                          "line_no": 0, "pid": 0, "tid": 0}}
    return ":::MLLOG " + json.dumps(event)


def _power_stamp(unix_ns: int) -> str:
    """LoadGen's power_begin/power_end format: UTC ``%m-%d-%Y %H:%M:%S.mmm``."""
    stamp = datetime.fromtimestamp(unix_ns / 1e9, tz=timezone.utc)
    return stamp.strftime("%m-%d-%Y %H:%M:%S.") + f"{stamp.microsecond // 1000:03d}"


def _requested_events(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    """LoadGen's ``requested_*`` keys: what the engine was asked to run, i.e. the calibrated effective settings."""
    s, scenario, mode = doc["settings"]["effective"], doc["scenario"], doc["mode"]
    events: list[tuple[str, Any]] = [("requested_scenario", scenario), ("requested_test_mode", TEST_MODES[mode])]
    p = s.get("target_latency_percentile")
    if scenario == "SingleStream":
        events += [("requested_single_stream_expected_latency_ns", s.get("expected_latency_ns")),
                   ("requested_single_stream_target_latency_percentile", p)]
    elif scenario == "MultiStream":
        per_query_ns = (s.get("expected_latency_ns") or 0) * (s.get("samples_per_query") or 1)
        events += [("requested_multi_stream_expected_latency_ns", per_query_ns),
                   ("requested_multi_stream_target_latency_percentile", p),
                   ("requested_multi_stream_samples_per_query", s.get("samples_per_query"))]
    elif scenario == "Server":
        events += [("requested_server_target_qps", s.get("server_target_qps")),
                   ("requested_server_target_latency_ns", round(float(s.get("server_target_latency_ms") or 0) * 1e6)),
                   ("requested_server_target_latency_percentile", p)]
    else:
        events.append(("requested_offline_expected_qps", s.get("offline_expected_qps")))
    for key, field in (("min_duration_ms", "min_duration_ms"), ("max_duration_ms", "max_duration_ms"),
                       ("min_query_count", "offline_min_sample_count" if scenario == "Offline" else "min_query_count"),
                       ("max_query_count", "max_query_count"), ("sample_index_rng_seed", "sample_index_seed"),
                       ("schedule_rng_seed", "schedule_seed")):
        events.append((f"requested_{key}", s.get(field)))
    events.append(("requested_performance_sample_count_override", (doc.get("dataset") or {}).get("samples")))
    return events


def detail_log(doc: dict[str, Any], note: str) -> str:
    """``mlperf_log_detail.txt`` for a run: LoadGen's keys for its settings, window and results.

    ``note`` becomes the first ``generic_message``: where this log came from. Keys follow
    ``results.cc PerformanceSummary::LogDetail``; values LoadGen would compute from raw
    latencies that the document does not keep (per-sample latencies of MultiStream, Server's
    scheduled rate) are left out rather than invented.
    """
    k, scenario, mode = doc["kpis"], doc["scenario"], doc["mode"]
    lat = k.get("latency_ms") or {}
    end_ms = float(k.get("duration_s") or 0) * 1e3
    window = doc.get("window") or {}
    begin_ns = window.get("begin_unix_ns") or 0
    test_datetime = datetime.fromtimestamp(begin_ns / 1e9, tz=timezone.utc) if begin_ns else None
    start: list[tuple[str, Any]] = [
        ("generic_message", note),
        ("edgeperf_version", __version__),
        ("edgeperf_run_id", doc["run_id"]),
        ("test_datetime", test_datetime.strftime("%Y-%m-%dT%H:%M:%SZ") if test_datetime else doc.get("created_at")),
        ("sut_name", NATIVE_SUT if doc.get("engine") != "loadgen" else "PySUT"),
        ("qsl_reported_total_count", (doc.get("dataset") or {}).get("samples")),
        *_requested_events(doc),
        ("effective_scenario", scenario),
        ("effective_test_mode", TEST_MODES[mode]),
        *((f"effective_{key}", value) for key, value in loadgen_effective(doc).items()),
        ("generic_message", f"Starting {mode} mode"),
    ]
    end: list[tuple[str, Any]] = []
    if doc.get("ended_by"):
        end.append(("generic_message", doc["ended_by"]))
    if k.get("energy") and window.get("end_unix_ns"):
        end += [("power_begin", _power_stamp(begin_ns)), ("power_end", _power_stamp(window["end_unix_ns"]))]
    if mode == "performance":
        end += _result_events(doc, lat)
    end.append(("num_errors", len((doc.get("logs") or {}).get("errors") or [])))
    lines = [_mllog(key, value, 0.0) for key, value in start if value is not None]
    lines += [_mllog(key, value, end_ms) for key, value in end if value is not None]
    return "\n".join(lines) + "\n"


def _result_events(doc: dict[str, Any], lat: dict[str, Any]) -> list[tuple[str, Any]]:
    k, scenario, checks = doc["kpis"], doc["scenario"], _checks(doc)
    events: list[tuple[str, Any]] = [("result_validity", "VALID" if doc["valid"] else "INVALID")]
    if scenario == "Server":
        events.append(("result_perf_constraints_met", _met(doc, "latency_bound")))
    events += [("result_min_duration_met", _met(doc, "min_duration")), ("result_min_queries_met", _met(doc, "min_queries")),
               ("early_stopping_met", _met(doc, "early_stopping"))]
    if not doc["valid"]:
        failed = [c["advice"] or c["detail"] for c in checks.values() if not c["ok"] and c["name"] != "early_stopping"]
        events.append(("result_invalid_reason", " ".join(failed)))
    if scenario != "Offline":
        events.append(("early_stopping_result", " ".join(_early_stopping_lines(doc))))
    events.append(("result_query_count", k.get("query_count")))
    throughput = k.get("throughput_sps")
    if scenario == "SingleStream":
        mean_ms = lat.get("mean")
        events += [("result_qps_with_loadgen_overhead", throughput),
                   ("result_qps_without_loadgen_overhead", 1e3 / mean_ms if mean_ms else None),
                   ("early_stopping_latency_ss", _ns(k.get("early_stopping_latency_ms"))),
                   ("early_stopping_latency_ms", _ns(k.get("early_stopping_p99_latency_ms")))]
    elif scenario == "MultiStream":
        events += [("result_min_query_latency_ns", _ns(lat.get("min"))), ("result_max_query_latency_ns", _ns(lat.get("max"))),
                   ("result_mean_query_latency_ns", _ns(lat.get("mean")))]
        events += [(f"result_{q * 100:.2f}_percentile_per_query_latency_ns", _ns(lat.get(key))) for key, q in PERCENTILES]
        events.append(("early_stopping_latency_ms", _ns(k.get("early_stopping_latency_ms"))))
        return [(key, value) for key, value in events if value is not None]
    elif scenario == "Server":
        events.append(("result_completed_samples_per_sec", throughput))
    else:
        events.append(("result_samples_per_second", throughput))
    events += [("result_min_latency_ns", _ns(lat.get("min"))), ("result_max_latency_ns", _ns(lat.get("max"))),
               ("result_mean_latency_ns", _ns(lat.get("mean")))]
    events += [(f"result_{q * 100:.2f}_percentile_latency_ns", _ns(lat.get(key))) for key, q in PERCENTILES]
    return [(key, value) for key, value in events if value is not None]


# ---- system description ------------------------------------------------------------------------
def _joined(values: list[Any]) -> str:
    kept = [str(v) for v in dict.fromkeys(values) if v not in (None, "")]
    return ", ".join(kept) if kept else NA


def system_description(docs: list[dict[str, Any]], campaign: dict[str, Any]) -> dict[str, Any]:
    """``systems/<system>.json`` in the spirit of MLPerf's ``system_desc_id.json``, from one device's results.

    Facts come from the first result (the probe runs per job, so they agree but for
    temperatures); frameworks and engines are collected over all of them. Whatever the probe
    cannot know (sockets, storage, cooling) is ``N/A`` rather than a guess.
    """
    first = docs[0]
    facts = first["device"].get("facts") or {}
    gpus = [g for g in facts.get("gpus") or [] if isinstance(g, dict)]
    freq = facts.get("cpu_freq_mhz") or {}
    max_mhz = [f.get("max") for f in freq.values() if isinstance(f, dict) and f.get("max")]
    memory_mb = facts.get("memory_total_mb")
    baseline = first.get("baseline") or {}
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
        "system_name": first["device"]["id"],
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
        "framework": _joined([f"{d['runtime']['name']} {d['runtime']['version']}" for d in docs]),
        "other_software_stack": _joined(software),
        "sw_notes": "; ".join([
            f"device id {first['device']['id']}",
            f"edgeperf {__version__} (agent {_joined([d.get('agent_version') for d in docs])})",
            f"engines: {_joined([d.get('engine') for d in docs])}",
            f"accelerators used: {_joined([d['runtime'].get('accelerator') for d in docs])}",
            f"campaign {campaign.get('name', NA)} ({campaign.get('id', NA)})",
            *([f"datacenter baseline: {baseline.get('kind', NA)}"] if baseline else []),
        ]),
    }
