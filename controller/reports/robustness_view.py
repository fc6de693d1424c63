"""Robustness as tables and plots: one table per model on a device, its variants side by side.

Each line is a corruption at a severity (clean first, the means last); each variant has its top-1,
its drop from clean (pp, paired interval) and, for a variant that is not fp32, its difference from
the fp32 variant under that same corruption (pp, paired interval). The headline above the table
says it in words: how much the quantised variant loses clean, under its worst corruption, and on
average over the corruptions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from controller.analysis.robustness import CLEAN, Curve
from controller.reports import plots
from controller.reports.views import View, cell

MAX_CORRUPTION_PLOTS = 7  # one chart per corruption (ImageNet-C's seven), per model on a device


def _groups(curves: Sequence[Curve]) -> dict[tuple[str, str], list[Curve]]:
    out: dict[tuple[str, str], list[Curve]] = defaultdict(list)
    for curve in curves:
        out[(curve.row.device, curve.row.family)].append(curve)
    return dict(out)


def _name(curve: Curve) -> str:
    return f"{curve.row.model.removeprefix('zoo:').rsplit('/', 1)[-1]} ({curve.row.precision})"


def _point_name(point: tuple[str, int]) -> tuple[str, str]:
    return (point[0], "–" if point == CLEAN else str(point[1]))


def headline(curve: Curve) -> str | None:
    """``int8.tflite vs fp32.onnx: -0.2 pp [-0.5, 0.1] clean, -4.1 pp [...] under gaussian_noise 5 (its worst), ...``."""
    if curve.reference is None or CLEAN not in curve.vs_reference:
        return None
    text = f"{_name(curve)} vs {_name(curve.reference)}: {cell(curve.vs_reference[CLEAN])} pp clean"
    corrupt = [p for p in curve.points if p in curve.vs_reference]
    if corrupt:
        worst = min(corrupt, key=lambda p: curve.vs_reference[p].value)
        text += f", {cell(curve.vs_reference[worst])} pp under {worst[0]} severity {worst[1]} (its largest loss)"
    if curve.mean_vs_reference is not None:
        text += f", {cell(curve.mean_vs_reference)} pp on average over the corruptions"
    return text


def tables(curves: Sequence[Curve]) -> list[View]:
    """One table per (device, model): lines are points, columns each variant's top-1, drop and Δ fp32."""
    out = []
    for (device, family), members in _groups(curves).items():
        headers = ["corruption", "severity"]
        for curve in members:
            headers += [f"{_name(curve)} top-1 %", "drop pp"] + (["Δ fp32 pp"] if curve.reference is not None else [])
        points = [CLEAN, *sorted({p for c in members for p in c.points})]
        rows = []
        for point in points:
            line = list(_point_name(point))
            for curve in members:
                line += [cell(curve.top1.get(point), 100), "–" if point == CLEAN else cell(curve.drop.get(point))]
                if curve.reference is not None:
                    line.append(cell(curve.vs_reference.get(point)))
            rows.append(tuple(line))
        mean = ["mean of corruptions", "–"]
        for curve in members:
            mean += [cell(curve.mean, 100), cell(curve.mean_drop)]
            if curve.reference is not None:
                mean.append(cell(curve.mean_vs_reference))
        rows.append(tuple(mean))
        notes = [h for c in members if (h := headline(c))]
        notes.append("top-1 with Wilson 95 % intervals, each sample once over repeats; drop = clean − corrupted on the same "
                     "samples (Newcombe paired 95 %); Δ fp32 = this variant − the fp32 variant under the same corruption, "
                     "paired on the identical corrupted samples; the means' intervals are Student's t over samples")
        left = sum(c.left_out for c in members)
        if left:
            notes.append(f"{left} run(s) left out: they scored other clean samples than their row's other runs")
        numeric = frozenset(range(2, len(headers)))
        out.append(View(f"robustness: {family} on {device}", tuple(headers), rows, numeric, tuple(notes)))
    return out


def figures(curves: Sequence[Curve]) -> list[tuple[str, str, str]]:
    """``(title, svg, caption)``: per model on a device, the mean top-1 over corruptions by severity
    (severity 0 = clean) with one line per variant, then one chart per corruption."""
    out = []
    for (device, family), members in _groups(curves).items():
        severities = sorted({s for c in members for _, s in c.points})
        series = {}
        for curve in members:
            xs, ys = [0.0], [curve.top1[CLEAN].value * 100]
            for s in severities:
                at = [curve.top1[p].value for p in curve.points if p[1] == s]
                if at:
                    xs.append(float(s))
                    ys.append(100 * sum(at) / len(at))
            series[_name(curve)] = (xs, ys)
        title = f"robustness: {family} on {device}"
        svg = plots.line_chart(series, "severity (0 = clean)", "top-1 (%), mean over corruptions", title)
        out.append((title, svg, f"{title}: top-1 by corruption severity, averaged over the corruptions scored at each "
                                "severity, one line per variant; intervals are in the robustness table"))
        for corruption in sorted({c for curve in members for c, _ in curve.points})[:MAX_CORRUPTION_PLOTS]:
            per = {}
            for curve in members:
                pts = [CLEAN, *[p for p in curve.points if p[0] == corruption]]
                per[_name(curve)] = [(float(p[1]), *(None if v is None else 100 * v for v in
                                                     (curve.top1[p].value, curve.top1[p].lo, curve.top1[p].hi)))
                                     for p in pts]
            sub = f"{title} — {corruption}"
            out.append((sub, plots.error_bar_chart(per, "severity (0 = clean)", "top-1 (%)", sub),
                        f"{sub}: top-1 clean and at each severity of {corruption}, one line per variant, with Wilson "
                        "95 % intervals (the paired drops and Δ fp32 are in the robustness table)"))
    return out
