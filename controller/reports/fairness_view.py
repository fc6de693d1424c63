"""Fairness and class balance as tables: what each accuracy run says about groups of inputs and
about classes, kept apart because they answer different questions.

Fairness (``kpis.fairness``, from ``--groups`` or a campaign's ``groups:``) compares groups of
*inputs* — who or where a sample came from — and needs the user to name them. Class balance
(``kpis.class_balance``) compares the recall of the classes the model predicts; every
classification run has it, and it is not fairness. Both carry each group's accuracy with its
Wilson interval and the largest gap with an interval that holds for the pair chosen after looking
(``agent.fairness``). A row's runs over the same samples give the same block, so the first run's
is shown and the table says how many runs the row has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent import contract
from agent.contract import GroupGap
from controller.analysis.scorecard import SCORED_MODES, Row, ordered
from controller.reports.views import View

MAX_GROUPS_SHOWN = 20  # per table; the JSON report has every group


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _interval(pair: Sequence[float] | None) -> str:
    return "" if pair is None else f" [{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"


def _gap(block: GroupGap) -> str:
    if block.gap is None:
        return "one group: no gap"
    return (f"{_pct(block.gap)}{_interval(block.gap_ci95)} pp ({block.best} − {block.worst}; each pair at "
            f"{100 * (block.confidence_each_pair or 0.95):.2f} %)")


def _block(row: Row, key: str) -> GroupGap | None:
    return next((b for r in row.results if (b := getattr(r.kpis, key)) is not None), None)


def _scored(rows: Sequence[Row]) -> list[Row]:
    return [r for r in ordered(rows) if r.mode in SCORED_MODES]


def fairness_tables(rows: Sequence[Row]) -> list[View]:
    """One table per row with groups: each group's accuracy and macro recall, the gap in the notes."""
    out = []
    for row in _scored(rows):
        block = _block(row, "fairness")
        if block is None:
            continue
        shown = sorted(block.groups, key=lambda g: g.rate)[:MAX_GROUPS_SHOWN]
        lines = [(g.name, str(g.n), f"{_pct(g.rate)}{_interval(g.ci95)}", _pct(g.recall_macro)) for g in shown]
        notes = [f"largest gap {_gap(block)}", f"groups from {block.source}" if block.source else "",
                 f"{block.ungrouped} scored samples had no group and are left out" if block.ungrouped else "",
                 f"{len(block.groups) - len(shown)} more groups in the JSON report" if len(block.groups) > len(shown) else "",
                 f"the row has {row.runs} runs; the first run's groups are shown" if row.runs > 1 else ""]
        out.append(View(f"fairness: {row.label}", ("group", "n", "accuracy % [95 %]", "macro recall %"), lines,
                        frozenset({1, 2, 3}), tuple(n for n in notes if n)))
    return out


def class_balance_table(rows: Sequence[Row]) -> View | None:
    """One line per row: how evenly it serves the classes (worst and best class recall, the gap)."""
    lines = []
    for row in _scored(rows):
        block = _block(row, "class_balance")
        if block is None or not block.groups:
            continue
        worst = min(block.groups, key=lambda g: g.rate)
        best = max(block.groups, key=lambda g: g.rate)
        lines.append((row.label, str(len(block.groups)), f"{worst.name}: {_pct(worst.rate)}{_interval(worst.ci95)}",
                      f"{best.name}: {_pct(best.rate)}{_interval(best.ci95)}", _gap(block)))
    if not lines:
        return None
    return View("class balance (recall per class; not fairness)", ("row", "classes", "worst class recall %",
                                                                  "best class recall %", "largest gap"),
                lines, frozenset({1}), ("class balance compares the classes the model predicts; fairness compares groups "
                                        "of inputs named with --groups (docs/datasets.md, 'Groups and fairness')",))


def to_dicts(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Every scored row's fairness and class-balance blocks, for the JSON report."""
    out = []
    for row in _scored(rows):
        blocks = {key: _block(row, key) for key in ("fairness", "class_balance")}
        if any(blocks.values()):
            out.append({"row": row.label, "run_ids": [r.run_id for r in row.results]}
                       | {key: None if b is None else contract.to_builtins(b) for key, b in blocks.items()})
    return out
