"""The scaling view: tables (``edgeperf scorecard --scaling``, the report) and plots (the HTML report) of a
campaign's ``sweep:``, from ``controller.analysis.scaling``.

One table and one plot per swept axis (threads, batch size, devices at once). The tables list every point,
oversubscribed ones included with their note; the plots draw only the points a device could run
(``Point.drawn``) and say in the caption how many were left out and why, so a 2-core machine never shows a
4-thread "curve". Kept out of ``campaign_report`` so that file only hooks these in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.contract import Result
from controller.analysis import scaling
from controller.analysis.scaling import Group, Ratio
from controller.reports import plots
from controller.reports.views import SHORT_SCENARIO, View, _digits

TITLES = {"threads": "scaling: threads", "batch_size": "scaling: batch size", "devices": "scaling: devices at once"}
AXIS_LABEL = {"threads": "threads", "batch_size": "batch size", "devices": "devices at once"}
BASELINE = {"threads": "1 thread", "batch_size": "batch 1", "devices": "each device alone"}
HEADERS = ("device", "model", "runtime", "run", "cores", "governor")


def groups(results: Sequence[Result]) -> list[Group]:
    """The campaign's scaling groups (nothing when it swept nothing)."""
    return scaling.analyse(results)


def ratio_text(r: Ratio | None, times: bool = True) -> str:
    """``1.93× [1.81, 2.06]``; ``1.93× (1 run: no interval)``; ``–``."""
    if r is None or r.value != r.value:
        return "–"
    unit = "×" if times else ""
    text = f"{r.value:.3g}{unit}"
    if r.lo is not None and r.hi is not None:
        return text + f" [{r.lo:.3g}, {r.hi:.3g}]"
    return text + (f" ({r.note})" if r.note and r.note != "baseline" else "")


def _cores(g: Group) -> str:
    if g.cores_logical is None:
        return "?"
    return f"{g.cores_logical} logical" + (f" / {g.cores_physical} physical" if g.cores_physical else "")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def views(found: Sequence[Group]) -> list[View]:
    """One table per swept axis, every point listed (oversubscribed ones with their note)."""
    out = []
    for axis in scaling.AXES:
        mine = [g for g in found if g.axis == axis]
        if not mine:
            continue
        headers = (*HEADERS, AXIS_LABEL[axis], "n", "samples/s", "speed-up", "efficiency",
                   *(("overlap", "members") if axis == "devices" else ()), "note")
        rows = []
        for g in mine:
            run = f"{SHORT_SCENARIO.get(g.scenario, g.scenario)} perf"
            for p in g.points:
                extra = (_percent(p.overlap), ", ".join(p.members) or "each alone") if axis == "devices" else ()
                efficiency = ratio_text(p.efficiency, times=False) if axis != "batch_size" else "n/a"
                rows.append((g.device, f"{g.model}/{g.variant}", g.runtime, run, _cores(g), g.governor or "?", str(p.value),
                             str(p.runs), _digits(p.throughput_sps), ratio_text(p.speedup), efficiency, *extra,
                             "; ".join(n for n in (p.note, *((g.notes) if p is g.points[0] else ())) if n)))
        notes = ["samples/s is the mean over repeats; speed-up is the ratio of geometric means against the baseline "
                 "point with a 95 % Welch t interval on log throughput (fewer than 2 runs on a side: no interval); "
                 "efficiency = speed-up ÷ the ideal speed-up"]
        if axis == "threads":
            notes.append("a point with more threads than the device's logical cores is oversubscribed: listed, not plotted")
        if axis == "batch_size":
            notes.append(scaling.BATCH_NOTE)
        if axis == "devices":
            notes.append("a gang's samples/s is the fleet throughput: all members' samples over the union of their measured "
                         "windows; overlap is the share of that union all members ran together; its baseline is the "
                         "mean of the members' own Offline runs")
        numeric = frozenset({6, 7, 8})
        out.append(View(TITLES[axis], headers, rows, numeric, tuple(notes)))
    return out


def figures(found: Sequence[Group]) -> list[tuple[str, str | None, str]]:
    """(name, svg or None, caption) per swept axis: speed-up against the axis, ideal line, 95 % error bars."""
    out = []
    for axis in scaling.AXES:
        mine = [g for g in found if g.axis == axis]
        if not mine:
            continue
        series: dict[str, list[tuple[float, float, float | None, float | None]]] = {}
        hidden = []
        for g in mine:
            pts = []
            for p in g.points:
                if not p.drawn:
                    hidden.append(f"{g.device} {p.value} ({p.note})")
                    continue
                if p.speedup is not None and p.speedup.value == p.speedup.value:
                    pts.append((float(p.value), p.speedup.value, p.speedup.lo, p.speedup.hi))
            series[g.label] = pts
        title = f"speed-up against {AXIS_LABEL[axis]}"
        ideal = axis != "batch_size"
        svg = plots.error_bar_chart(series, AXIS_LABEL[axis], "speed-up (×)", title, ideal=ideal,
                                    x_log=axis == "batch_size" and plots.spans_decades([p for pts in series.values()
                                                                                        for p, *_ in pts], 1.0))
        caption = (f"speed-up against the baseline point ({BASELINE[axis]} or the smallest value swept), the ratio of "
                   "geometric means over repeats with its 95 % interval; ")
        caption += "the dashed line is linear scaling. " if ideal else f"{scaling.BATCH_NOTE}. "
        if hidden:
            caption += f"Not drawn ({len(hidden)}): {'; '.join(hidden)}."
        out.append((title, svg, caption.strip()))
    return out


def to_dicts(found: Sequence[Group]) -> list[dict[str, Any]]:
    return [g.to_dict() for g in found]
