"""Published MLPerf rows in tables: beside local rows (scorecard, compare, report) and as stored.

Every published number is in a column headed "published" and every row names its source
(``published, MLPerf Inference v4.1, <submitter>, <system>``): a report is read by people who
did not run it, and a number from a results tree must never pass for one measured here.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.analysis.scorecard import Row
from controller.reference import matching
from controller.reference.rows import ReferenceRow
from controller.reports import render, views

NOTE = ("published rows are copied from an MLCommons results tree, not measured here; 'local vs published' compares "
        "the same metric: local ÷ published for latency (× 12 = twelve times slower than the published system) and "
        "samples/s (× 0.1 = a tenth of its rate), local − published in percentage points for accuracy; each [n] under "
        "the table says what makes the two runs unlike (docs/reference.md)")


def _number(value: float | None, unit: str) -> str:
    """Latency and rates with the tables' digits; an accuracy with the five digits results trees print (76.096 %)."""
    if value is None:
        return "–"
    return f"{value:.5g} {unit}" if unit in ("%", "") else f"{views._digits(value)} {unit}"


def _versus(p: matching.Pairing) -> str:
    if p.ratio is not None:
        return f"{p.ratio:.3g}×"
    return "–" if p.difference_pp is None else f"{p.difference_pp:+.2f} pp"


def pairing_view(pairs: Sequence[matching.Pairing], title: str) -> views.View:
    """One line per local row × published row with the compared metric on both sides; what differs
    between the two runs is a numbered note under the table (``[1]``), said once however many lines share it."""
    headers = ("benchmark", "run", "device", "model", "metric", "local", "published", "local vs published", "verdict",
               "published verdict", "published system", "differences")
    numbered: dict[str, int] = {}
    rows = []
    for p in pairs:
        mark = numbered.setdefault(p.differences, len(numbered) + 1)
        rows.append((p.benchmark, views._run(p.local), p.local.device, views._variant(p.local), p.metric,
                     _number(p.local_value, p.unit), _number(p.published_value, p.unit),
                     _versus(p), p.local.verdict, p.reference.verdict, p.reference.label,
                     f"[{mark}]"))
    notes = (NOTE, *(f"[{n}] {text}" for text, n in numbered.items()))
    return views.View(title, headers, rows, frozenset({5, 6, 7}), notes)


def stored_view(references: Sequence[ReferenceRow], title: str) -> views.View:
    """The stored published rows: what ``edgeperf reference list`` shows."""
    headers = ("benchmark", "scenario", "published", "accuracy", "verdict", "division", "system type", "status",
               "compliance", "source")
    rows = [(r.benchmark, r.scenario, f"{r.metric} {_number(r.value, r.unit)}",
             r.accuracy.text() if r.accuracy else "–", r.verdict, r.division, r.system_type or "?", r.status or "?",
             r.compliance_text(), r.label)
            for r in references]
    return views.View(title, headers, rows, frozenset(), ("every number here is published, not measured by edgeperf",))


@dataclass
class ReferenceChoice:
    """What ``--reference`` asked for: the stored published rows, the benchmark (or ``auto``) and
    an optional system filter. A report pairs it with its own scorecard rows (``section``)."""

    references: list[ReferenceRow]
    benchmark: str = matching.AUTO
    system: str | None = None


@dataclass
class ReferenceSection:
    """The published rows beside a campaign's rows, and why some rows have none."""

    pairs: list[matching.Pairing]
    notes: list[str] = field(default_factory=list)

    def views(self) -> list[views.View]:
        return [pairing_view(self.pairs, "beside published MLPerf results")] if self.pairs else []

    def to_dict(self) -> dict[str, Any]:
        return {"pairs": [p.to_dict() for p in self.pairs], "notes": self.notes}


def section(choice: ReferenceChoice, rows: Sequence[Row]) -> ReferenceSection:
    """Pair ``rows`` with the chosen published rows (``matching.pair``)."""
    pairs, notes = matching.pair(rows, matching.select(choice.references, choice.system), choice.benchmark)
    return ReferenceSection(pairs, notes)


def choice(references: Sequence[ReferenceRow], benchmark: str, system: str | None = None) -> ReferenceChoice:
    """A ``ReferenceChoice``, refusing at once a named benchmark or system that nothing stored has."""
    if not references:
        raise matching.ReferenceChoiceError("no published rows are stored in this database; import a results tree first: "
                                            "edgeperf reference import PATH (docs/reference.md)")
    if benchmark != matching.AUTO:
        matching.stored_benchmarks(benchmark, (r.benchmark for r in references))
    if system and not matching.select(references, system):
        raise matching.ReferenceChoiceError(f"no stored published row's system or submitter contains {system!r}; "
                                            "'edgeperf reference list' shows them")
    return ReferenceChoice(list(references), benchmark, system)


def html_page(shown: Sequence[views.View], title: str) -> str:
    """Several tables as one self-contained page, styled as ``render.html_page`` styles one."""
    tables = "".join(render.html_table(v) for v in shown)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{render.PAGE_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{tables}</body></html>\n")
