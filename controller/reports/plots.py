"""Small SVG plots for the HTML report, written by hand so the report stays one offline file.

A report is shared by mail and opened on machines without network, so it can fetch nothing: no
plotting library's scripts, fonts or images. These functions are pure (data in, ``<svg>`` text
out) and draw only what a benchmark report needs: latency CDFs (``line_chart``), energy against
latency (``scatter``; with ``pareto=True`` it also draws each series' Pareto front, the points
``pareto_front`` finds), throughput with interval whiskers (``bar_chart``) and a power trace with
the measured window shaded (``trace_chart``).

Every plot has a visible title, axis labels with units, tick values on 1-2-5 steps (or decades
on a log axis), a legend, an accessible name (``role="img"``, ``aria-label`` and ``<title>``),
and colours from one colour-blind-safe palette. All text is escaped. Data that cannot be drawn
(nothing at all, NaN, a constant series, non-positive values on a log axis) gives a plot that
says so or a sensible range, never a broken SVG or a division by zero.

The SVG carries no ``xmlns``: inline in HTML5 the parser puts ``<svg>`` in the SVG namespace
by itself, and a report must not contain a single ``http://`` string (the namespace URI looks
like a network reference to anyone auditing the file). ``as_file`` adds it for a standalone
``.svg`` file.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

# Okabe & Ito's colour-blind-safe palette (yellow dropped: unreadable on white), then black.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D31", "#000000")
DASHES = ("", "6 3", "2 3", "8 3 2 3")  # line styles once the palette has been used up
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
WIDTH = 720
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP = 72, 20, 40
AXIS_BELOW = 46  # x tick labels and the x axis label under the plot area
LEGEND_ROW = 18
CHAR_W = 6.4  # average glyph width at 11-12 px, for fitting labels without a font metric
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Point(NamedTuple):
    """One scatter point: ``series`` picks its colour; ``hollow`` marks an estimate; ``dashed`` (a
    dashed outline, pale fill) marks a second caveat the plot's ``dashed_label`` names; ``note`` is
    added to the tooltip."""

    label: str
    x: float
    y: float
    series: str
    hollow: bool = False
    dashed: bool = False
    note: str = ""


class Bar(NamedTuple):
    """One bar with its interval (``lo``/``hi`` None when there is none); ``series`` picks its colour."""

    label: str
    value: float
    lo: float | None = None
    hi: float | None = None
    series: str | None = None


def esc(text: object) -> str:
    """Text safe inside SVG/HTML elements and attributes (XML-invalid control characters dropped)."""
    return html.escape(_CONTROL.sub("", str(text)), quote=True)


def _n(value: float) -> str:
    """A coordinate: one decimal is finer than a pixel and keeps the SVG small."""
    text = f"{value:.1f}"
    return "0" if text in ("-0.0", "0.0") else text.removesuffix(".0")


def _finite(*values: float | None) -> bool:
    return all(v is not None and isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _fit(text: str, width_px: float) -> str:
    """Truncate ``text`` with an ellipsis to fit about ``width_px`` (the full text goes in a tooltip)."""
    room = max(int(width_px / CHAR_W), 4)
    return text if len(text) <= room else text[: room - 1] + "…"


# ---- ticks -------------------------------------------------------------------------------------
def nice_step(span: float) -> float:
    """The 1-2-5 × 10^k step that cuts ``span`` into about five intervals (d3's rule: the
    candidate nearest on a log scale, so 1.0 gets 0.2, not 0.5)."""
    if not _finite(span) or span <= 0:
        return 1.0
    raw = span / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    error = raw / magnitude
    if error >= math.sqrt(50):
        return 10 * magnitude
    if error >= math.sqrt(10):
        return 5 * magnitude
    if error >= math.sqrt(2):
        return 2 * magnitude
    return magnitude


def value_text(value: float) -> str:
    """A data value for a label or tooltip: 12,519 · 352.1 · 2.83 · 0.0802 (no exponent notation)."""
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 0.001 or magnitude == 0:
        return f"{value:.3g}" if magnitude < 10 else f"{value:.2f}"
    return f"{value:.2e}"


def tick_label(value: float, step: float | None = None) -> str:
    """A tick value with as many decimals as its step needs: 0.05, 0.1, 2, 1k, 20k."""
    if step is not None and abs(value) < step * 1e-6:
        value = 0.0
    if abs(value) >= 10_000 and (step is None or step >= 1000):
        return f"{value / 1000:g}k"
    if step is not None and step > 0:
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        return f"{value:.{decimals}f}"
    return f"{value:g}"


@dataclass(frozen=True)
class Axis:
    """A value range mapped onto pixels, with its ticks (linear or log10)."""

    lo: float
    hi: float
    log: bool
    ticks: tuple[float, ...]
    step: float | None  # linear tick step (None on a log axis)

    def to_px(self, value: float, start: float, end: float) -> float:
        if self.log:
            a, b, v = math.log10(self.lo), math.log10(self.hi), math.log10(max(value, self.lo * 1e-3))
        else:
            a, b, v = self.lo, self.hi, value
        return start + (v - a) / (b - a) * (end - start)

    def label(self, value: float) -> str:
        return tick_label(value, self.step)


def linear_axis(values: Sequence[float], include_zero: bool = False, fixed: tuple[float, float] | None = None,
                tight: bool = False, pad: float = 0.0) -> Axis:
    """Nice linear range and ticks around ``values``; a constant series gets a band around it.

    The range is widened to whole tick steps unless ``tight`` (then it is the data's own range,
    for a time axis where a widened range is only empty space); ``pad`` first widens it by that
    share of the span, so markers do not sit on the frame."""
    if fixed is not None:
        lo, hi = fixed
    else:
        finite = [v for v in values if _finite(v)] or [0.0]
        lo, hi = min(finite), max(finite)
        lo, hi = lo - (hi - lo) * pad, hi + (hi - lo) * pad
        if include_zero:
            lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi <= lo:  # constant (or a single value): never a zero-width range
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
        if include_zero and lo < 0 <= lo + pad:
            lo = 0.0
    step = nice_step(hi - lo)
    if fixed is None and not tight:
        lo, hi = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(round(k * step, 12))
        k += 1
    return Axis(lo, hi, False, tuple(ticks), step)


def log_axis(values: Sequence[float], tight: bool = False) -> Axis:
    """Log10 axis around the positive ``values``: whole decades, with 2 and 5 between them when
    there are few; ``tight`` ends the axis just beyond the data instead, keeping the 1-2-5 ticks
    inside it (when at least two fall there)."""
    positive = [v for v in values if _finite(v) and v > 0] or [1.0]
    low, high = min(positive), max(positive)
    lo_e, hi_e = math.floor(math.log10(low) + 1e-12), math.ceil(math.log10(high) - 1e-12)
    if hi_e <= lo_e:
        hi_e = lo_e + 1
    mantissas = (1, 2, 5) if hi_e - lo_e <= 3 else (1,)
    ticks = [m * 10.0**e for e in range(lo_e, hi_e + 1) for m in mantissas if m * 10.0**e <= 10.0**hi_e * (1 + 1e-9)]
    if tight and high > low:
        lo, hi = low / 1.08, high * 1.08
        inside = [t for t in ticks if lo <= t <= hi]
        if len(inside) >= 2:
            return Axis(lo, hi, True, tuple(inside), None)
    return Axis(10.0**lo_e, 10.0**hi_e, True, tuple(ticks), None)


def spans_decades(values: Sequence[float], decades: float = 1.0) -> bool:
    """Whether positive ``values`` span more than ``decades`` powers of ten (then a log axis reads better)."""
    finite = [v for v in values if _finite(v)]
    if not finite or min(finite) <= 0:
        return False
    return math.log10(max(finite) / min(finite)) > decades


def _log_ok(values: Sequence[float]) -> bool:
    """A log axis needs every value positive; otherwise the plot falls back to linear rather than drop data."""
    finite = [v for v in values if _finite(v)]
    return bool(finite) and all(v > 0 for v in finite)


# ---- frame ---------------------------------------------------------------------------------------
def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def dash(i: int) -> str:
    return DASHES[(i // len(PALETTE)) % len(DASHES)]


def _open_plot(title: str, bottom: float, legend_rows: int, desc: str) -> list[str]:
    """``_open`` for a plot area down to ``bottom`` with the x axis below it, then the legend."""
    return _open(title, bottom + AXIS_BELOW + legend_rows * LEGEND_ROW + 12, desc)


def _open(title: str, height: float, desc: str) -> list[str]:
    return [
        f'<svg class="plot" viewBox="0 0 {WIDTH} {_n(height)}" width="100%" role="img" aria-label="{esc(title)}" '
        f'font-family="{FONT}" font-size="12" preserveAspectRatio="xMidYMid meet">',
        f"<title>{esc(title)}</title>",
        f"<desc>{esc(desc)}</desc>" if desc else "",
        f'<rect x="0" y="0" width="{WIDTH}" height="{_n(height)}" fill="#ffffff"/>',
        f'<text x="{WIDTH / 2:.0f}" y="22" text-anchor="middle" font-size="15" font-weight="600" fill="#222">'
        f"{esc(_fit(title, WIDTH - 20))}</text>",
    ]


def empty(title: str, message: str = "no data") -> str:
    """A plot that says why there is nothing to draw, rather than an empty or broken SVG."""
    height = 120
    parts = _open(title, height, message)
    parts.append(f'<rect x="20" y="36" width="{WIDTH - 40}" height="64" fill="#f6f6f6" stroke="#ccc" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{WIDTH / 2:.0f}" y="73" text-anchor="middle" fill="#555">{esc(message)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def as_file(svg: str) -> str:
    """A plot as a standalone ``.svg`` file (with the namespace an inline SVG does without)."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)


def _axes(x: Axis, y: Axis, box: tuple[float, float, float, float], x_label: str, y_label: str) -> list[str]:
    """Grid, ticks and axis labels for the plot area ``box`` = (left, top, right, bottom)."""
    left, top, right, bottom = box
    out = ['<g class="axes" fill="#444" stroke-width="1">']
    for t in x.ticks:
        px = x.to_px(t, left, right)
        out.append(f'<line x1="{_n(px)}" y1="{_n(top)}" x2="{_n(px)}" y2="{_n(bottom)}" stroke="#e5e5e5"/>')
        out.append(f'<line x1="{_n(px)}" y1="{_n(bottom)}" x2="{_n(px)}" y2="{_n(bottom + 5)}" stroke="#444"/>')
        out.append(f'<text x="{_n(px)}" y="{_n(bottom + 18)}" text-anchor="middle">{esc(x.label(t))}</text>')
    for t in y.ticks:
        py = y.to_px(t, bottom, top)
        out.append(f'<line x1="{_n(left)}" y1="{_n(py)}" x2="{_n(right)}" y2="{_n(py)}" stroke="#e5e5e5"/>')
        out.append(f'<line x1="{_n(left - 5)}" y1="{_n(py)}" x2="{_n(left)}" y2="{_n(py)}" stroke="#444"/>')
        out.append(f'<text x="{_n(left - 8)}" y="{_n(py + 4)}" text-anchor="end">{esc(y.label(t))}</text>')
    out.append(f'<rect x="{_n(left)}" y="{_n(top)}" width="{_n(right - left)}" height="{_n(bottom - top)}" '
               'fill="none" stroke="#444"/>')
    out.append(f'<text x="{_n((left + right) / 2)}" y="{_n(bottom + 38)}" text-anchor="middle" font-size="13">'
               f"{esc(x_label)}{' (log scale)' if x.log else ''}</text>")
    if y_label:
        mid = (top + bottom) / 2
        out.append(f'<text transform="translate(16 {_n(mid)}) rotate(-90)" text-anchor="middle" font-size="13">'
                   f"{esc(y_label)}{' (log scale)' if y.log else ''}</text>")
    out.append("</g>")
    return out


@dataclass(frozen=True)
class _Entry:
    """One legend line: a swatch (SVG drawn at 0,0, 20 px wide) and its text."""

    swatch: str
    text: str


def _legend_rows(entries: Sequence[_Entry]) -> tuple[int, int]:
    """(columns, rows): two columns when every label fits in half the width, else one."""
    if not entries:
        return 1, 0
    columns = 2 if max(len(e.text) for e in entries) * CHAR_W < (WIDTH - PLOT_LEFT) / 2 - 40 and len(entries) > 1 else 1
    return columns, math.ceil(len(entries) / columns)


def _legend(entries: Sequence[_Entry], top: float) -> list[str]:
    columns, _rows = _legend_rows(entries)
    col_w = (WIDTH - PLOT_LEFT - PLOT_RIGHT) / columns
    out = [f'<g class="legend" font-size="12" fill="#222" transform="translate({PLOT_LEFT} {_n(top)})">']
    for i, entry in enumerate(entries):
        col, row = i % columns, i // columns
        x, y = col * col_w, row * LEGEND_ROW
        out.append(f'<g transform="translate({_n(x)} {_n(y)})"><title>{esc(entry.text)}</title>{entry.swatch}'
                   f'<text x="28" y="4">{esc(_fit(entry.text, col_w - 36))}</text></g>')
    out.append("</g>")
    return out


def _line_swatch(i: int) -> str:
    d = dash(i)
    return (f'<line x1="0" y1="0" x2="20" y2="0" stroke="{color(i)}" stroke-width="2.5"'
            f'{f" stroke-dasharray={chr(34)}{d}{chr(34)}" if d else ""}/>')


def _marker(shape: int, x: float, y: float, fill: str, stroke: str, r: float = 4.5, dashed: bool = False) -> str:
    """Circle, square, triangle or diamond (shapes tell series apart once colours repeat); ``dashed``:
    a dashed outline around a pale fill."""
    kind = shape % 4
    style = f'fill="{fill}" stroke="{stroke}" stroke-width="1.8"'
    if dashed:
        style += ' stroke-dasharray="2.5 1.5" fill-opacity="0.3"'
    if kind == 0:
        return f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{r}" {style}/>'
    if kind == 1:
        return f'<rect x="{_n(x - r)}" y="{_n(y - r)}" width="{_n(2 * r)}" height="{_n(2 * r)}" {style}/>'
    if kind == 2:
        pts = f"{_n(x)},{_n(y - r * 1.2)} {_n(x + r * 1.1)},{_n(y + r * 0.9)} {_n(x - r * 1.1)},{_n(y + r * 0.9)}"
        return f'<polygon points="{pts}" {style}/>'
    pts = f"{_n(x)},{_n(y - r * 1.3)} {_n(x + r * 1.3)},{_n(y)} {_n(x)},{_n(y + r * 1.3)} {_n(x - r * 1.3)},{_n(y)}"
    return f'<polygon points="{pts}" {style}/>'


def _thin(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Pixel points with consecutive duplicates dropped and runs in one pixel column cut to their
    ends: a CDF of thousands of histogram buckets draws the same, at a fraction of the size.
    (Meant for monotone curves; a 600-point power trace rarely puts two samples in one column.)"""
    out: list[tuple[float, float]] = []
    for x, y in points:
        p = (round(x, 1), round(y, 1))
        if out and p == out[-1]:
            continue
        if len(out) >= 2 and round(out[-1][0]) == round(p[0]) == round(out[-2][0]):
            out[-1] = p  # same pixel column as the last two: keep the run's first and last point
            continue
        out.append(p)
    return out


# ---- the plots --------------------------------------------------------------------------------------
def line_chart(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], x_label: str, y_label: str, title: str,
               x_log: bool = False, *, y_range: tuple[float, float] | None = None) -> str:
    """Lines, one per series (a latency CDF: x = latency, y = cumulative share).

    ``x_log`` falls back to a linear axis when a value is not positive (a log axis would have to
    drop it); ``y_range`` fixes the y axis (0-100 for a CDF in percent).
    """
    clean = {}
    for label, (xs, ys) in series.items():
        pts = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True) if _finite(x, y)]
        if pts:
            clean[label] = pts
    if not clean:
        return empty(title, "no data")
    all_x = [x for pts in clean.values() for x, _ in pts]
    all_y = [y for pts in clean.values() for _, y in pts]
    x_axis = log_axis(all_x, tight=True) if x_log and _log_ok(all_x) else linear_axis(all_x, tight=True)
    y_axis = linear_axis(all_y, fixed=y_range)
    entries = [_Entry(_line_swatch(i), label) for i, label in enumerate(clean)]
    _cols, rows = _legend_rows(entries)
    bottom = PLOT_TOP + 300
    left, right = PLOT_LEFT, WIDTH - PLOT_RIGHT
    parts = _open_plot(title, bottom, rows, f"{len(clean)} series; x: {x_label}; y: {y_label}")
    parts += _axes(x_axis, y_axis, (left, PLOT_TOP, right, bottom), x_label, y_label)
    parts.append('<g class="lines" fill="none" stroke-width="2">')
    for i, (label, pts) in enumerate(clean.items()):
        px = _thin([(x_axis.to_px(x, left, right), y_axis.to_px(min(max(y, y_axis.lo), y_axis.hi), bottom, PLOT_TOP))
                    for x, y in pts])
        d = dash(i)
        dash_attr = f' stroke-dasharray="{d}"' if d else ""
        if len(px) == 1:
            parts.append(f'<circle cx="{_n(px[0][0])}" cy="{_n(px[0][1])}" r="3.5" fill="{color(i)}">'
                         f"<title>{esc(label)}</title></circle>")
            continue
        coords = " ".join(f"{_n(x)},{_n(y)}" for x, y in px)
        parts.append(f'<polyline points="{coords}" stroke="{color(i)}"{dash_attr}><title>{esc(label)}</title></polyline>')
    parts.append("</g>")
    parts += _legend(entries, bottom + AXIS_BELOW + 8)
    parts.append("</svg>")
    return "".join(parts)


def _series_index(present: Sequence[str], order: Sequence[str]) -> dict[str, int]:
    """Colour slots: ``order`` first (so one device keeps its colour in every plot of a report,
    present or not), then series not named there, by appearance."""
    names = list(dict.fromkeys([*order, *present]))
    return {s: i for i, s in enumerate(names)}


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place_labels(spots: Sequence[tuple[float, float, str]], box: tuple[float, float, float, float],
                  size: float = 10.5) -> list[tuple[float, float, str] | None]:
    """(x, y, text-anchor) for each point's label: the first of six spots around the marker that
    stays inside the plot and clear of other labels and markers; None where none does (the
    point keeps its tooltip)."""
    left, top, right, bottom = box
    markers = [(cx - 7, cy - 7, cx + 7, cy + 7) for cx, cy, _ in spots]
    placed: list[tuple[float, float, float, float]] = []
    out: list[tuple[float, float, str] | None] = []
    for n, (cx, cy, text) in enumerate(spots):
        width = len(text) * CHAR_W * size / 12
        choice = None
        for x, y, anchor in ((cx + 9, cy + 4, "start"), (cx - 9, cy + 4, "end"), (cx + 4, cy - 10, "start"),
                             (cx - 4, cy - 10, "end"), (cx + 4, cy + 19, "start"), (cx - 4, cy + 19, "end")):
            x0 = x if anchor == "start" else x - width
            rect = (x0, y - size, x0 + width, y + 3)
            if not (left <= rect[0] and rect[2] <= right and top <= rect[1] and rect[3] <= bottom):
                continue
            if any(_overlaps(rect, r) for r in placed) or any(_overlaps(rect, m) for k, m in enumerate(markers) if k != n):
                continue
            choice = (x, y, anchor)
            placed.append(rect)
            break
        out.append(choice)
    return out


def pareto_front(points: Sequence[tuple[float, float]], *, minimise_x: bool = True, maximise_y: bool = True) -> list[int]:
    """Indices (ascending) of the points no other point dominates. A point dominates another when it
    is at least as good on both axes and better on one (lower x when ``minimise_x``, higher y when
    ``maximise_y``); equal points do not dominate each other, so both are on the front. A point
    with a non-finite coordinate is never on the front and dominates nothing. Quadratic, for the
    handful of variants a report plots."""
    sx, sy = (1.0 if minimise_x else -1.0), (-1.0 if maximise_y else 1.0)  # both axes as "lower is better"
    scored = [(i, sx * float(x), sy * float(y)) for i, (x, y) in enumerate(points) if _finite(x, y)]
    return [i for i, x, y in scored
            if not any(a <= x and b <= y and (a < x or b < y) for _, a, b in scored)]


def _front_swatch() -> str:
    return '<path d="M0 5 H9 V-5 H20" fill="none" stroke="#444" stroke-width="1.6"/>'


def scatter(points: Sequence[tuple], x_label: str, y_label: str, title: str, *, x_log: bool = False, y_log: bool = False,
            filled_label: str | None = None, hollow_label: str | None = None, annotate: bool | None = None,
            order: Sequence[str] = (), dashed_label: str | None = None, pareto: bool = False,
            pareto_label: str = "Pareto front (no other point of the series is both lower and higher)") -> str:
    """Points ``(label, x, y, series[, hollow[, dashed[, note]]])``: colour and shape by series, a
    hollow marker for an estimate (``hollow_label`` explains it in the legend), a dashed outline
    for a second caveat (``dashed_label``). ``annotate`` writes each point's label beside it where
    it fits without overlap (default: when there are at most 12 points); every point has a
    tooltip. ``order`` fixes series colours across plots.

    ``pareto`` draws each series' own Pareto front (lower x and higher y are better; series are
    never pooled) as a step line in the series' colour through its front points, which carry
    ``class="front"``; every point then names its series in ``data-series``."""
    pts = [p for p in (Point(*p) for p in points) if _finite(p.x, p.y)]
    if not pts:
        return empty(title, "no data")
    xs, ys = [p.x for p in pts], [p.y for p in pts]
    x_axis = log_axis(xs, tight=True) if x_log and _log_ok(xs) else linear_axis(xs, pad=0.05)
    y_axis = log_axis(ys, tight=True) if y_log and _log_ok(ys) else linear_axis(ys, pad=0.05)
    index = _series_index([p.series for p in pts], order)
    present = sorted({p.series for p in pts}, key=index.__getitem__)
    entries = [_Entry(_marker(index[s] // len(PALETTE), 10, 0, color(index[s]), color(index[s])), s) for s in present]
    if any(not p.hollow for p in pts) and any(p.hollow for p in pts) and filled_label:
        entries.append(_Entry(_marker(0, 10, 0, "#666", "#666"), filled_label))
    if any(p.hollow for p in pts):
        entries.append(_Entry(_marker(0, 10, 0, "#ffffff", "#666"), hollow_label or "hollow marker"))
    if any(p.dashed for p in pts):
        entries.append(_Entry(_marker(0, 10, 0, "#666", "#666", dashed=True), dashed_label or "dashed outline"))
    front: set[int] = set()
    if pareto:
        for s in present:
            members = [k for k, p in enumerate(pts) if p.series == s]
            front |= {members[j] for j in pareto_front([(pts[k].x, pts[k].y) for k in members])}
        entries.append(_Entry(_front_swatch(), pareto_label))
    _cols, rows = _legend_rows(entries)
    bottom = PLOT_TOP + 300
    left, right = PLOT_LEFT, WIDTH - PLOT_RIGHT
    desc = f"{len(pts)} points{f', {len(front)} on a Pareto front' if pareto else ''}; x: {x_label}; y: {y_label}"
    parts = _open_plot(title, bottom, rows, desc)
    parts += _axes(x_axis, y_axis, (left, PLOT_TOP, right, bottom), x_label, y_label)
    if front:
        parts.append('<g class="pareto" fill="none" stroke-width="1.6" stroke-opacity="0.8">')
        for s in present:
            on = sorted(((x_axis.to_px(p.x, left, right), y_axis.to_px(p.y, bottom, PLOT_TOP))
                         for k, p in enumerate(pts) if k in front and p.series == s), key=lambda c: (c[0], -c[1]))
            if len(on) < 2:
                continue  # a front of one point is the point itself
            steps = "".join(f" H{_n(x)} V{_n(y)}" for x, y in on[1:])
            d = dash(index[s])
            dash_attr = f' stroke-dasharray="{d}"' if d else ""
            parts.append(f'<path d="M{_n(on[0][0])} {_n(on[0][1])}{steps}" stroke="{color(index[s])}"{dash_attr}>'
                         f"<title>{esc(f'{s}: Pareto front')}</title></path>")
        parts.append("</g>")
    label_them = len(pts) <= 12 if annotate is None else annotate
    spots = [(x_axis.to_px(p.x, left, right), y_axis.to_px(p.y, bottom, PLOT_TOP), _fit(p.label, (right - left) / 2 - 20))
             for p in pts]
    places = _place_labels(spots, (left, PLOT_TOP, right, bottom)) if label_them else [None] * len(pts)
    parts.append('<g class="points">')
    for k, (p, (cx, cy, text), place) in enumerate(zip(pts, spots, places, strict=True)):
        i = index[p.series]
        tip = (f"{p.label}: {value_text(p.x)}, {value_text(p.y)}{' (estimated)' if p.hollow else ''}"
               f"{f' ({p.note})' if p.note else ''}{' (on the Pareto front)' if k in front else ''}")
        on_front = ' class="front"' if k in front else ""
        attrs = f'{on_front} data-series="{esc(p.series)}"' if pareto else ""
        marker = _marker(i // len(PALETTE), cx, cy, "#ffffff" if p.hollow else color(i), color(i), 5.5, p.dashed)
        parts.append(f"<g{attrs}><title>{esc(tip)}</title>{marker}</g>")
        if place:
            parts.append(f'<text x="{_n(place[0])}" y="{_n(place[1])}" text-anchor="{place[2]}" font-size="10.5" '
                         f'fill="#333">{esc(text)}</text>')
    parts.append("</g>")
    parts += _legend(entries, bottom + AXIS_BELOW + 8)
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(bars: Sequence[tuple], value_label: str, title: str, *, interval_label: str = "95 % interval",
              order: Sequence[str] = ()) -> str:
    """Horizontal bars ``(label, value, lo, hi[, series])`` from zero, with a whisker where an
    interval exists and the value printed at the bar's end. Horizontal, because a benchmark
    row's label (device · model · scenario) is too long to stand under a vertical bar.
    ``order`` fixes series colours across plots."""
    items = [b for b in (Bar(*b) for b in bars) if _finite(b.value)]
    if not items:
        return empty(title, "no data")
    values = [b.value for b in items] + [v for b in items for v in (b.lo, b.hi) if _finite(v)]
    axis = linear_axis(values, include_zero=True)
    index = _series_index([b.series for b in items if b.series is not None], order)
    present = sorted({b.series for b in items if b.series is not None}, key=index.__getitem__)
    entries = [_Entry(f'<rect x="0" y="-6" width="20" height="12" fill="{color(index[s])}"/>', s) for s in present]
    if any(_finite(b.lo, b.hi) for b in items):
        entries.append(_Entry('<path d="M2 -5 V5 M2 0 H18 M18 -5 V5" stroke="#222" stroke-width="1.5" fill="none"/>',
                              interval_label))
    gutter = min(max(max(len(b.label) for b in items) * CHAR_W + 14, 90), 380)
    left, right = gutter, WIDTH - PLOT_RIGHT - 60  # room for the value text at the longest bar's end
    band = 24
    bottom = PLOT_TOP + band * len(items) + 6
    _cols, rows = _legend_rows(entries)
    parts = _open_plot(title, bottom, rows, f"{len(items)} bars; {value_label}")
    # y is categorical: draw the value axis only, with a label column on the left
    y_dummy = Axis(0, 1, False, (), None)
    parts += _axes(axis, y_dummy, (left, PLOT_TOP, right, bottom), value_label, "")
    zero = axis.to_px(0.0, left, right)
    parts.append('<g class="bars">')
    for n, b in enumerate(items):
        top = PLOT_TOP + 6 + n * band
        mid = top + (band - 8) / 2
        px = axis.to_px(b.value, left, right)
        fill = color(index[b.series]) if b.series is not None else color(0)
        interval = f" [{value_text(b.lo)}, {value_text(b.hi)}]" if _finite(b.lo, b.hi) else ""
        parts.append(f"<g><title>{esc(f'{b.label}: {value_text(b.value)}{interval}')}</title>")
        parts.append(f'<rect x="{_n(min(px, zero))}" y="{_n(top)}" width="{_n(abs(px - zero))}" height="{band - 8}" '
                     f'fill="{fill}" fill-opacity="0.85"/>')
        end = px
        if _finite(b.lo, b.hi):
            lo_px, hi_px = axis.to_px(b.lo, left, right), axis.to_px(b.hi, left, right)
            parts.append(f'<path d="M{_n(lo_px)} {_n(mid - 6)} V{_n(mid + 6)} M{_n(lo_px)} {_n(mid)} H{_n(hi_px)} '
                         f'M{_n(hi_px)} {_n(mid - 6)} V{_n(mid + 6)}" stroke="#222" stroke-width="1.5" fill="none"/>')
            end = max(px, hi_px)
        parts.append(f'<text x="{_n(end + 5)}" y="{_n(mid + 4)}" font-size="11" fill="#222">{esc(value_text(b.value))}</text>')
        parts.append(f'<text x="{_n(left - 8)}" y="{_n(mid + 4)}" text-anchor="end" fill="#222">'
                     f"{esc(_fit(b.label, gutter - 14))}</text></g>")
    parts.append("</g>")
    parts += _legend(entries, bottom + AXIS_BELOW + 8)
    parts.append("</svg>")
    return "".join(parts)


def trace_chart(t_s: Sequence[float], watts: Sequence[float], window_s: float | None, title: str, *,
                idle_w: float | None = None, line_label: str = "power") -> str:
    """Power over time (seconds from the measured window's start) with ``[0, window_s]`` shaded
    and, when known, the idle power as a dashed line. The y axis starts at zero so the height of
    the curve reads as power, not as its wiggle."""
    pts = [(float(t), float(w)) for t, w in zip(t_s, watts, strict=True) if _finite(t, w)]
    if not pts:
        return empty(title, "no power samples")
    window = float(window_s) if _finite(window_s) and window_s and window_s > 0 else None
    xs = [t for t, _ in pts] + ([0.0, window] if window else [])
    ys = [w for _, w in pts] + ([idle_w] if _finite(idle_w) else [])
    x_axis, y_axis = linear_axis(xs, tight=True), linear_axis(ys, include_zero=True)
    entries = [_Entry(_line_swatch(0), line_label)]
    if window:
        entries.append(_Entry('<rect x="0" y="-6" width="20" height="12" fill="#0072B2" fill-opacity="0.12" stroke="#0072B2" '
                              'stroke-opacity="0.4"/>', f"measured window ({window:.3g} s)"))
    if _finite(idle_w):
        entries.append(_Entry('<line x1="0" y1="0" x2="20" y2="0" stroke="#D55E00" stroke-width="2" stroke-dasharray="5 3"/>',
                              f"idle power ({idle_w:.3g} W)"))
    _cols, rows = _legend_rows(entries)
    plot_h = 260
    bottom = PLOT_TOP + plot_h
    left, right = PLOT_LEFT, WIDTH - PLOT_RIGHT
    parts = _open_plot(title, bottom, rows, f"{len(pts)} power samples over time")
    if window:
        x0, x1 = x_axis.to_px(0.0, left, right), x_axis.to_px(window, left, right)
        parts.append(f'<rect class="window" x="{_n(x0)}" y="{PLOT_TOP}" width="{_n(x1 - x0)}" height="{plot_h}" '
                     'fill="#0072B2" fill-opacity="0.12"/>')
    parts += _axes(x_axis, y_axis, (left, PLOT_TOP, right, bottom), "time from the measured window's start (s)", "power (W)")
    if _finite(idle_w):
        py = y_axis.to_px(idle_w, bottom, PLOT_TOP)
        parts.append(f'<line x1="{left}" y1="{_n(py)}" x2="{right}" y2="{_n(py)}" stroke="#D55E00" stroke-width="1.5" '
                     'stroke-dasharray="5 3"/>')
    px = _thin([(x_axis.to_px(t, left, right), y_axis.to_px(w, bottom, PLOT_TOP)) for t, w in pts])
    if len(px) == 1:
        parts.append(f'<circle cx="{_n(px[0][0])}" cy="{_n(px[0][1])}" r="3.5" fill="{color(0)}"/>')
    else:
        coords = " ".join(f"{_n(x)},{_n(y)}" for x, y in px)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color(0)}" stroke-width="2"/>')
    parts += _legend(entries, bottom + AXIS_BELOW + 8)
    parts.append("</svg>")
    return "".join(parts)


def error_bar_chart(series: Mapping[str, Sequence[tuple[float, float, float | None, float | None]]], x_label: str,
                    y_label: str, title: str, *, ideal: bool = False, x_log: bool = False) -> str:
    """Lines with markers and vertical 95 % error bars, one series per label: ``(x, y, lo, hi)`` points,
    ``lo``/``hi`` None where there is no interval. ``ideal`` draws y = x / (the smallest x) dashed (perfect
    scaling against the first point; a speed-up plot's reference)."""
    clean = {label: sorted((float(x), float(y), lo, hi) for x, y, lo, hi in pts if _finite(x, y))
             for label, pts in series.items()}
    clean = {k: v for k, v in clean.items() if v}
    if not clean:
        return empty(title, "no data")
    xs = [p[0] for pts in clean.values() for p in pts]
    ys = [v for pts in clean.values() for p in pts for v in (p[1], p[2], p[3]) if _finite(v)]
    x0 = min(xs)
    if ideal and x0 > 0:
        ys += [x / x0 for x in xs]
    x_axis = log_axis(xs, tight=True) if x_log and _log_ok(xs) else linear_axis(xs, tight=True, pad=0.05)
    y_axis = linear_axis(ys, include_zero=True)
    entries = [_Entry(_line_swatch(i) + _marker(i, 10, 0, color(i), color(i), r=3.5), label) for i, label in enumerate(clean)]
    if ideal:
        entries.append(_Entry('<line x1="0" y1="0" x2="20" y2="0" stroke="#888" stroke-width="1.5" stroke-dasharray="5 3"/>',
                              "ideal (linear scaling)"))
    if any(_finite(p[2], p[3]) for pts in clean.values() for p in pts):
        entries.append(_Entry('<path d="M10 -6 V6 M6 -6 H14 M6 6 H14" stroke="#222" stroke-width="1.5" fill="none"/>',
                              "95 % interval"))
    _cols, rows = _legend_rows(entries)
    bottom = PLOT_TOP + 300
    left, right = PLOT_LEFT, WIDTH - PLOT_RIGHT
    parts = _open_plot(title, bottom, rows, f"{len(clean)} series; x: {x_label}; y: {y_label}")
    parts += _axes(x_axis, y_axis, (left, PLOT_TOP, right, bottom), x_label, y_label)
    if ideal and x0 > 0:
        a, b = max(x_axis.lo, 0.0), min(x_axis.hi, y_axis.hi * x0)  # y = x / x0, kept inside the frame
        ends = [(x_axis.to_px(x, left, right), y_axis.to_px(x / x0, bottom, PLOT_TOP)) for x in (a, b)]
        parts.append(f'<line class="ideal" x1="{_n(ends[0][0])}" y1="{_n(ends[0][1])}" x2="{_n(ends[1][0])}" '
                     f'y2="{_n(ends[1][1])}" stroke="#888" stroke-width="1.5" stroke-dasharray="5 3"/>')
    for i, (label, pts) in enumerate(clean.items()):
        px = [(x_axis.to_px(x, left, right), y_axis.to_px(y, bottom, PLOT_TOP)) for x, y, _, _ in pts]
        parts.append(f'<g class="series" stroke="{color(i)}" fill="none" stroke-width="2"><title>{esc(label)}</title>')
        if len(px) > 1:
            d = dash(i)
            dash_attr = f' stroke-dasharray="{d}"' if d else ""
            parts.append(f'<polyline points="{" ".join(f"{_n(x)},{_n(y)}" for x, y in px)}"{dash_attr}/>')
        for (x, y, lo, hi), (cx, cy) in zip(pts, px, strict=True):
            interval = ""
            if _finite(lo, hi):
                interval = f" [{value_text(lo)}, {value_text(hi)}]"
                y_lo, y_hi = y_axis.to_px(lo, bottom, PLOT_TOP), y_axis.to_px(hi, bottom, PLOT_TOP)
                parts.append(f'<path d="M{_n(cx)} {_n(y_lo)} V{_n(y_hi)} M{_n(cx - 4)} {_n(y_lo)} H{_n(cx + 4)} '
                             f'M{_n(cx - 4)} {_n(y_hi)} H{_n(cx + 4)}" stroke="#222" stroke-width="1.2"/>')
            parts.append(f"<g><title>{esc(f'{label}: x {value_text(x)}, y {value_text(y)}{interval}')}</title>"
                         f"{_marker(i, cx, cy, color(i), color(i), r=3.5)}</g>")
        parts.append("</g>")
    parts += _legend(entries, bottom + AXIS_BELOW + 8)
    parts.append("</svg>")
    return "".join(parts)


HEAT = (0x00, 0x72, 0xB2)  # the palette's blue at 100 % of a row


def _heat(share: float) -> str:
    return "#" + "".join(f"{round(255 - (255 - c) * share):02x}" for c in HEAT)


def heatmap(share: Sequence[Sequence[float]], counts: Sequence[Sequence[str]], names: Sequence[str], title: str,
            desc: str) -> str:
    """A k×k grid (a confusion matrix): rows ``names`` (column heads are their indices), each cell coloured
    by its ``share`` of the row (0–1) with its ``counts`` text printed where it fits, and a legend."""
    k = len(share)
    gutter = min(max(max(len(n) for n in names) * CHAR_W + 16, 60), 200)
    size = min(44.0, (WIDTH - gutter - 30) / k)
    top = 70.0
    bottom = top + size * k
    legend_y = bottom + 22
    parts = _open(title, legend_y + 44, desc)
    parts.append(f'<text x="{_n(gutter + size * k / 2)}" y="44" text-anchor="middle" fill="#444">predicted class</text>')
    parts.append(f'<text transform="translate(14 {_n((top + bottom) / 2)}) rotate(-90)" text-anchor="middle" '
                 'fill="#444">true class</text>')
    parts.append('<g class="cells" font-size="11">')
    fits = size >= 22
    for j in range(k):  # column heads: class ids (names are on the rows)
        parts.append(f'<text x="{_n(gutter + size * (j + 0.5))}" y="{_n(top - 6)}" text-anchor="middle" fill="#222">{j}</text>')
    for i in range(k):
        y = top + size * i
        parts.append(f'<text x="{_n(gutter - 6)}" y="{_n(y + size / 2 + 4)}" text-anchor="end" fill="#222">'
                     f"{esc(_fit(names[i], gutter - 12))}</text>")
        for j in range(k):
            x, count = gutter + size * j, counts[i][j]
            tip = f"true {names[i]}, predicted {names[j]}: {count} ({share[i][j] * 100:.1f} % of the true class)"
            parts.append(f"<g><title>{esc(tip)}</title>")
            parts.append(f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(size)}" height="{_n(size)}" '
                         f'fill="{_heat(share[i][j])}" stroke="#e6e6e6" stroke-width="1"/>')
            if fits and count != "0" and len(count) * CHAR_W < size - 2:
                ink = "#ffffff" if share[i][j] > 0.5 else "#222"
                parts.append(f'<text x="{_n(x + size / 2)}" y="{_n(y + size / 2 + 4)}" text-anchor="middle" '
                             f'fill="{ink}">{esc(count)}</text>')
            parts.append("</g>")
    parts.append("</g>")
    parts.append('<g class="legend" font-size="11">')  # the scale: five swatches from 0 to 100 % of the row
    parts.append(f'<text x="{_n(gutter)}" y="{_n(legend_y)}" fill="#222">colour: share of the true class\'s '
                 "samples (each row sums to 100 %); numbers: counts</text>")
    for n, level in enumerate((0.0, 0.25, 0.5, 0.75, 1.0)):
        x = gutter + n * 70
        parts.append(f'<rect x="{_n(x)}" y="{_n(legend_y + 10)}" width="18" height="12" fill="{_heat(level)}" '
                     'stroke="#999" stroke-width="0.5"/>')
        parts.append(f'<text x="{_n(x + 24)}" y="{_n(legend_y + 20)}" fill="#222">{level * 100:.0f} %</text>')
    parts.append("</g></svg>")
    return "".join(parts)
