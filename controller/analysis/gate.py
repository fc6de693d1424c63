"""``edgeperf diff OLD NEW --fail-on "p90:+5%,top1:-0.5pp,energy:+10%"``: a CI regression gate.

A change fails the gate only when it is beyond its threshold in the bad direction *and* outside
the noise: the two runs' 95 % intervals do not overlap. Intervals come from repeats (bootstrap)
where a row has them, from a single run's own latency histogram otherwise (how far its p90 would
move if the samples were drawn again), and from Wilson for accuracy. A KPI with no interval at
all (one run's throughput or energy) is judged on its threshold alone, and the table says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agent.errors import EdgeperfError
from agent.kpi import BY_KEY
from controller.analysis.intervals import histogram_percentile
from controller.analysis.scorecard import ACCURACY_KPI, HISTOGRAM_PERCENTILES, Cell, Row, latency_histogram

ALIASES = {
    "p50": "latency_ms.p50", "p90": "latency_ms.p90", "p99": "latency_ms.p99", "es": "early_stopping_latency_ms",
    "throughput": "throughput_sps", "top1": ACCURACY_KPI, "energy": "energy.energy_per_inference_mj",
    "ipj": "energy.inferences_per_joule", "power": "energy.avg_power_w", "rss": "memory.peak_rss_mb",
}
_RULE = re.compile(r"^(?P<name>[\w.]+):(?P<sign>[+-])(?P<amount>\d+(?:\.\d+)?)(?P<unit>%|pp)?$")


class DiffError(EdgeperfError):
    """A ``--fail-on`` rule that cannot be read."""


@dataclass(frozen=True)
class Rule:
    """Fail when ``kpi`` moves by more than ``amount`` (relative %, percentage points, or the KPI's
    own unit) in the direction of ``sign``."""

    kpi: str
    sign: int  # +1: an increase is bad; -1: a decrease is bad
    amount: float
    unit: str  # "%" | "pp" | ""
    text: str

    def exceeded(self, old: float, new: float) -> bool:
        change = (new - old) * self.sign
        if self.unit == "%":
            return old != 0 and change / abs(old) * 100 > self.amount
        if self.unit == "pp":
            return change * 100 > self.amount
        return change > self.amount


def parse_rules(text: str) -> list[Rule]:
    rules = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _RULE.match(part)
        if not match:
            raise DiffError(f"bad --fail-on rule {part!r}; write NAME:+N% / NAME:-Npp / NAME:+N, e.g. p90:+5%,top1:-0.5pp")
        name = match["name"]
        kpi = ALIASES.get(name, name)
        if kpi not in BY_KEY:
            raise DiffError(f"--fail-on names unknown KPI {name!r}; use {', '.join(ALIASES)} or a KPI key from docs/kpis.md")
        unit = match["unit"] or ""
        if unit == "pp" and kpi != ACCURACY_KPI:
            raise DiffError(f"{part!r}: percentage points (pp) apply to proportions such as top1; use % here")
        rules.append(Rule(kpi, 1 if match["sign"] == "+" else -1, float(match["amount"]), unit, part))
    if not rules:
        raise DiffError("--fail-on has no rules; e.g. --fail-on 'p90:+5%,top1:-0.5pp,energy:+10%'")
    return rules


def _interval(row: Row, kpi: str) -> tuple[float, float] | None:
    """The row's 95 % interval for ``kpi``: from repeats, else a single run's own histogram."""
    cell: Cell | None = row.cells.get(kpi)
    if cell is not None and cell.lo is not None:
        return (cell.lo, cell.hi)
    if kpi in HISTOGRAM_PERCENTILES and row.runs == 1 and (hist := latency_histogram(row.results[0])) is not None:
        lo, hi = histogram_percentile(hist, HISTOGRAM_PERCENTILES[kpi])
        return (lo / 1e6, hi / 1e6)
    return None


@dataclass(frozen=True)
class Finding:
    row: str
    kpi: str
    old: float
    new: float
    rule: Rule
    beyond_threshold: bool
    intervals_overlap: bool | None  # None: no interval to judge noise by

    @property
    def regression(self) -> bool:
        return self.beyond_threshold and self.intervals_overlap is not True

    @property
    def verdict(self) -> str:
        if self.regression:
            return "REGRESSION" + (" (no interval: threshold only)" if self.intervals_overlap is None else "")
        if self.beyond_threshold:
            return "within noise (intervals overlap)"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "kpi": self.kpi, "old": self.old, "new": self.new, "rule": self.rule.text,
                "beyond_threshold": self.beyond_threshold, "intervals_overlap": self.intervals_overlap,
                "regression": self.regression, "verdict": self.verdict}


def _label(row: Row) -> str:
    return f"{row.device} {row.model} {row.runtime}/{row.accelerator} {row.scenario} {row.mode}"


def _key(row: Row) -> tuple:
    return (row.device, row.model, row.runtime, row.accelerator, row.threads, row.scenario, row.mode)


def compare(old_rows: list[Row], new_rows: list[Row], rules: list[Rule]) -> tuple[list[Finding], list[str]]:
    """Findings for every rule on every row both sides have, and notes on rows only one side has."""
    old = {_key(r): r for r in old_rows}
    new = {_key(r): r for r in new_rows}
    findings, notes = [], []
    for key in sorted(old.keys() & new.keys(), key=str):
        a, b = old[key], new[key]
        for rule in rules:
            va, vb = a.value(rule.kpi), b.value(rule.kpi)
            if va is None or vb is None:  # Row.value is None for NaN too
                continue
            ia, ib = _interval(a, rule.kpi), _interval(b, rule.kpi)
            overlap = None if ia is None or ib is None else not (ia[1] < ib[0] or ib[1] < ia[0])
            findings.append(Finding(_label(b), rule.kpi, va, vb, rule, rule.exceeded(va, vb), overlap))
    notes += [f"only in the old campaign: {_label(old[k])}" for k in sorted(old.keys() - new.keys(), key=str)]
    notes += [f"only in the new campaign: {_label(new[k])}" for k in sorted(new.keys() - old.keys(), key=str)]
    return findings, notes
