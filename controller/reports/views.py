"""Tables as plain grids of strings: one definition per table, rendered to terminal, Markdown, CSV
and HTML by the caller. Keeping the columns in one place means the HTML report and the terminal
never disagree about what a number is or how many digits it gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from controller.analysis.compare import RATIOS, Comparison
from controller.analysis.scorecard import ACCURACY_KPI, DELTA_KPI, MACRO_KPIS, TASK_KPI, Cell, Row, ordered

MODE_SHORT = {"performance": "perf", "accuracy": "acc", "robustness": "rob"}
SHORT_SCENARIO = {"SingleStream": "SS", "MultiStream": "MS", "Server": "Server", "Offline": "Offline"}


@dataclass(frozen=True)
class View:
    """A titled table: headers and rows of already formatted text; ``numeric`` columns align right."""

    title: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    numeric: frozenset[int] = frozenset()
    notes: tuple[str, ...] = ()


def _digits(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.3g}" if magnitude < 10 else f"{value:.2f}"
    return f"{value:.3g}"


def cell(c: Cell | None, scale: float = 1.0) -> str:
    """``12.3``, ``12.3 [11.9, 12.8]`` (95 % interval) or ``12.3 (11.9–12.8)`` (the range of two
    runs, which is not an interval); ``–`` when absent."""
    if c is None or c.value is None or c.value != c.value:
        return "–"
    text = _digits(c.value * scale)
    if c.lo is not None and c.hi is not None:
        text += f" [{_digits(c.lo * scale)}, {_digits(c.hi * scale)}]"
    elif c.spread is not None:
        text += f" ({_digits(c.spread[0] * scale)}–{_digits(c.spread[1] * scale)})"
    return text


def _task(c: Cell | None) -> str:
    """``mAP 0.372`` or ``AUC 0.875 [0.81, 0.94]``: the metric's name (the cell's method starts with it) and value."""
    return "–" if c is None else f"{c.method.split(':')[0]} {cell(c)}"


def _run(row: Row) -> str:
    run = f"{SHORT_SCENARIO.get(row.scenario, row.scenario)} {MODE_SHORT.get(row.mode, row.mode)}"
    tools = sorted({r.engine for r in row.results} - {"loadgen", "native"})  # a phone's own tool measured it
    return f"{run} ({', '.join(tools)}, not LoadGen)" if tools else run


def _variant(row: Row) -> str:
    return f"{row.model.removeprefix('zoo:')} ({row.precision})"


def runtime_text(row: Row) -> str:
    """``onnxruntime CPU ×2``: runtime, accelerator and threads as tables and plot labels name them."""
    accel = row.accelerator.removesuffix("ExecutionProvider").removeprefix("cpu/")
    threads = f" ×{row.threads}" if row.threads else ""
    return f"{row.runtime} {accel}{threads}"


def _energy(row: Row) -> str:
    text = cell(row.cells.get("energy.energy_per_inference_mj"))
    if text != "–" and row.energy_measured is False:
        text += " (est.)"
    return text


def scorecard(rows: Sequence[Row], title: str) -> View:
    """The per-row KPI table. Offline rows show no latency (it is not their metric)."""
    headers = ("device", "model", "runtime", "run", "n", "p50 ms", "p90 ms", "p99 ms", "ES ms", "samples/s",
               "top-1", "Δ fp32 pp", "P macro", "R macro", "F1 macro", "mAP / AUC", "mJ/inf", "inf/J", "W", "RSS MB", "verdict")
    out = []
    for row in ordered(rows):
        timed = row.timed
        latency = [cell(row.cells.get(k)) if timed else "–" for k in ("latency_ms.p50", "latency_ms.p90", "latency_ms.p99")]
        out.append((
            row.device, _variant(row), runtime_text(row), _run(row), str(row.runs), *latency,
            cell(row.cells.get("early_stopping_latency_ms")) if timed else "–",
            cell(row.cells.get("throughput_sps")) if row.mode == "performance" else "–",
            cell(row.cells.get(ACCURACY_KPI), 100) if ACCURACY_KPI in row.cells else "–",
            cell(row.cells.get(DELTA_KPI)), *(cell(row.cells.get(k), 100) for k in MACRO_KPIS), _task(row.cells.get(TASK_KPI)),
            _energy(row),
            cell(row.cells.get("energy.inferences_per_joule")),
            cell(row.cells.get("energy.avg_power_w")), cell(row.cells.get("memory.peak_rss_mb")), row.verdict,
        ))
    notes = ("values are means over runs: [lo, hi] is a 95 % Student's t interval (3 or more runs); (lo–hi) is the range "
             "of 2 runs, not a confidence interval; one run has none. Fleet rows read p50/p90/p99 and early stopping from "
             "merged histograms. top-1 (%) counts each sample once with a Wilson interval; Δ fp32 is against the fp32 "
             "variant on the same device, paired on the same samples where both runs carry them; P/R/F1 macro (%) are means "
             "over classes with a bootstrap interval (wider of BCa and percentile) of the pooled confusion matrix; mAP / AUC is "
             "the task's own metric with its own interval (AUC: DeLong; mAP: none); (est.) marks estimated "
             "energy; docs/kpis.md, \"Scorecard views\", says how each number is made",)
    return _without_empty_columns(View(title, headers, out, frozenset(range(4, 20)), notes))


def _without_empty_columns(view: View) -> View:
    """Drop columns with nothing in any row (no energy measured: no energy columns)."""
    keep = [i for i in range(len(view.headers)) if any(row[i] != "–" for row in view.rows)] if view.rows else []
    if not keep:
        return view
    return View(view.title, tuple(view.headers[i] for i in keep), [tuple(row[i] for i in keep) for row in view.rows],
                frozenset(n for n, i in enumerate(keep) if i in view.numeric), view.notes)


def ranking(ranked: Sequence[tuple[Row, float]], by: str) -> View:
    headers = ("#", "device", "model", "runtime", "run", "score", "verdict")
    rows = [(str(i), r.device, _variant(r), runtime_text(r), _run(r), f"{score:.3f}", r.verdict)
            for i, (r, score) in enumerate(ranked, 1)]
    return View(f"ranking by {by}", headers, rows, frozenset({0, 5}))


def _times(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}×"


def comparison(comps: Sequence[Comparison], title: str) -> View:
    """Edge rows against the baseline, as edge ÷ baseline ratios and an accuracy difference."""
    headers = ("model", "run", "device", "p90 ms", "baseline p90 ms", *RATIOS, "Δ top-1 pp", "baseline")
    rows = []
    for c in comps:
        base = c.baseline
        timed = c.edge.timed  # Offline and accuracy rows have no latency metric
        ratios = [_times(c.ratios[k]) if timed or "latency" not in k else "–" for k in RATIOS]
        rows.append((
            _variant(c.edge), _run(c.edge), c.edge.device, cell(c.edge.cells.get("latency_ms.p90")) if timed else "–",
            cell(base.cells.get("latency_ms.p90")) if base and timed else "–", *ratios,
            "–" if c.accuracy_delta_pp is None else f"{c.accuracy_delta_pp:+.2f}",
            f"{base.device} ({base.baseline})" if base else "no baseline run",
        ))
    notes = ("ratios are edge ÷ baseline: latency × 12 = twelve times slower than the baseline, inferences/J × 3 = three "
             "times the work per joule; Δ top-1 = edge − baseline in percentage points",)
    return View(title, headers, rows, frozenset(range(3, 10)), notes)


def class_names(row: Row) -> dict[int, str]:
    """Class ids to names where the row's dataset has them (Fashion-MNIST); otherwise none (ids are shown)."""
    names = {r.dataset.name.split(":")[0] for r in row.results if r.dataset is not None}
    if names == {"fashion-mnist"}:
        from agent.datasets.fashion_mnist import CLASSES

        return dict(enumerate(CLASSES))
    return {}


def class_label(cls: int, names: dict[int, str]) -> str:
    """``7 Sneaker`` (id and name, ``names`` from ``class_names``) or ``7``."""
    name = names.get(cls)
    return f"{cls} {name}" if name else str(cls)


def count_text(value: float) -> str:
    """A count as text: whole, or one decimal where runs over the same samples were averaged."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _share(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None:
        return "–"
    return cell(Cell(value, *(ci if ci is not None else (None, None))), 100)


def per_class(rows: Sequence[Row], title: str = "per class: precision, recall, F1", limit: int | None = None) -> View:
    """One line per (row, class) of accuracy rows with class counts: support, predicted, right and
    precision, recall and F1 (%) with their 95 % intervals. ``limit``: at most this many classes per
    row (the largest by support), the rest counted in a note."""
    headers = ("device", "model", "runtime", "run", "n", "verdict", "class", "support", "predicted", "right",
               "precision %", "recall %", "F1 %")
    out, left_out = [], []
    for row in ordered(rows):
        figures = row.per_class
        if not figures:
            continue
        shown = figures
        if limit is not None and len(figures) > limit:
            shown = sorted(sorted(figures, key=lambda f: (-f.support, f.cls))[:limit], key=lambda f: f.cls)
            left_out.append(f"{row.label}: {len(figures) - limit} of {len(figures)} classes not shown")
        names = class_names(row)
        for f in shown:
            out.append((row.device, _variant(row), runtime_text(row), _run(row), str(row.runs), row.verdict,
                        class_label(f.cls, names), count_text(f.support), count_text(f.predicted), count_text(f.right),
                        _share(f.precision, f.precision_ci95), _share(f.recall, f.recall_ci95), _share(f.f1, f.f1_ci95)))
    notes = ["precision = right / predicted and recall = right / support with Wilson 95 % intervals; F1 = 2·right / "
             "(support + predicted) with Wilson's interval of right / (support + predicted − right) mapped to F1; – where "
             "a class was never predicted (precision) or has no samples (recall). Runs over the same samples count them "
             "once (mean counts)"]
    if left_out:
        notes.append("the classes with the most samples are shown; " + "; ".join(left_out) +
                     " — every class is in the JSON report (rows[].per_class) and scorecard --json")
    return View(title, headers, out, frozenset({4, 7, 8, 9, 10, 11, 12}), tuple(notes))
