"""Campaign reports for sharing: one self-contained HTML page, Markdown, CSV and JSON.

Every format is built from the same scorecard rows (``scorecard.build``), the same table views
(``views``) and the same comparisons (``compare``), so a number reads the same in the terminal,
the HTML page and the spreadsheet. The HTML page is one file that fetches nothing (inline CSS,
inline SVG plots from ``plots``, no script at all, and a Content-Security-Policy that forbids
scripts and network loads in case an escaping bug ever let one through): a report is mailed,
archived and opened offline, and must look the same in five years.

Every number is shown next to its verdict (VALID or why not): a fast result from an invalid run
is not a result. Estimated energy is labelled wherever it appears.

Public API (all take the same arguments, all return text):

- ``build_html(campaign, results, baseline_results=None, *, title=None) -> str``
- ``build_markdown(...)``, ``build_csv(...)``, ``build_json(...)``
- ``build(fmt, campaign, results, baseline_results=None, *, title=None) -> str`` for ``fmt`` in ``FORMATS``

``campaign`` is the store's campaign record (``id``, ``name``, ``state``, ``kind``,
``created_at``, ``finished_at``, ``source``; missing keys are shown as "?"), ``results`` its
typed results (``Store.results``), ``baseline_results`` the datacenter baseline's results to
compare against. Results in ``results`` that are themselves baseline results (a ``baseline``
block) are treated as baseline. ``reference`` (a ``reference_rows.ReferenceChoice``, from
``--reference``) adds published MLPerf rows beside the campaign's rows in the HTML, Markdown and
JSON reports (docs/reference.md).
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import agent
from agent.contract import ModelBlock, Result
from agent.result import json_safe
from controller.analysis import robustness, scaling
from controller.analysis.compare import RATIOS, Comparison, compare
from controller.analysis.scorecard import (
    ACCURACY_KPI,
    DELTA_KPI,
    MACRO_KPIS,
    PERFORMANCE_KPIS,
    TIMED_SCENARIOS,
    Row,
    by_baseline,
    device_class,
    merged_histogram,
    ordered,
)
from controller.analysis.scorecard import build as scorecard_rows
from controller.reports import (
    class_report,
    fairness_view,
    plots,
    reference_rows,
    render,
    robustness_view,
    scaling_view,
    views,
)

SCHEMA = "edgeperf.report/1"
CSV_KPIS = (*PERFORMANCE_KPIS, ACCURACY_KPI, DELTA_KPI, *MACRO_KPIS)
LATENCY_KPIS = ("latency_ms.p50", "latency_ms.p90", "latency_ms.p99", "early_stopping_latency_ms",  # blank unless timed
                "early_stopping_p99_latency_ms")
MAX_CURVES = 10  # more latency curves than this in one scenario: one chart per model family instead
VOLATILE_FACTS = ("temperatures_c", "cpu_freq_mhz")  # change between runs without the device changing


# ---- the data every format shares ------------------------------------------------------------------
@dataclass
class ReportData:
    """Everything a report shows, computed once: rows, fleet rows, comparisons, metadata."""

    campaign: dict[str, Any]
    edge: list[Result]
    base: list[Result]
    rows: list[Row]
    base_rows: list[Row]
    fleet_rows: list[Row]
    comparisons: list[Comparison]
    title: str
    generated_at: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))
    reference: reference_rows.ReferenceSection | None = None  # published MLPerf rows beside ours (--reference)

    @property
    def devices(self) -> list[str]:
        return sorted({r.device.id for r in self.edge})

    @property
    def valid_count(self) -> int:
        return sum(1 for r in self.edge if r.valid)

    @property
    def any_estimated(self) -> bool:
        return any(r.energy_measured is False for r in self.rows + self.base_rows)

    @cached_property
    def curves(self) -> list[robustness.Curve]:
        """The robustness curves of the edge rows (tables, plots and JSON share them)."""
        return robustness.curves(self.rows)

    @cached_property
    def sweep(self) -> list[scaling.Group]:
        """The campaign's sweep groups (nothing without a sweep)."""
        return scaling_view.groups(self.edge)


def prepare(campaign: dict[str, Any], results: Sequence[Result], baseline_results: Sequence[Result] | None = None,
            *, title: str | None = None, reference: reference_rows.ReferenceChoice | None = None) -> ReportData:
    """Split edge and baseline results, build the scorecard, fleet and comparison rows.

    Fleet rows are kept only for device classes with more than one device: a "fleet" of one is
    the device's own row again."""
    edge, mixed_base = by_baseline(results)
    base = [*mixed_base, *(baseline_results or [])]
    rows, base_rows = scorecard_rows(edge), scorecard_rows(base)
    per_class: dict[str, set[str]] = defaultdict(set)
    for result in edge:
        per_class[device_class(result)].add(result.device.id)
    fleet_rows = scorecard_rows([r for r in edge if len(per_class[device_class(r)]) > 1], fleet=True)
    comparisons = compare(rows, base_rows) if base_rows else []
    name = str(campaign.get("name") or campaign.get("id") or "campaign")
    return ReportData(dict(campaign), edge, base, rows, base_rows, fleet_rows, comparisons,
                      title or f"edgeperf report: {name}",
                      reference=None if reference is None else reference_rows.section(reference, rows))


def _when(value: Any) -> str:
    """A store timestamp (epoch seconds) or an ISO string, as UTC text; "?" when absent."""
    if value is None or value == "":
        return "?"
    if isinstance(value, (int, float)) and math.isfinite(value):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def header_facts(data: ReportData) -> list[tuple[str, str]]:
    """The report's header as (term, text) pairs: campaign, times, versions, counts."""
    c = data.campaign
    agents = sorted({r.agent_version or "?" for r in data.edge + data.base})
    n = len(data.edge)
    pairs = [
        ("campaign", f"{c.get('name', '?')} ({c.get('id', '?')})"),
        ("kind", str(c.get("kind", "fleet"))),
        ("state", str(c.get("state", "?"))),
        ("created", _when(c.get("created_at"))),
        ("finished", _when(c.get("finished_at"))),
        ("edgeperf", f"{agent.__version__} (report); agents: {', '.join(agents) or '–'}"),
        ("devices", f"{len(data.devices)}: {', '.join(data.devices) or '–'}"),
        ("results", f"{n} ({data.valid_count} valid, {n - data.valid_count} not valid)"),
    ]
    if c.get("source"):
        pairs.insert(5, ("campaign file", str(c["source"])))
    if data.base:
        kinds = sorted({str((r.baseline or {}).get("kind", "?")) for r in data.base})
        pairs.append(("baseline results", f"{len(data.base)} ({', '.join(kinds)})"))
    pairs.append(("generated", data.generated_at))
    return pairs


# ---- tables -----------------------------------------------------------------------------------------
def comparison_view(comps: Sequence[Comparison], title: str) -> views.View:
    """``views.comparison`` plus both rows' verdicts: a ratio is never shown without them."""
    base = views.comparison(comps, title)
    rows = [(*row, c.edge.verdict, c.baseline.verdict if c.baseline else "–") for row, c in zip(base.rows, comps, strict=True)]
    return views.View(base.title, (*base.headers, "verdict", "baseline verdict"), rows, base.numeric, base.notes)


def verdict_first(view: views.View) -> views.View:
    """The verdict columns moved next to the row's identity (after ``n``, else after ``device``):
    a wide table scrolls sideways, and a number must never be on screen without its verdict."""
    names = list(view.headers)
    moving = [i for i, h in enumerate(names) if h in ("verdict", "baseline verdict")]
    anchor = next((names.index(h) for h in ("n", "device") if h in names), None)
    if not moving or anchor is None:
        return view
    keep = [i for i in range(len(names)) if i not in moving]
    at = keep.index(anchor) + 1
    order = keep[:at] + moving + keep[at:]
    return views.View(view.title, tuple(names[i] for i in order), [tuple(row[i] for i in order) for row in view.rows],
                      frozenset(new for new, old in enumerate(order) if old in view.numeric), view.notes)


def invalid_view(results: Sequence[Result]) -> views.View | None:
    """The runs that are not valid and why (None when every run is valid)."""
    rows = [(r.run_id[:12], r.device.id, r.model.name.removeprefix("zoo:"), r.scenario, r.mode,
             "; ".join(r.invalid_reasons or ["?"]))
            for r in results if not r.valid]
    if not rows:
        return None
    return views.View("runs that are not valid", ("run", "device", "model", "scenario", "mode", "reasons"), rows)


def tables(data: ReportData) -> list[views.View]:
    """Every table of the report that has rows, in order, verdicts next to the row names."""
    out = [views.scorecard(data.rows, "scorecard")]
    if data.fleet_rows:
        out.append(views.scorecard(data.fleet_rows, "fleet rows: device classes with more than one device"))
    if data.base_rows:
        out.append(views.scorecard(data.base_rows, "datacenter baseline"))
    if data.comparisons:
        out.append(comparison_view(data.comparisons, "edge vs datacenter baseline"))
    if data.reference is not None:
        out += data.reference.views()
    out += robustness_view.tables(data.curves)
    out += fairness_view.fairness_tables(data.rows)
    if balance := fairness_view.class_balance_table(data.rows):
        out.append(balance)
    out += class_report.tables(data.rows + data.base_rows)  # per class, per accuracy row
    out += scaling_view.views(data.sweep)  # a campaign's sweep (nothing without one)
    if invalid := invalid_view(data.edge + data.base):
        out.append(invalid)
    return [verdict_first(v) for v in out if v.rows]  # no results: no empty tables


# ---- plots ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Figure:
    """A plot and its caption, or (``svg`` None) the reason it was left out."""

    name: str
    svg: str | None
    caption: str


def latency_cdf(results: Iterable[Result]) -> tuple[list[float], list[float]]:
    """(latency ms, cumulative % of queries) over the merged latency histograms of ``results``:
    cumulative counts over the sorted buckets. Repeats merge by adding counts, never by
    averaging percentiles."""
    merged = merged_histogram(results)
    if not merged.n:
        return [], []
    buckets, shares = merged.cdf()
    return [b / 1e6 for b in buckets], [s * 100 for s in shares]


def row_label(row: Row) -> str:
    """A row's name in a plot; ``[INVALID]`` when any of its runs is not valid, so a plotted number
    always carries its verdict."""
    text = f"{series_name(row)} · {row.model.removeprefix('zoo:')} · {views.runtime_text(row)}"
    return text if row.verdict == "VALID" else f"{text} [INVALID]"


def _cdf_figures(rows: Sequence[Row]) -> list[Figure]:
    timed = [r for r in rows if r.timed]
    curves = [(r, latency_cdf(r.results)) for r in timed]
    curves = [(r, c) for r, c in curves if c[0]]
    if not curves:
        return [Figure("latency CDF", None, "latency CDF omitted: no SingleStream, MultiStream or Server performance run "
                                            "carries a latency histogram")]
    out = []
    for scenario in TIMED_SCENARIOS:
        mine = [(r, c) for r, c in curves if r.scenario == scenario]
        if not mine:
            continue
        groups: dict[str, list[tuple[Row, tuple[list[float], list[float]]]]] = {"": mine}
        if len(mine) > MAX_CURVES:
            groups = defaultdict(list)
            for r, c in mine:
                groups[r.family].append((r, c))
        for family, members in sorted(groups.items()):
            series = {row_label(r): c for r, c in members}
            xs = [x for _, (cx, _) in members for x in cx]
            log = plots.spans_decades(xs)
            basis = "query" if scenario == "MultiStream" else "sample"
            title = f"latency CDF, {scenario}{f' — {family}' if family else ''}"
            svg = plots.line_chart(series, "latency (ms)", f"share of {basis}s at or below (%)", title, x_log=log,
                                   y_range=(0.0, 100.0))
            runs = sum(r.runs for r, _ in members)
            out.append(Figure(title, svg, f"{title}: one curve per device and model variant, from {runs} run(s)' latency "
                                          "histograms (repeats merged by adding counts)"
                                          f"{'; log latency axis (the range spans more than a decade)' if log else ''}."))
    return out


def _scatter_figure(rows: Sequence[Row]) -> Figure:
    energy_rows = [r for r in rows if r.value("energy.energy_per_inference_mj") is not None]
    both = [r for r in energy_rows if r.timed and r.value("latency_ms.p90") is not None]
    name = "energy per inference vs p90 latency"
    if not energy_rows:
        return Figure(name, None, f"{name} omitted: no run measured energy (runs without --power have none)")
    if not both:
        return Figure(name, None, f"{name} omitted: energy was measured only in runs without a per-query latency "
                                  "(Offline or accuracy runs)")
    points = [plots.Point(f"{r.model.removeprefix('zoo:')} · {views.SHORT_SCENARIO.get(r.scenario, r.scenario)}"
                          f"{'' if r.verdict == 'VALID' else ' [INVALID]'}",
                          r.value("latency_ms.p90"), r.value("energy.energy_per_inference_mj"), series_name(r),
                          r.energy_measured is False)
              for r in both]
    xs, ys = [p.x for p in points], [p.y for p in points]
    log_x, log_y = plots.spans_decades(xs), plots.spans_decades(ys)
    svg = plots.scatter(points, "p90 latency (ms)", "energy per inference (mJ)", name, x_log=log_x, y_log=log_y,
                        filled_label="filled: measured energy", hollow_label="hollow: estimated energy (a model, not measured)",
                        order=series_order(rows))
    estimated = sum(p.hollow for p in points)
    return Figure(name, svg, f"{name}: one point per row with both (mean over repeats), colour by device; lower-left is "
                             f"better. {estimated} of {len(points)} point(s) use estimated energy (hollow markers)."
                             f"{' Log axes where a range spans more than a decade.' if log_x or log_y else ''}")


# ---- accuracy against latency and energy, across the variants of one model -----------------------------
PARETO_LATENCY = "Pareto front (no other variant is both more accurate and faster)"
PARETO_ENERGY = "Pareto front (no other variant is both more accurate and uses less energy per inference)"
HOST_ACCURACY = "dashed outline: accuracy measured by edgeperf quantize on the host, not on this device"


@dataclass(frozen=True)
class _Accuracy:
    """A variant's top-1 on one device (percent): from that device's accuracy row (``row``), else
    (``host``) from the quantize provenance's paired measurement on the host."""

    top1: float
    row: Row | None
    host: str | None = None  # "dataset, n=…" of the host measurement


def _models(rows: Sequence[Row]) -> dict[str, ModelBlock]:
    """Every model file the rows ran, by its sha256."""
    return {res.model.sha256: res.model for r in rows for res in r.results}


def _root(sha: str, models: dict[str, ModelBlock]) -> str:
    """The source a model file was made from, following provenance back (an fp32 ONNX exported
    from PyTorch, then quantised) as far as the campaign ran the files; a file without
    provenance is its own root."""
    seen: set[str] = set()
    while sha in models and (prov := models[sha].provenance) is not None and sha not in seen:
        seen.add(sha)
        sha = prov.source_sha256
    return sha


def variant_groups(rows: Sequence[Row]) -> dict[str, list[Row]]:
    """Rows by the model they are variants of, under a display name: files made by ``edgeperf
    quantize`` from one source (``provenance.source_sha256``) together with the source itself
    (``model.sha256`` equal to it); rows of models without provenance that are nobody's source by
    model family (``fashion-mnist-cnn`` for its ``fp32.onnx`` and ``int8.tflite``)."""
    models = _models(rows)
    sources = {m.provenance.source_sha256 for m in models.values() if m.provenance is not None}
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        model = row.results[0].model
        root = _root(model.sha256, models)
        alone = model.provenance is None and root not in sources  # nobody's variant nor source
        groups[("family", row.family) if alone else ("source", root)].append(row)
    out: dict[str, list[Row]] = {}
    for (kind, ident), members in sorted(groups.items()):
        if kind == "family":
            name = ident
        elif ident in models:
            name = models[ident].name.removeprefix("zoo:")
        else:
            name = next((m.provenance.source_name for m in models.values()
                         if m.provenance is not None and m.provenance.source_sha256 == ident), ident[:12])
        while name in out:  # two sources of one name (different files): keep both, told apart
            name = f"{name} ({ident[:8]})"
        out[name] = members
    return out


def _host_accuracy(model: ModelBlock, models: dict[str, ModelBlock]) -> tuple[float, str] | None:
    """(top-1 as a fraction, "dataset, n=…[, paired with a variant]") measured by ``edgeperf quantize`` on the host: the
    file's own paired measurement, else (for a source) its top-1 from a variant's pairing, the one
    over the most samples."""
    acc = model.provenance.accuracy if model.provenance is not None else None
    if acc is not None:
        return acc.variant_top1, f"{acc.dataset}, n={acc.n}"
    pairs = [m.provenance.accuracy for m in models.values()
             if m.provenance is not None and m.provenance.source_sha256 == model.sha256 and m.provenance.accuracy is not None]
    if not pairs:
        return None
    best = max(pairs, key=lambda a: a.n)
    return best.source_top1, f"{best.dataset}, n={best.n}, paired with a variant"


def _accuracy_of(row: Row, rows: Sequence[Row], models: dict[str, ModelBlock]) -> _Accuracy | None:
    """A performance row's top-1: its device's accuracy row of the same variant (the same runtime
    first), else the host's from the provenance, else None."""
    mine = [r for r in rows if r.mode == "accuracy" and series_name(r) == series_name(row) and r.model == row.model
            and r.value(ACCURACY_KPI) is not None]
    if mine:
        same = [r for r in mine if (r.runtime, r.accelerator, r.threads) == (row.runtime, row.accelerator, row.threads)]
        best = (same or mine)[0]
        return _Accuracy(best.value(ACCURACY_KPI) * 100, best)
    host = _host_accuracy(row.results[0].model, models)
    return _Accuracy(host[0] * 100, None, host[1]) if host is not None else None


def _variant_labels(points: Sequence[tuple[Row, _Accuracy]]) -> list[str]:
    """The variant's name (the file name when every point is of one family), with the runtime where a
    device ran the variant on several, and ``[INVALID]`` when the latency's or the accuracy's row
    has an invalid run."""
    one_family = len({r.family for r, _ in points}) == 1
    names = [r.model.removeprefix("zoo:").rsplit("/", 1)[-1] if one_family else r.model.removeprefix("zoo:")
             for r, _ in points]
    keys = [(series_name(r), n) for (r, _), n in zip(points, names, strict=True)]
    out = []
    for (r, acc), name, key in zip(points, names, keys, strict=True):
        text = f"{name} · {views.runtime_text(r)}" if keys.count(key) > 1 else name
        valid = r.verdict == "VALID" and (acc.row is None or acc.row.verdict == "VALID")
        out.append(text if valid else f"{text} [INVALID]")
    return out


def _pareto_figure(name: str, members: Sequence[Row], rows: Sequence[Row], models: dict[str, ModelBlock], *,
                   energy: bool) -> tuple[Figure | None, int, int]:
    """One group's accuracy-vs-latency (or, ``energy``, accuracy-vs-energy) plot, or None when fewer
    than two of its variants have both numbers; with the rows that had the x value and those of
    them without any accuracy."""
    x_key = "energy.energy_per_inference_mj" if energy else "latency_ms.p90"
    measured = [r for r in members if r.mode == "performance" and r.value(x_key) is not None
                and (energy or r.scenario == "SingleStream")]
    found = [(r, _accuracy_of(r, rows, models)) for r in measured]
    usable = [(r, a) for r, a in found if a is not None]
    missing = len(found) - len(usable)
    if len({r.model for r, _ in usable}) < 2:
        return None, len(measured), missing
    scenarios = sorted({r.scenario for r, _ in usable})  # energy of several scenarios: a front per device and scenario
    series = [series_name(r) if len(scenarios) == 1 else f"{series_name(r)} · {views.SHORT_SCENARIO.get(r.scenario, r.scenario)}"
              for r, _ in usable]
    points = [plots.Point(label, r.value(x_key), a.top1, s, energy and r.energy_measured is False, a.host is not None,
                          f"top-1 on the host: {a.host}" if a.host else f"top-1 on {r.device}")
              for label, s, (r, a) in zip(_variant_labels(usable), series, usable, strict=True)]
    xs = [p.x for p in points]
    log_x = plots.spans_decades(xs)
    what = "energy per inference" if energy else "p90 latency"
    title = f"top-1 accuracy vs {what} — {name}"
    x_label = "energy per inference (mJ)" if energy else "p90 latency (ms), SingleStream"
    svg = plots.scatter(points, x_label, "top-1 accuracy (%)", title, x_log=log_x, order=series_order(rows),
                        filled_label="filled: measured energy" if energy else None,
                        hollow_label="hollow: estimated energy (a model, not measured)", dashed_label=HOST_ACCURACY,
                        pareto=True, pareto_label=PARETO_ENERGY if energy else PARETO_LATENCY)
    host = sorted({a.host for _, a in usable if a.host})
    n_host = sum(1 for _, a in usable if a.host)
    where = (f" {n_host} of {len(points)} point(s) use the top-1 that edgeperf quantize measured on the host "
             f"({'; '.join(host)}) because the device has no accuracy run of that variant (dashed outlines)."
             if n_host else " Every point's top-1 comes from the device's own accuracy run.")
    x_what = ("mean energy per inference over repeats of each performance row with energy"
              if energy else "p90 latency, mean over repeats, of each SingleStream performance row")
    estimated = sum(p.hollow for p in points)
    caption = (f"{title}: one point per variant and device (x: {x_what}; y: top-1 accuracy), one series per device"
               f"{' and scenario' if len(scenarios) > 1 else ''}. The step line joins each device's Pareto front, computed "
               f"per device and never across devices: the variants no other variant on that device beats on both accuracy "
               f"and {'energy' if energy else 'latency'}; upper-left is better.{where}"
               f"{f' {estimated} point(s) use estimated energy (hollow markers).' if estimated else ''}"
               f"{f' {missing} row(s) without any top-1 accuracy left out.' if missing else ''}"
               f"{' Log x axis (the range spans more than a decade).' if log_x else ''}")
    return Figure(title, svg, caption), len(measured), missing


def _pareto_figures(rows: Sequence[Row]) -> list[Figure]:
    """Accuracy against p90 latency, then against energy per inference, per group of variants of
    one model (``variant_groups``), with each device's Pareto front; or the reason each is left out."""
    models = _models(rows)
    groups = variant_groups(rows)
    out: list[Figure] = []
    for energy in (False, True):
        made, measured, missing = [], 0, 0
        for name, members in groups.items():
            fig, n, m = _pareto_figure(name, members, rows, models, energy=energy)
            measured, missing = measured + n, missing + m
            if fig is not None:
                made.append(fig)
        if made:
            out += made
            continue
        what = "top-1 accuracy vs energy per inference" if energy else "top-1 accuracy vs p90 latency"
        if not measured:
            why = ("no run measured energy (runs without --power have none)" if energy
                   else "no SingleStream performance run reported a p90 latency")
        elif missing == measured:
            why = (f"no variant has a top-1 accuracy: none of the {measured} row(s) with "
                   f"{'energy' if energy else 'a p90 latency'} has an accuracy run of its variant on its device, "
                   "nor an accuracy measured by edgeperf quantize in the model's provenance")
        else:
            why = (f"no model has two or more variants with both {'energy per inference' if energy else 'a p90 latency'} "
                   "and a top-1 accuracy")
        out.append(Figure(what, None, f"{what} omitted: {why}"))
    return out


def series_name(row: Row) -> str:
    """A row's device as a plot series (its colour and legend entry)."""
    return f"{row.device} (baseline {row.baseline})" if row.baseline else row.device


def series_order(rows: Sequence[Row]) -> list[str]:
    """Devices in colour order, edge devices first, baselines last: a device keeps its colour in every plot."""
    return sorted({series_name(r) for r in rows}, key=lambda s: (" (baseline " in s, s))


def _short_labels(rows: Sequence[Row]) -> list[str]:
    """``device · model`` per row (only the variant when every row is one model family), with the
    runtime added only where that alone is ambiguous."""
    one_family = len({r.family for r in rows}) == 1
    base = [f"{f'{r.device} (baseline)' if r.baseline else r.device} · "
            f"{r.model.rsplit('/', 1)[-1] if one_family else r.model.removeprefix('zoo:')}" for r in rows]
    out = [f"{b} · {views.runtime_text(r)}" if base.count(b) > 1 else b for b, r in zip(base, rows, strict=True)]
    return [text if r.verdict == "VALID" else f"{text} [INVALID]" for text, r in zip(out, rows, strict=True)]


def _bars_figures(rows: Sequence[Row]) -> list[Figure]:
    perf = [r for r in rows if r.mode == "performance" and r.value("throughput_sps") is not None]
    if not perf:
        return [Figure("throughput", None, "throughput per device omitted: no performance run reported throughput")]
    out = []
    scenarios = [s for s in (*TIMED_SCENARIOS, "Offline") if any(r.scenario == s for r in perf)]
    scenarios += sorted({r.scenario for r in perf} - set(scenarios))
    for scenario in scenarios:
        mine = sorted((r for r in perf if r.scenario == scenario), key=lambda r: (bool(r.baseline), r.device, r.family, r.model))
        bars = [plots.Bar(label, r.cells["throughput_sps"].value, r.cells["throughput_sps"].lo, r.cells["throughput_sps"].hi,
                          series_name(r))
                for label, r in zip(_short_labels(mine), mine, strict=True)]
        families = sorted({r.family for r in mine})
        name = f"throughput per device, {scenario}{f' — {families[0]}' if len(families) == 1 else ''}"
        svg = plots.bar_chart(bars, "throughput (samples/s)", name,
                              interval_label="95 % Student's t interval over 3 or more repeats", order=series_order(rows))
        repeated = sum(1 for r in mine if r.cells["throughput_sps"].lo is not None)
        whiskers = (f"whiskers are 95 % intervals for the {repeated} row(s) with 3 or more repeats" if repeated else
                    "no row has 3 or more repeats, so there are no intervals to draw")
        meaning = {"SingleStream": "one stream's rate (about 1 / mean latency)", "Offline": "the whole device's rate",
                   "MultiStream": "samples of the 8-sample queries per second", "Server": "the rate the server sustained"}
        out.append(Figure(name, svg, f"{name}: mean samples/s per row ({meaning.get(scenario, scenario)}); {whiskers}."))
    return out


def trace_run(results: Sequence[Result]) -> Result | None:
    """The run whose energy block has the most power-trace samples (the first such on a tie)."""
    best, most = None, 0
    for result in results:
        energy = result.kpis.energy
        n = len(energy.trace.t_s) if energy is not None and energy.trace is not None else 0
        if n > most:
            best, most = result, n
    return best


def _trace_figure(results: Sequence[Result]) -> Figure:
    run = trace_run(results)
    if run is None or run.kpis.energy is None or run.kpis.energy.trace is None:
        return Figure("power trace", None, "power trace omitted: no run recorded one (runs without --power have none)")
    energy, trace = run.kpis.energy, run.kpis.energy.trace
    what = f"{run.device.id} · {run.model.name.removeprefix('zoo:')} · {run.scenario} {run.mode}"
    title = f"power trace: {what}"
    svg = plots.trace_chart(trace.t_s, trace.w, trace.window_s, title, idle_w=energy.idle_power_w,
                            line_label="power (measured)" if energy.measured else "power (estimated, not measured)")
    verdict = "VALID" if run.valid else "INVALID: " + "; ".join(run.invalid_reasons)
    return Figure(title, svg, f"power trace of run {run.run_id} ({what}; {verdict}), the run with the most trace "
                              f"samples ({len(trace.t_s)}); source {energy.source} "
                              f"({'measured' if energy.measured else 'estimated'}), rail: {energy.rail}. "
                              "The shaded band is the measured window; outside it the device idled or warmed up.")


def figures(data: ReportData) -> list[Figure]:
    """Every plot of the report in order, or the reason each was left out."""
    rows = data.rows + data.base_rows
    return [*_cdf_figures(rows), _scatter_figure(rows), *_pareto_figures(rows), *_bars_figures(rows),
            *(Figure(*f) for f in robustness_view.figures(data.curves)),
            *(Figure(*f) for f in class_report.figures(rows)),
            _trace_figure(data.edge + data.base),
            *(Figure(*f) for f in scaling_view.figures(data.sweep))]  # a sweep's speed-up plots


# ---- environment ----------------------------------------------------------------------------------
def _per_policy(value: Any, fmt: Callable[[Any], str]) -> str:
    if isinstance(value, dict):
        return "; ".join(f"CPUs {k}: {fmt(v)}" for k, v in value.items())
    return fmt(value)


def _freq(v: Any) -> str:
    if isinstance(v, dict):
        cur = f"{v['cur']} MHz" if "cur" in v else "?"
        bounds = ", ".join(f"{k} {v[k]}" for k in ("min", "max") if k in v)
        return f"{cur} ({bounds})" if bounds else cur
    return str(v)


def _gpus(gpus: Any) -> str:
    if not isinstance(gpus, list):
        return str(gpus)
    out = []
    for g in gpus:
        if not isinstance(g, dict):
            out.append(str(g))
            continue
        extra = [f"{g['memory_total_mib']:,} MiB" if g.get("memory_total_mib") else "",
                 f"driver {g['driver_version']}" if g.get("driver_version") else "",
                 f"CUDA {g['cuda_driver_version']}" if g.get("cuda_driver_version") else "",
                 f"power limit {g['power_limit_w']} W" if g.get("power_limit_w") else ""]
        extra = [e for e in extra if e]
        details = f" ({', '.join(extra)})" if extra else ""
        out.append(f"{g.get('name', '?')}{details}")
    return "; ".join(out)


def _installed(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    return ", ".join(str(v) if isinstance(v, str) else f"{k} {v}" for k, v in value.items() if v) or None


def known_facts(f: dict[str, Any]) -> tuple[list[tuple[str, str]], set[str]]:
    """The facts a reader compares devices by, as (term, text) pairs, and the keys they used."""
    pairs: list[tuple[str, str]] = []

    def add(term: str, text: Any) -> None:
        if text:  # None, "", False from an absent fact: nothing to show
            pairs.append((term, str(text)))

    revision = f" (revision {f['board_revision']})" if f.get("board_revision") else ""
    add("board", f.get("board") and f"{f['board']}{revision}")
    arch = f" ({f['arch']})" if f.get("arch") else ""
    add("CPU", f.get("cpu_model") and f"{f['cpu_model']}{arch}")
    cores = (f.get("cpu_cores"), f.get("cpu_count_physical") and f"{f['cpu_count_physical']} physical",
             f.get("cpu_count_logical") and f"{f['cpu_count_logical']} logical")
    add("cores", ", ".join(str(c) for c in cores if c))
    add("memory", f.get("memory_total_mb") and f"{f['memory_total_mb']:,} MB")
    add("OS", f.get("os_release") or f.get("os"))
    add("kernel", f.get("kernel"))
    add("Python", f.get("python"))
    add("governor", f.get("cpu_governor") and _per_policy(f["cpu_governor"], str))
    add("CPU frequency", f.get("cpu_freq_mhz") and _per_policy(f["cpu_freq_mhz"], _freq))
    temps = f.get("temperatures_c")
    add("temperatures (probe)", isinstance(temps, dict) and ", ".join(f"{k} {v:.1f} °C" for k, v in temps.items()))
    add("GPU", f.get("gpus") and _gpus(f["gpus"]))
    add("L4T", f.get("l4t"))
    add("power mode", f.get("power_mode"))
    add("runtimes", _installed(f.get("installed")))
    add("hostname", f.get("hostname"))
    used = {"board", "board_revision", "cpu_model", "arch", "cpu_cores", "cpu_count_physical", "cpu_count_logical",
            "memory_total_mb", "os_release", "os", "kernel", "python", "cpu_governor", "cpu_freq_mhz", "temperatures_c",
            "gpus", "l4t", "power_mode", "installed", "hostname"}
    return pairs, used


def environment(results: Sequence[Result]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per device: (term, text) pairs of its facts (the newest run's), its runs' thermals, and a
    warning when its facts changed between runs (a kernel or runtime upgrade mid-campaign)."""
    by_device: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        by_device[result.device.id].append(result)
    out = []
    for device in sorted(by_device, key=lambda d: (bool(by_device[d][0].baseline), d)):  # baselines last
        mine = sorted(by_device[device], key=lambda r: r.created_at)
        facts = mine[-1].device.facts
        pairs: list[tuple[str, str]] = [("device class", device_class(mine[-1]))]
        shown, used = known_facts(facts)
        pairs += shown
        for key in sorted(set(facts) - used):
            value = facts[key]
            if value not in (None, "", [], {}):
                pairs.append((key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)))
        thermals = [t for r in mine if (t := r.kpis.thermals) is not None]
        hottest = [t.max_after_c for t in thermals if t.max_after_c is not None]
        throttled = sum(1 for t in thermals if t.throttled)
        pairs.append(("thermals (runs)", f"{len(mine)} run(s), {throttled} throttled"
                                         f"{f', hottest zone after a run {max(hottest):.1f} °C' if hottest else ''}"))
        stable = {json.dumps({k: v for k, v in r.device.facts.items() if k not in VOLATILE_FACTS}, sort_keys=True, default=str)
                  for r in mine}
        if len(stable) > 1:
            pairs.append(("note", f"facts changed between this device's runs ({len(stable)} versions); shown: the newest run's"))
        out.append((device, pairs))
    return out


def notes(data: ReportData) -> list[str]:
    """What the numbers mean: intervals, ratios, estimated energy, how the plots were made."""
    out = [
        "Values are means over a row's runs; [lo, hi] is a 95 % Student's t interval of the mean, shown where a row has "
        "3 or more runs; (lo–hi) is the range of 2 runs, which is not a confidence interval; one run says nothing about "
        "the next and has none. Top-1 counts each scored sample of a dataset once in a Wilson interval; Δ fp32 is the "
        "difference to the fp32 variant on the same device, paired on the same samples where both runs carry them.",
        "Every row carries its verdict: VALID, or INVALID with the failed checks (LoadGen's minimum duration and query "
        "count, early stopping, accuracy). Plots mark rows with an invalid run [INVALID].",
        "Offline rows show no latency: in Offline, per-query latency is not the metric; throughput is.",
        "Latency CDFs come from each run's latency histogram (buckets of 3 significant digits, within 0.5 % of the exact "
        "latency), merged across repeats by adding counts.",
    ]
    if data.fleet_rows:
        out.append("Fleet rows pool every run of a device class; their percentiles and early-stopping estimates come from "
                   "the merged histograms, never from averaging per-device values.")
    if data.comparisons:
        out.append("Ratios read edge ÷ baseline: p90 latency × 12 means the device is twelve times slower than the baseline, "
                   "inferences/J × 3 that it does three times the work per joule. Δ top-1 is edge − baseline in "
                   "percentage points.")
    if data.reference is not None:  # rows left without a published row, and why (the table carries its own notes)
        out += data.reference.notes
    if data.any_estimated:
        out.append("Estimated energy — (est.) in the tables, hollow markers in the scatter, 'estimated' on the trace — comes "
                   "from a model of the device (idle power + (max − idle) × CPU utilisation), not from a meter. It shows "
                   "trends on one device; do not rank devices by it or set it against measured energy.")
    return out


# ---- HTML -------------------------------------------------------------------------------------------
CSS = """
:root{color-scheme:light}
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d1d1f;
background:#fafafa;line-height:1.45}
main{max-width:1560px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:1.6rem;margin:0 0 12px}
h2{font-size:1.25rem;margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:1.02rem;margin:18px 0 6px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}
dl.meta dt{font-weight:600;color:#555}
dl.meta dd{margin:0}
section.table{overflow-x:auto;background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:4px 12px 8px;margin:12px 0}
table{border-collapse:collapse;font-size:.86rem;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top;white-space:nowrap}
th{text-align:left;background:#f3f4f6;position:sticky;top:0;white-space:nowrap}
td.num{text-align:right;white-space:nowrap}
td.txt{text-align:left}
td.ok{color:#0a6b2f;font-weight:600}
td.bad{color:#b00020;font-weight:600}
tbody tr:nth-child(even){background:#fbfbfc}
p.note{font-size:.82rem;color:#555;margin:6px 0 0}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,560px),1fr));gap:16px}
figure{margin:0;background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:10px}
figure svg{display:block;height:auto}
figcaption{font-size:.82rem;color:#444;margin-top:6px}
p.omitted{color:#8a5a00;background:#fff8e6;border-left:3px solid #e6a100;padding:4px 10px;margin:6px 0}
.devices{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,380px),1fr));gap:12px}
.device{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:8px 14px}
.device dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;font-size:.86rem;margin:0}
.device dt{color:#555}
.device dd{margin:0;overflow-wrap:anywhere}
ul.notes li{margin:4px 0;font-size:.9rem}
.summary{font-weight:600}
.summary.bad{color:#b00020}
@media print{body{background:#fff}.figures{display:block}figure{break-inside:avoid;margin-bottom:12px}}
"""
# No script, no fetch: even an escaping bug cannot run code or call home from a report.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _table_html(view: views.View) -> str:
    """``render.html_table`` with verdict cells coloured (the text stays the verdict)."""
    text = render.html_table(view)
    return text.replace('<td class="txt">VALID</td>', '<td class="txt ok">VALID</td>').replace(
        '<td class="txt">INVALID', '<td class="txt bad">INVALID')


def _dl(pairs: Sequence[tuple[str, str]], cls: str = "") -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in pairs)
    return f'<dl class="{cls}">{items}</dl>' if cls else f"<dl>{items}</dl>"


def build_html(campaign: dict[str, Any], results: list[Result], baseline_results: list[Result] | None = None, *,
               title: str | None = None,
               reference: reference_rows.ReferenceChoice | None = None) -> str:
    """One self-contained HTML page: header, validity summary, tables, plots, environment, notes."""
    data = prepare(campaign, results, baseline_results, title=title, reference=reference)
    body = [f"<h1>{_e(data.title)}</h1>", _dl(header_facts(data), "meta")]
    n, valid = len(data.edge), data.valid_count
    summary = f"{valid} of {n} runs valid" if n else "no results in this campaign yet"
    body.append(f'<p class="summary{"" if valid == n else " bad"}">{_e(summary)}</p>')
    body.append("<h2>Tables</h2>")
    body += [_table_html(v) for v in tables(data)]
    if not data.base_rows:
        body.append('<p class="omitted">edge vs datacenter comparison omitted: no baseline results were given</p>')
    body.append("<h2>Plots</h2>")
    figs = figures(data)
    shown = "".join(f"<figure>{f.svg}<figcaption>{_e(f.caption)}</figcaption></figure>" for f in figs if f.svg)
    body.append(f'<div class="figures">{shown}</div>')
    body += [f'<p class="omitted">{_e(f.caption)}</p>' for f in figs if not f.svg]
    body.append("<h2>Environment</h2>")
    devices = "".join(f'<section class="device"><h3>{_e(name)}</h3>{_dl(pairs)}</section>'
                      for name, pairs in environment(data.edge + data.base))
    body.append(f'<div class="devices">{devices}</div>' if devices else '<p class="omitted">no results, so no device facts</p>')
    body.append("<h2>Notes</h2>")
    body.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes(data)) + "</ul>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="edgeperf {_e(agent.__version__)}">'
            f"<title>{_e(data.title)}</title><style>{CSS}</style></head>\n"
            f"<body><main>{''.join(body)}</main></body></html>\n")


# ---- Markdown ---------------------------------------------------------------------------------------
def _md(text: Any) -> str:
    """Markdown text that renders as written: HTML special characters as entities."""
    return html.escape(str(text), quote=False)


def _md_view(view: views.View) -> views.View:
    """A view with HTML special characters escaped (``render.markdown`` escapes only pipes)."""
    return views.View(_md(view.title), tuple(_md(h) for h in view.headers), [tuple(_md(c) for c in r) for r in view.rows],
                      view.numeric, tuple(_md(n) for n in view.notes))


def build_markdown(campaign: dict[str, Any], results: list[Result], baseline_results: list[Result] | None = None,
                   *, title: str | None = None,
                   reference: reference_rows.ReferenceChoice | None = None) -> str:
    """The report as Markdown: the same tables, environment and notes; plots are in the HTML report."""
    data = prepare(campaign, results, baseline_results, title=title, reference=reference)
    out = [f"# {_md(data.title)}", ""]
    out += [f"- **{_md(k)}**: {_md(v)}" for k, v in header_facts(data)]
    n = len(data.edge)
    out += ["", f"**{data.valid_count} of {n} runs valid**" if n else "**no results in this campaign yet**", ""]
    for view in tables(data):
        out.append(render.markdown(_md_view(view)))
    if not data.base_rows:
        out += ["_edge vs datacenter comparison omitted: no baseline results were given_", ""]
    out += ["## Plots", "", "Plots (latency CDFs, energy vs latency, accuracy vs latency and energy, throughput, "
            "power trace, confusion matrices) are in the HTML report (`--format html`)."]
    out += [f"- {_md(f.caption)}" for f in figures(data) if not f.svg]
    out += ["", "## Environment", ""]
    for device, pairs in environment(data.edge + data.base):
        out += [f"### {_md(device)}", ""] + [f"- **{_md(k)}**: {_md(v)}" for k, v in pairs] + [""]
    out += ["## Notes", ""] + [f"- {_md(n)}" for n in notes(data)]
    return "\n".join(out) + "\n"


# ---- CSV --------------------------------------------------------------------------------------------
def csv_columns() -> list[str]:
    """The CSV header: row identity, verdict, each KPI with its interval, then the baseline ratios."""
    cols = ["kind", "device", "device_class", "model", "precision", "runtime", "accelerator", "threads", "scenario", "mode",
            "runs", "verdict", "energy_measured"]
    for key in CSV_KPIS:
        cols += [key, f"{key}.lo", f"{key}.hi"]
    cols += ["baseline_device", "baseline_verdict", *(f"ratio.{kpi}" for kpi in RATIOS.values()), "baseline.top1_delta_pp",
             "run_ids", *class_report.CSV_COLUMNS]
    return cols


def _num(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and not math.isfinite(value)) else repr(float(value))


def _csv_row(kind: str, row: Row, comp: Comparison | None) -> dict[str, str]:
    out = {"kind": kind, "device": row.device, "device_class": row.device_class, "model": row.model,
           "precision": row.precision, "runtime": row.runtime, "accelerator": row.accelerator,
           "threads": "" if row.threads is None else str(row.threads), "scenario": row.scenario, "mode": row.mode,
           "runs": str(row.runs), "verdict": row.verdict,
           "energy_measured": {None: "", True: "true", False: "false"}[row.energy_measured],
           "run_ids": " ".join(r.run_id for r in row.results)}
    timed = row.timed
    for key in CSV_KPIS:
        c = row.cells.get(key) if timed or key not in LATENCY_KPIS else None
        out[key], out[f"{key}.lo"], out[f"{key}.hi"] = (_num(c.value), _num(c.lo), _num(c.hi)) if c else ("", "", "")
    if comp is not None and comp.baseline is not None:
        out["baseline_device"], out["baseline_verdict"] = comp.baseline.device, comp.baseline.verdict
        for label, kpi in RATIOS.items():
            out[f"ratio.{kpi}"] = _num(comp.ratios.get(label)) if timed or kpi not in LATENCY_KPIS else ""
        out["baseline.top1_delta_pp"] = _num(comp.accuracy_delta_pp)
    return out


def build_csv(campaign: dict[str, Any], results: list[Result], baseline_results: list[Result] | None = None, *,
              title: str | None = None,
              reference: reference_rows.ReferenceChoice | None = None) -> str:
    """One rectangular CSV for spreadsheets and scripts: a line per scorecard row (``kind`` =
    device, fleet or baseline) with raw numbers (value, .lo, .hi per KPI; empty where absent,
    and latency empty on Offline and accuracy rows, as in the tables, because it is not their
    metric), its verdict, and on edge rows the baseline's device and the edge ÷ baseline ratios.
    Accuracy rows carry macro precision, recall and F1 (``accuracy.precision_macro`` … with .lo/.hi),
    and after each accuracy row with class counts come its classes, one line each (``kind`` =
    ``class``): the row's identity columns repeated, the class id in ``class``, and ``class.support``,
    ``class.predicted``, ``class.right``, ``class.precision``/``recall``/``f1`` with .lo/.hi (Wilson
    95 %; F1's mapped from q = right / (support + predicted − right)); the KPI columns stay empty there.

    One table rather than the formatted views stacked in sections: sections with different
    headers are not CSV any tool reads, and "12.3 [11.9, 12.8]" is text, not a number. The
    formatted tables are in the Markdown and HTML reports. ``title`` and ``reference`` are accepted
    for symmetry and unused (CSV has no title line, and published rows are not device rows)."""
    data = prepare(campaign, results, baseline_results, title=title, reference=reference)
    by_edge = {id(c.edge): c for c in data.comparisons}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=csv_columns(), lineterminator="\n")
    writer.writeheader()
    for kind, rows in (("device", data.rows), ("fleet", data.fleet_rows), ("baseline", data.base_rows)):
        for row in ordered(rows):
            writer.writerow(line := _csv_row(kind, row, by_edge.get(id(row))))
            writer.writerows(class_report.csv_lines(line, row))  # kind "class": one line per class after its row
    return out.getvalue()


# ---- JSON -------------------------------------------------------------------------------------------
def build_json(campaign: dict[str, Any], results: list[Result], baseline_results: list[Result] | None = None, *,
               title: str | None = None,
               reference: reference_rows.ReferenceChoice | None = None) -> str:
    """The report as JSON: campaign metadata, scorecard/fleet/baseline rows and comparisons as
    their ``to_dict()``, per-device facts, and the notes."""
    data = prepare(campaign, results, baseline_results, title=title, reference=reference)
    c = data.campaign
    doc = {
        "schema": SCHEMA, "title": data.title, "generated_at": data.generated_at, "edgeperf_version": agent.__version__,
        "campaign": {k: c.get(k) for k in ("id", "name", "kind", "state", "source", "created_at", "finished_at", "spec")
                     if k in c},
        "counts": {"devices": len(data.devices), "results": len(data.edge), "valid": data.valid_count,
                   "baseline_results": len(data.base)},
        "rows": [r.to_dict() for r in ordered(data.rows)],
        "fleet_rows": [r.to_dict() for r in ordered(data.fleet_rows)],
        "baseline_rows": [r.to_dict() for r in ordered(data.base_rows)],
        "comparisons": [comp.to_dict() for comp in data.comparisons],
        "robustness": [curve.to_dict() for curve in data.curves],
        "fairness": fairness_view.to_dicts(data.rows),
        "devices": {d: dict(pairs) for d, pairs in environment(data.edge + data.base)},
        "notes": notes(data),
    }
    if data.reference is not None:
        doc["reference"] = data.reference.to_dict()
    if data.sweep:
        doc["scaling"] = scaling_view.to_dicts(data.sweep)
    return json.dumps(json_safe(doc), indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n"


FORMATS: dict[str, Callable[..., str]] = {"html": build_html, "md": build_markdown, "csv": build_csv, "json": build_json}


def build(fmt: str, campaign: dict[str, Any], results: list[Result], baseline_results: list[Result] | None = None,
          *, title: str | None = None, reference: reference_rows.ReferenceChoice | None = None) -> str:
    """The report in ``fmt`` (one of ``FORMATS``: html, md, csv, json)."""
    try:
        builder = FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown report format {fmt!r}; use one of: {', '.join(FORMATS)}") from None
    return builder(campaign, results, baseline_results, title=title, reference=reference)
