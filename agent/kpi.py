"""The KPI dictionary (name, unit, direction, definition) and the ``kpis`` block of a result.

Reports and scorecards take their labels and "better" directions from ``KPIS``; docs/kpis.md is
generated from it (``python -m agent.kpi``) and a test keeps the two in step. Latency numbers
are the engine's verdict numbers: LoadGen's own for the loadgen engine, LoadGen's arithmetic on
raw latencies for the native engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.scenarios import early_stopping
from agent.scenarios.outcome import Outcome
from agent.scenarios.settings import Mode, Scenario
from agent.stats import REPORTED_PERCENTILES, LatencyHistogram, latency_summary_ns


@dataclass(frozen=True)
class Kpi:
    """One KPI: where it sits in ``kpis``, how it reads, and which way is better."""

    key: str  # dotted path inside the result's ``kpis`` block
    label: str
    unit: str
    better: str  # "lower" | "higher" | "" (descriptive)
    definition: str


def _latency(name: str, what: str) -> Kpi:
    return Kpi(f"latency_ms.{name}", f"latency {name}", "ms", "lower", what)


KPIS: tuple[Kpi, ...] = (
    _latency("min", "Fastest query."),
    _latency("mean", "Arithmetic mean over all queries."),
    _latency("p50", "Median, LoadGen nearest rank: sorted[floor(n*0.50)]."),
    _latency("p90", "sorted[floor(n*0.90)]; SingleStream's MLPerf metric before early stopping."),
    _latency("p95", "sorted[floor(n*0.95)]."),
    _latency("p97", "sorted[floor(n*0.97)]."),
    _latency("p99", "sorted[floor(n*0.99)]; MultiStream's and Server's percentile."),
    _latency("p999", "sorted[floor(n*0.999)]."),
    _latency("max", "Slowest query."),
    Kpi("early_stopping_latency_ms", "early-stopping latency", "ms", "lower",
        "LoadGen's early-stopping estimate of the scenario percentile (p90 SingleStream, p99 MultiStream): "
        "sorted[n-t] with t = max{i : n >= h(i)+i}; the number MLPerf submissions report. Null (never 0) where "
        "there is no estimate: under 64 queries for p90, 662 for p99."),
    Kpi("early_stopping_p99_latency_ms", "early-stopping p99", "ms", "lower",
        "SingleStream only: the same estimate for p99 (used to infer MultiStream), once n >= 662; null below "
        "that in both engines (LoadGen logs 0 there, which is not a latency)."),
    Kpi("latency_histogram", "latency histogram", "ns", "",
        "Counts per latency bucket of 3 significant digits; merged across runs and devices by adding "
        "counts, so fleet percentiles are read from merged histograms, never averaged."),
    Kpi("throughput_sps", "throughput", "samples/s", "higher",
        "SingleStream/MultiStream: (samples - samples per query) / time of the last issue; Server: "
        "(samples - 1) / time the last sample completed; Offline: samples / time the last sample completed."),
    Kpi("offered_qps", "offered load", "queries/s", "",
        "Server only: (queries - 1) / scheduled time of the last query, the load the arrival schedule offered "
        "(LoadGen's result_scheduled_samples_per_sec). Both engines draw the same schedule for the same seed, rate "
        "and minimums, so it differs from --target-qps by the Poisson draw, never by engine."),
    Kpi("query_count", "queries", "count", "", "Queries issued (Offline: 1)."),
    Kpi("latency_basis", "latency basis", "name", "",
        "sample (each latency is one sample's) or query (MultiStream: one query of several samples), as LoadGen counts them."),
    Kpi("sample_count", "samples", "count", "", "Samples answered."),
    Kpi("duration_s", "duration", "s", "", "From the first issue to the last completion."),
    Kpi("accuracy.top1", "top-1", "fraction", "higher", "Share of samples whose arg-max output equals the label."),
    Kpi("accuracy.correct", "correct samples", "count", "", "Samples whose prediction equals the label (top-1 × n)."),
    Kpi("accuracy.ci95", "top-1 95% CI", "fraction", "", "Wilson score interval of top-1 at 95 % (z = 1.96)."),
    Kpi("accuracy.precision_macro", "precision (macro)", "fraction", "higher",
        "Mean per-class precision over classes seen in labels or predictions (0 where never predicted)."),
    Kpi("accuracy.recall_macro", "recall (macro)", "fraction", "higher", "Mean per-class recall over the same classes."),
    Kpi("accuracy.f1_macro", "F1 (macro)", "fraction", "higher", "Mean per-class F1 over the same classes."),
    Kpi("accuracy.confusion_matrix", "confusion matrix", "count", "", "rows: true class, columns: predicted class."),
    Kpi("accuracy.n", "scored samples", "count", "", "Samples scored (the whole dataset, each once)."),
    Kpi("accuracy.correct_bits", "per-sample correctness", "bitset", "",
        "Bit i set when the i-th scored sample (dataset order) was right: numpy.packbits (first sample in the "
        "high bit of byte 0), base64. Pairs two runs over the same samples sample by sample."),
    Kpi("accuracy.samples_sha256", "samples fingerprint", "sha256", "",
        "sha256 over the scored samples as the dataset holds them, in order (header, inputs, int64 labels): "
        "equal fingerprints, the same samples, whatever the dataset is called."),
    Kpi("accuracy.postprocess", "post-processing", "name", "",
        "How outputs became class ids: arg-max of the first output plus `class_offset` (−1 where output 0 is a "
        "background class, as MLPerf's TensorFlow classifiers), and `rule`: the zoo manifest, or what was inferred."),
    Kpi("task_accuracy.value", "task accuracy", "fraction", "higher",
        "A task scored by its own MLPerf metric (`task_accuracy.metric`): COCO mAP@[.50:.95] for detection "
        "(pycocotools, as MLPerf's accuracy-coco.py), ROC AUC over clips for anomaly detection (MLPerf Tiny AD)."),
    Kpi("task_accuracy.metric", "task metric", "name", "", "mAP (COCO detection) or AUC (anomaly detection)."),
    Kpi("task_accuracy.interval", "task interval method", "text", "", "How `ci95` was made, or why there is none."),
    Kpi("task_accuracy.postprocess", "post-processing", "name", "",
        "How the outputs were read: kind (detection-boxes, autoencoder), class offset, and where the choice came from."),
    Kpi("task_accuracy.details", "task details", "mixed", "",
        "The metric's secondary figures: mAP@.50 and @.75 and detection counts; AUC per machine id and clip counts."),
    Kpi("task_accuracy.samples_sha256", "samples fingerprint", "sha256", "", "As `accuracy.samples_sha256`."),
    Kpi("task_accuracy.ci95", "task accuracy 95% CI", "fraction", "",
        "AUC: DeLong's 95 % interval; mAP: none (pycocotools gives none; `interval` says so)."),
    Kpi("task_accuracy.n", "scored items", "count", "", "Images (mAP) or clips (AUC) scored."),
    Kpi("accuracy.class_counts", "per-class counts", "count", "",
        "Per class id: (samples of the class, samples predicted as it, of those right): precision = right / predicted, "
        "recall = right / samples, F1 = 2·right / (samples + predicted); the scorecard gives each its interval."),
    Kpi("robustness.family", "corruption family", "name", "", "image (ImageNet-C's corruptions) or audio (noise at an SNR)."),
    Kpi("robustness.scores", "accuracy under corruption", "fraction", "higher",
        "Per corruption and severity 1-5: top-1 of the same samples corrupted (`accuracy`, with its per-sample bits), "
        "`drop_pp` = clean top-1 − corrupted top-1 in percentage points with Newcombe's paired 95 % interval "
        "(`drop_ci95_pp`), and the discordant counts (`clean_only`, `corrupted_only`)."),
    Kpi("robustness.mean_top1", "mean corruption accuracy", "fraction", "higher",
        "Mean of top-1 over every corruption and severity scored (ImageNet-C's mCA, unnormalised)."),
    Kpi("robustness.mean_drop_pp", "mean drop under corruption", "pp", "lower",
        "Clean top-1 − mean corruption accuracy, in percentage points."),
    Kpi("robustness.mean_drop_ci95_pp", "mean drop 95% CI", "pp", "",
        "Student's t interval of the mean over samples of (clean right − share of corruptions right): paired, the same samples."),
    Kpi("robustness.method", "robustness method", "text", "", "How the corruptions were applied and the intervals made."),
    *(Kpi(f"{block}.{name}", f"{what} {label}", unit, "lower" if name == "gap" else "",
          text if isinstance(text, str) else text[block == "class_balance"])
      for block, what in (("fairness", "fairness:"), ("class_balance", "class balance:")) for name, label, unit, text in (
        ("kind", "kind", "name", ("`fairness`: accuracy per group of inputs, the groups a `--groups` file (or a job's "
                                  "`groups`) names; null without groups.",
                                  "`class balance`: recall per labelled class, on every classification accuracy or "
                                  "robustness run. Not fairness: classes are what the model predicts, groups are who "
                                  "or where inputs come from.")),
        ("groups", "per group", "fraction", ("Per group, sorted by name: n, correct, rate (the group's top-1) with its "
                                             "Wilson 95 % interval, and recall_macro (mean recall over the classes the "
                                             "group's samples have).",
                                             "Per labelled class (named by class id): n (its samples), correct, rate (its "
                                             "recall) with its Wilson 95 % interval.")),
        ("gap", "largest gap", "fraction", "Best rate − worst rate (0: every group or class served alike; lower is more even)."),
        ("gap_ci95", "gap 95% CI", "fraction", "Newcombe's hybrid score interval for the difference of two independent "
         "proportions, each Wilson interval at the Bonferroni level over all k(k−1)/2 pairs, so it holds for the pair "
         "chosen after looking (two groups: the plain 95 % interval); an interval excluding 0 is a real gap."),
        ("best", "best group", "name", "The group (class id) with the highest rate."),
        ("worst", "worst group", "name", "The group (class id) with the lowest rate."),
        ("confidence_each_pair", "per-pair confidence", "fraction", "1 − 0.05 / (k(k−1)/2) for k groups (classes)."),
        ("method", "method", "text", "How the rates and the gap's interval were made."),
        ("ungrouped", "ungrouped samples", "count", ("Scored samples the groups give no group (\"\"): left out of every rate.",
                                                     "Always 0: every labelled sample has a class.")),
        ("source", "groups source", "text", ("Where the groups came from: the file and its sha256, or the job's groups.",
                                             "The dataset's labels.")),
    )),
    Kpi("energy.source", "power source", "name", "",
        "ina219 | serial | jtop | nvml | rapl | battery | estimate; `energy` is null without --power."),
    Kpi("energy.measured", "measured", "bool", "", "False only for the estimate (CPU use x device profile)."),
    Kpi("energy.rail", "rail", "name", "", "What the source measures: the board's input, a GPU, a CPU package …"),
    Kpi("energy.nominal_rate_hz", "nominal power rate", "Hz", "", "The rate the source is configured for (0: unknown)."),
    Kpi("energy.source_detail", "source detail", "mixed", "", "What the source said about itself (address, port, firmware, …)."),
    Kpi("energy.samples", "power samples", "count", "",
        "Readings the source delivered while the meter ran: the window's and those around it."),
    Kpi("energy.window_samples", "window samples", "count", "", "Readings inside the measured window."),
    Kpi("energy.window_s", "window", "s", "", "The measured window's length, the one energy is integrated over."),
    Kpi("energy.method", "integration", "name", "",
        "trapezoid (power sources: piecewise linear between readings) or counter (RAPL, NVML energy: edges interpolated)."),
    Kpi("energy.max_gap_s", "longest gap", "s", "lower", "The longest stretch of the window without a reading."),
    Kpi("energy.energy_j", "window energy", "J", "lower", "Energy integrated over exactly the measured window."),
    Kpi("energy.warnings", "power warnings", "text", "",
        "Coverage and quality: few samples, gaps, a starved sampler, edges not covered, flagged readings, an estimate."),
    Kpi("energy.trace", "power trace", "W over s", "",
        "Power over the window and a tenth either side, thinned for a plot (`t_s`, `w`, `window_s`)."),
    Kpi("energy.sample_rate_hz", "power sample rate", "Hz", "higher", "Power readings per second inside the window."),
    Kpi("energy.avg_power_w", "average power", "W", "lower", "Energy over the measured window / its duration."),
    Kpi("energy.idle_power_w", "idle power", "W", "lower", "Mean power over the idle baseline taken before the run."),
    Kpi("energy.energy_per_inference_mj", "energy / inference", "mJ", "lower",
        "Energy integrated (trapezoid, or counter difference) over exactly the measured window, divided by samples."),
    Kpi("energy.energy_per_inference_above_idle_mj", "energy / inference above idle", "mJ", "lower",
        "(window energy - idle power x window) / samples: what the inferences themselves cost."),
    Kpi("energy.inferences_per_joule", "inferences / J", "1/J", "higher", "Samples / window energy."),
    Kpi("energy.mlperf.mj_per_query", "MLPerf energy", "mJ/query", "lower",
        "SingleStream/MultiStream: avg power x window x 1000 / queries (MLPerf Power's edge unit)."),
    Kpi("energy.mlperf.samples_per_joule", "MLPerf efficiency", "samples/J", "higher",
        "Offline/Server: samples / window energy, reported with the average power in W."),
    Kpi("energy.mlperf.metric", "MLPerf power metric", "name", "",
        "mJ/query (SingleStream, MultiStream) or W (Offline, Server)."),
    Kpi("energy.mlperf.avg_power_w", "MLPerf power", "W", "lower", "Offline/Server: the average power MLPerf Power reports."),
    Kpi("energy.gco2e_per_1000_inferences", "carbon", "gCO2e/1000 inf", "lower",
        "Energy per inference x 1000 in kWh x grid_intensity_g_per_kwh (default 475, the world average)."),
    Kpi("energy.grid_intensity_g_per_kwh", "grid intensity", "gCO2e/kWh", "",
        "The grid's carbon intensity the carbon figure used (--grid-intensity; default 475, the world average)."),
    Kpi("thermals.max_before_c", "hottest before", "°C", "", "Hottest thermal zone when the run started."),
    Kpi("thermals.max_after_c", "hottest after", "°C", "lower", "Hottest thermal zone when the run ended."),
    Kpi("thermals.throttled", "throttled", "bool", "",
        "Pi firmware throttle bits active or newly set during the run, or CPU frequency below max under `performance`."),
    Kpi("thermals.throttle_reasons", "throttle reasons", "text", "", "Why `throttled` is true, one line per cause."),
    Kpi("thermals.pi_throttled", "Pi throttle bits", "hex", "",
        "The Pi firmware's throttle bits after the run (vcgencmd get_throttled)."),
    Kpi("thermals.cooldown.waited_s", "cooldown", "s", "", "Seconds waited for --cooldown-below before the run."),
    Kpi("thermals.cooldown.target_c", "cooldown target", "°C", "", "--cooldown-below: the hottest zone must be below this."),
    Kpi("thermals.cooldown.timeout_s", "cooldown timeout", "s", "", "--cooldown-timeout: the wait's limit."),
    Kpi("thermals.cooldown.start_c", "cooldown start", "°C", "", "Hottest zone when the wait began."),
    Kpi("thermals.cooldown.end_c", "cooldown end", "°C", "", "Hottest zone when the wait ended."),
    Kpi("thermals.cooldown.reached", "cooled", "bool", "", "Whether the target was reached before the timeout."),
    Kpi("memory.peak_rss_mb", "peak RSS", "MB", "lower",
        "Peak resident set of the benchmark process (runtime, model, data and Python), 1 MB = 2^20 bytes; read "
        "after the result is built, so scoring and post-run statistics count."),
    Kpi("memory.model_rss_mb", "model RSS", "MB", "lower",
        "Resident set added by loading the model session (the runtime's libraries are imported before)."),
    Kpi("model_size_mb", "model size", "MB", "lower", "Bytes of the model file (or package) on disk / 2^20."),
    Kpi("model_parameters", "parameters", "count", "", "Weight and bias elements read from the model file."),
    Kpi("load_time_ms", "load time", "ms", "lower",
        "Creating the runtime session: parse, allocate, delegate/EP setup, timed around the runtime's own call; "
        "imports (done first) and edgeperf's reading of the model's parameters are outside it."),
    Kpi("first_inference_ms", "first inference", "ms", "lower", "The first run after loading, before any warm-up."),
    Kpi("cpu.process_pct", "CPU (process)", "% of one core", "lower",
        "CPU time of the benchmark process over the measured window / wall time (200 = two cores busy)."),
    Kpi("cpu.system_pct", "CPU (system)", "% of all cores", "lower", "Whole-machine CPU use over the window."),
)
BY_KEY = {k.key: k for k in KPIS}


def _ms(ns: float | None) -> float | None:
    return None if ns is None else ns / 1e6


def _metric_latencies(o: Outcome) -> np.ndarray:
    """Per-query raw latencies for MultiStream (its metric), per-sample otherwise; empty from loadgen."""
    return o.query_latencies_ns if o.settings.scenario == Scenario.MULTI_STREAM else o.sample_latencies_ns


def _binned_summary_ns(h: LatencyHistogram) -> dict[str, float]:
    """The latency table read from a histogram, to its resolution: LoadGen's accuracy mode reports none."""
    if not h.n:
        return {}
    mean = sum(bucket * n for bucket, n in h.counts.items()) / h.n
    percentiles = {name: h.percentile(p) for name, p in REPORTED_PERCENTILES.items()}
    return {"min": min(h.counts), "mean": mean} | percentiles | {"max": max(h.counts)}


def _throughput(o: Outcome) -> float | None:
    if o.reported.get("throughput_sps"):
        return float(o.reported["throughput_sps"])
    s = o.settings
    streamed = s.scenario in (Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM) and s.mode == Mode.PERFORMANCE
    if streamed and o.final_issue_ns:
        return (o.sample_count - s.samples_per_query) / (o.final_issue_ns / 1e9)
    if not o.last_done_ns:
        return None
    if s.scenario == Scenario.SERVER and s.mode == Mode.PERFORMANCE:
        return (o.sample_count - 1) / (o.last_done_ns / 1e9)
    return o.sample_count / (o.last_done_ns / 1e9)


def _offered_qps(o: Outcome) -> float | None:
    """Server's offered load as scheduled; LoadGen's own figure under loadgen (it keeps no raw times)."""
    if o.settings.scenario != Scenario.SERVER or o.settings.mode.scored:
        return None
    if o.reported:
        return o.reported.get("offered_qps")
    return (o.query_count - 1) / (o.final_scheduled_ns / 1e9) if o.final_scheduled_ns else None


def _early_stopping_ns(o: Outcome, latencies: np.ndarray) -> tuple[float | None, float | None]:
    if o.reported:
        return o.reported.get("early_stopping_ns"), o.reported.get("early_stopping_p99_ns")
    if o.settings.mode.scored or o.settings.scenario not in (Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM):
        return None, None
    ordered = np.sort(latencies)
    p99 = early_stopping.estimate(ordered, 0.99) if o.settings.scenario == Scenario.SINGLE_STREAM else None
    return early_stopping.estimate(ordered, o.settings.target_latency_percentile), p99


def kpis_of(o: Outcome, accuracy: dict[str, Any] | None, extra: dict[str, Any]) -> dict[str, Any]:
    """The result's ``kpis`` block for an outcome, its accuracy and the session/resource figures."""
    latencies = _metric_latencies(o)
    histogram = o.latency_histogram if o.latency_histogram is not None else LatencyHistogram.of(latencies)
    summary = o.reported.get("latency_ns") or latency_summary_ns(latencies) or _binned_summary_ns(histogram)
    es, es99 = _early_stopping_ns(o, latencies)
    return {
        "latency_ms": {k: _ms(v) for k, v in summary.items()},
        "latency_basis": "query" if o.settings.scenario == Scenario.MULTI_STREAM else "sample",
        "early_stopping_latency_ms": _ms(es),
        "early_stopping_p99_latency_ms": _ms(es99),
        "latency_histogram": histogram.to_dict(),
        "throughput_sps": _throughput(o),
        "offered_qps": _offered_qps(o),
        "query_count": o.query_count,
        "sample_count": o.sample_count,
        "duration_s": o.last_done_ns / 1e9,
        "accuracy": accuracy,
    } | extra


# How the controller's views summarise these KPIs: (view, statistic, interval or spread). Kept
# next to the dictionary so that docs/kpis.md states, for every number a user sees, how it is made.
SCORECARD_VIEWS: tuple[tuple[str, str, str], ...] = (
    ("scorecard row: latency p50/p90/p99, early stopping, throughput, energy, power, RSS, size, load time",
     "mean over the row's runs of each run's own value (a run's percentiles are its engine's: LoadGen's own under "
     "`--engine loadgen`)",
     "3+ runs: Student's t 95 % interval of the mean `[lo, hi]` (`method: t`); 2 runs: their range `(lo–hi)`, not a "
     "confidence interval (`range`); 1 run: none"),
    ("scorecard row: top-1",
     "correct / scored samples, each distinct sample of a dataset counted once (runs over the same dataset: per-sample "
     "mean correctness)", "Wilson 95 %"),
    ("scorecard row: P/R/F1 macro", "mean over the classes present in labels or predictions of each class's precision, "
     "recall and F1 (0 where a class is never predicted), from class counts pooled as top-1 (runs over the same samples: "
     "mean counts; over different samples: summed)", "bootstrap of the pooled confusion matrix (2,000 multinomial "
     "resamples, fixed seed), the wider of BCa and percentile: 93-97.5 % simulated coverage; none without a confusion "
     "matrix (`method` says why)"),
    ("per class P/R/F1 (`--per-class`, reports)", "precision = right / predicted, recall = right / support, F1 = 2·right "
     "/ (support + predicted), per class id, counts pooled as above", "Wilson 95 % (precision, recall); F1: Wilson's of "
     "right / (support + predicted − right) mapped by 2q / (1 + q), exact in form; 94.7-97 % simulated coverage"),
    ("scorecard row: mAP / AUC", "the task's own metric (`task_accuracy`): runs over the same samples re-score the same "
     "data, so the value is their mean; runs over different samples: their mean", "the metric's own for the same samples "
     "(AUC: DeLong 95 %; mAP: none, pycocotools gives none); none over different samples"),
    ("scorecard row: Δ fp32 (pp)", "row top-1 − the fp32 variant's top-1 on the same device",
     "Newcombe's paired interval on the same samples (both results carry `correct_bits` over equal `samples_sha256`), "
     "else Newcombe's unpaired one; `method` names which"),
    ("robustness (`--robustness`): top-1 per corruption and severity", "correct / scored corrupted samples, each sample "
     "once over repeats (from the per-sample bits)", "Wilson 95 %"),
    ("robustness: drop (pp)", "clean top-1 − corrupted top-1 of the same run's samples (the same samples, the same order)",
     "Newcombe's paired 95 % interval"),
    ("robustness: Δ fp32 (pp)", "variant − the fp32 variant of the model on the same device, under the same corruption and "
     "severity (identical corrupted samples: corruptions are deterministic per sample)",
     "Newcombe's paired 95 % interval where the corrupted samples' fingerprints match, else the unpaired one (`method` says)"),
    ("robustness: means over corruptions", "per sample, correctness averaged over every corruption and severity; mean "
     "corruption accuracy, the mean drop and the mean Δ fp32 are means over samples of those",
     "Student's t 95 % over samples"),
    ("fleet row (`--fleet`): p50/p90/p99", "nearest rank on the merged latency histogram of every run of the device class",
     "none (a pooled statistic; `method: merged histogram`)"),
    ("fleet row: early stopping", "LoadGen's estimate `sorted[n − t]` on the merged histogram",
     "none (`method: merged early stopping`)"),
    ("fleet row: other KPIs, top-1", "as a scorecard row, over every run of the class", "as a scorecard row"),
    ("ranking (`--rank`, `--score`)", "rows ordered within one scenario × mode; a score sums weight × KPI normalised "
     "to [0, 1] over the group", "none; rows missing a KPI are named, not ranked"),
    ("compare (edge vs baseline)", "edge row value ÷ baseline row value; accuracy as edge − baseline in pp", "none"),
    ("report latency CDF", "the run's (or merged runs') latency histogram, the same latencies as the table", "none"),
    ("scaling (`--scaling`): speed-up, efficiency", "ratio of geometric means of throughput over repeats, sweep point ÷ "
     "baseline (1 thread, batch 1, each device alone); a gang's throughput is its members' samples over the union of "
     "their windows; efficiency = speed-up ÷ (threads or devices ratio), none for batch; oversubscribed points listed, "
     "not drawn", "Welch's t 95 % on log throughput, exponentiated (and scaled for efficiency); under 2 runs a side: none"),
    ("diff (regression gate)", "means over each campaign's repeats; the change in the rule's unit",
     "Student's t-test on the per-run values (pooled variance, as pyperf; p < 0.05), McNemar exact on paired "
     "top-1; one run on a side: noise unknown"),
)


def markdown() -> str:
    """docs/kpis.md, generated from ``KPIS`` and ``SCORECARD_VIEWS``."""
    lines = [
        "# KPI dictionary",
        "",
        "Generated from `agent/kpi.py` (`python -m agent.kpi > docs/kpis.md`); every result's `kpis`",
        "block uses these keys. Percentiles are LoadGen's nearest rank, `sorted[floor(n*p)]`, over",
        "per-sample latencies (per-query for MultiStream, see `latency_basis`). Confidence intervals",
        "across repeats are computed by the controller's scorecards (see Scorecard views below).",
        "",
        "| key | label | unit | better | definition |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| `{k.key}` | {k.label} | {k.unit} | {k.better or '–'} | {k.definition} |" for k in KPIS]
    lines += [
        "",
        "## Fairness is not class balance",
        "",
        "`fairness` compares **groups of inputs**: who or where a sample came from (a dialect, a skin tone,",
        "a site, a microphone), which only you can name (`--groups FILE`, or a campaign's `groups:`;",
        "docs/datasets.md, \"Groups and fairness\"). Its gap says whether the model serves some inputs worse",
        "than others whatever they show. `class_balance` compares the **classes the model predicts** (recall",
        "per class): every classification run has it, and a gap there says some answers are harder than",
        "others, not that some users are served worse. A model can be perfectly balanced across classes and",
        "unfair across groups, or the other way round. Both carry each group's rate with its Wilson 95 %",
        "interval and the largest gap with an interval that holds for the pair chosen after looking (each",
        "pair's Wilson intervals at the Bonferroni level over all k(k−1)/2 pairs, combined by Newcombe's",
        "method for two independent proportions).",
        "",
        "## Scorecard views",
        "",
        "Every number the controller shows, with the statistic behind it and its interval method",
        "(`--json` names the method of each cell in `method`).",
        "",
        "| view | statistic | interval |",
        "|---|---|---|",
    ]
    lines += [f"| {view} | {statistic} | {interval} |" for view, statistic, interval in SCORECARD_VIEWS]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
