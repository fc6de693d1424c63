"""Per-class precision, recall and F1 in the campaign report: tables (HTML and Markdown), CSV lines,
and a confusion-matrix heatmap per accuracy row (HTML).

Kept apart from ``campaign_report`` (which hooks these in) so the report module does not grow
further. The numbers are ``controller.analysis.class_metrics``'s, read from each scorecard row
(``Row.per_class``, ``Row.classes``); the JSON report carries them through ``Row.to_dict()``.

- ``tables(rows)``: one table per accuracy row with class counts, the ``MAX_TABLE_CLASSES``
  classes with the most samples shown and the rest counted in the table's note, which says where
  the full list is (the JSON report).
- ``csv_lines(line, row)``: after a row's CSV line, one line per class (``kind`` = ``class``) that
  repeats the row's identity columns and fills the ``class*`` columns (``CSV_COLUMNS``).
- ``figures(rows)``: (title, svg or None, caption) per accuracy row with a confusion matrix, at
  most one per device × model variant, ``MAX_HEATMAPS`` in all and ``MAX_HEATMAP_CLASSES``
  classes drawn; a heatmap that is not drawn says why. The SVG follows ``plots``: no script, all
  text escaped, ``<title>``/``<desc>`` and ``role="img"``, a legend; colour is the share of the
  true class's samples (row-normalised), the count is printed in the cell where it fits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from controller.analysis.scorecard import SCORED_MODES, Row, ordered
from controller.reports import plots, views

MAX_TABLE_CLASSES = 20  # per row in the HTML and Markdown tables; JSON has all
MAX_HEATMAPS = 8
MAX_HEATMAP_CLASSES = 12
CLASS_FIGURES = ("precision", "recall", "f1")
CSV_COLUMNS = ("class", "class.support", "class.predicted", "class.right",
               *(f"class.{name}{end}" for name in CLASS_FIGURES for end in ("", ".lo", ".hi")))
IDENTITY = ("device", "device_class", "model", "precision", "runtime", "accelerator", "threads", "scenario", "mode",
            "runs", "verdict", "energy_measured", "run_ids")
HEAT = (0x00, 0x72, 0xB2)  # the palette's blue at 100 % of a true class's samples


def _accuracy_rows(rows: Sequence[Row]) -> list[Row]:
    return [r for r in ordered(rows) if r.mode in SCORED_MODES and r.per_class]


def tables(rows: Sequence[Row]) -> list[views.View]:
    """A per-class table for each accuracy row with class counts."""
    return [views.per_class([row], f"per class: {row.label}", limit=MAX_TABLE_CLASSES) for row in _accuracy_rows(rows)]


def _num(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def csv_lines(line: dict[str, str], row: Row) -> list[dict[str, str]]:
    """One CSV line per class of ``row``, after ``line`` (the row's own): kind ``class``, the row's identity."""
    out = []
    for f in row.per_class:
        item = {key: line.get(key, "") for key in IDENTITY} | {"kind": "class", "class": str(f.cls),
                                                               "class.support": _num(f.support),
                                                               "class.predicted": _num(f.predicted),
                                                               "class.right": _num(f.right)}
        for name in CLASS_FIGURES:
            ci = getattr(f, f"{name}_ci95")
            item[f"class.{name}"] = _num(getattr(f, name))
            item[f"class.{name}.lo"], item[f"class.{name}.hi"] = (_num(ci[0]), _num(ci[1])) if ci else ("", "")
        out.append(item)
    return out


# ---- the confusion-matrix heatmap --------------------------------------------------------------------
def _colour(share: float) -> str:
    return "#" + "".join(f"{round(255 - (255 - c) * share):02x}" for c in HEAT)


def heatmap(confusion: np.ndarray, names: Sequence[str], title: str) -> str:
    """A confusion matrix as an SVG heatmap: rows the true class, columns the predicted class, each
    cell coloured by its share of the row (row-normalised) with its count printed where it fits."""
    cm = np.asarray(confusion, dtype=np.float64)
    k = cm.shape[0]
    if k == 0 or cm.sum() <= 0:
        return plots.empty(title, "no samples scored")
    totals = cm.sum(axis=1)
    share = np.divide(cm, totals[:, None], out=np.zeros_like(cm), where=totals[:, None] > 0)
    gutter = min(max(max(len(n) for n in names) * plots.CHAR_W + 16, 60), 200)
    size = min(44.0, (plots.WIDTH - gutter - 30) / k)
    top = 70.0
    bottom = top + size * k
    legend_y = bottom + 22
    height = legend_y + 44
    desc = (f"confusion matrix of {round(cm.sum())} samples over {k} classes: rows are the true class, columns the "
            "predicted class; colour is the share of the true class's samples, the number the count")
    parts = plots._open(title, height, desc)
    parts.append(f'<text x="{plots._n(gutter + size * k / 2)}" y="44" text-anchor="middle" fill="#444">predicted class</text>')
    parts.append(f'<text transform="translate(14 {plots._n((top + bottom) / 2)}) rotate(-90)" text-anchor="middle" '
                 'fill="#444">true class</text>')
    parts.append('<g class="cells" font-size="11">')
    fits = size >= 22
    for j in range(k):  # column heads: class ids (names are on the rows)
        parts.append(f'<text x="{plots._n(gutter + size * (j + 0.5))}" y="{plots._n(top - 6)}" text-anchor="middle" '
                     f'fill="#222">{j}</text>')
    for i in range(k):
        y = top + size * i
        parts.append(f'<text x="{plots._n(gutter - 6)}" y="{plots._n(y + size / 2 + 4)}" text-anchor="end" fill="#222">'
                     f"{plots.esc(plots._fit(names[i], gutter - 12))}</text>")
        for j in range(k):
            x = gutter + size * j
            count = views.count_text(cm[i, j])
            tip = f"true {names[i]}, predicted {names[j]}: {count} ({share[i, j] * 100:.1f} % of the true class)"
            parts.append(f"<g><title>{plots.esc(tip)}</title>")
            parts.append(f'<rect x="{plots._n(x)}" y="{plots._n(y)}" width="{plots._n(size)}" height="{plots._n(size)}" '
                         f'fill="{_colour(share[i, j])}" stroke="#e6e6e6" stroke-width="1"/>')
            if fits and cm[i, j] > 0 and len(count) * plots.CHAR_W < size - 2:
                ink = "#ffffff" if share[i, j] > 0.5 else "#222"
                parts.append(f'<text x="{plots._n(x + size / 2)}" y="{plots._n(y + size / 2 + 4)}" text-anchor="middle" '
                             f'fill="{ink}">{plots.esc(count)}</text>')
            parts.append("</g>")
    parts.append("</g>")
    parts.append('<g class="legend" font-size="11">')  # the scale: five swatches from 0 to 100 % of the row
    parts.append(f'<text x="{plots._n(gutter)}" y="{plots._n(legend_y)}" fill="#222">colour: share of the true class\'s '
                 "samples (each row sums to 100 %); numbers: counts</text>")
    for n, level in enumerate((0.0, 0.25, 0.5, 0.75, 1.0)):
        x = gutter + n * 70
        parts.append(f'<rect x="{plots._n(x)}" y="{plots._n(legend_y + 10)}" width="18" height="12" fill="{_colour(level)}" '
                     'stroke="#999" stroke-width="0.5"/>')
        parts.append(f'<text x="{plots._n(x + 24)}" y="{plots._n(legend_y + 20)}" fill="#222">{level * 100:.0f} %</text>')
    parts.append("</g></svg>")
    return "".join(parts)


def figures(rows: Sequence[Row]) -> list[tuple[str, str | None, str]]:
    """(title, svg, caption) per accuracy row with a confusion matrix (svg None: left out, the caption says why)."""
    out: list[tuple[str, str | None, str]] = []
    seen: set[tuple[str, str]] = set()
    skipped: list[str] = []
    for row in _accuracy_rows(rows):
        if row.classes is None or row.classes.confusion is None or (row.device, row.model) in seen:
            continue
        seen.add((row.device, row.model))
        title = f"confusion matrix: {row.device} · {row.model.removeprefix('zoo:')} · {views.runtime_text(row)}"
        k = row.classes.confusion.shape[0]
        if k > MAX_HEATMAP_CLASSES:
            out.append((title, None, f"{title} omitted: {k} classes, more than the {MAX_HEATMAP_CLASSES} a readable "
                                     "heatmap holds; the matrix is in the results' JSON (kpis.accuracy.confusion_matrix)"))
            continue
        if len([f for f in out if f[1]]) >= MAX_HEATMAPS:
            skipped.append(row.label)
            continue
        names = views.class_names(row)
        labels = [f"{i} {names[i]}" if i in names else str(i) for i in range(k)]
        runs = f"{row.runs} runs, each sample counted once (mean counts)" if row.runs > 1 else "one run"
        caption = (f"{row.label} ({row.verdict}): {row.classes.samples} samples, {runs}. Rows: true class; columns: "
                   "predicted class; colour: the share of the true class's samples (row-normalised).")
        out.append((title, heatmap(row.classes.confusion, labels, title), caption))
    if skipped:
        out.append(("confusion matrices", None, f"confusion matrices omitted for {len(skipped)} more rows (at most "
                                                f"{MAX_HEATMAPS} are drawn): {'; '.join(skipped)}"))
    return out
