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

from controller.analysis.scorecard import Row, ordered
from controller.reports import plots, views

MAX_TABLE_CLASSES = 20  # per row in the HTML and Markdown tables; JSON has all
MAX_HEATMAPS = 8
MAX_HEATMAP_CLASSES = 12
CLASS_FIGURES = ("precision", "recall", "f1")
CSV_COLUMNS = ("class", "class.support", "class.predicted", "class.right",
               *(f"class.{name}{end}" for name in CLASS_FIGURES for end in ("", ".lo", ".hi")))
IDENTITY = ("device", "device_class", "model", "precision", "runtime", "accelerator", "threads", "scenario", "mode",
            "runs", "verdict", "energy_measured", "run_ids")


def _accuracy_rows(rows: Sequence[Row]) -> list[Row]:
    return [r for r in ordered(rows) if r.per_class]  # only scored rows carry per-class figures


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
def heatmap(confusion: np.ndarray, names: Sequence[str], title: str) -> str:
    """A confusion matrix as an SVG heatmap (``plots.heatmap``): rows the true class, columns the predicted
    class, each cell coloured by its share of the row (row-normalised), its count printed where it fits."""
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.shape[0] == 0 or cm.sum() <= 0:
        return plots.empty(title, "no samples scored")
    totals = cm.sum(axis=1)
    share = np.divide(cm, totals[:, None], out=np.zeros_like(cm), where=totals[:, None] > 0)
    counts = [[views.count_text(v) for v in line] for line in cm]
    desc = (f"confusion matrix of {round(cm.sum())} samples over {cm.shape[0]} classes: rows are the true class, "
            "columns the predicted class; colour is the share of the true class's samples, the number the count")
    return plots.heatmap(share.tolist(), counts, names, title, desc)


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
        labels = [views.class_label(i, names) for i in range(k)]
        runs = f"{row.runs} runs, each sample counted once (mean counts)" if row.runs > 1 else "one run"
        caption = (f"{row.label} ({row.verdict}): {row.classes.samples} samples, {runs}. Rows: true class; columns: "
                   "predicted class; colour: the share of the true class's samples (row-normalised).")
        out.append((title, heatmap(row.classes.confusion, labels, title), caption))
    if skipped:
        out.append(("confusion matrices", None, f"confusion matrices omitted for {len(skipped)} more rows (at most "
                                                f"{MAX_HEATMAPS} are drawn): {'; '.join(skipped)}"))
    return out
