"""``edgeperf diff OLD NEW --fail-on "p90:+5%,top1:-0.5pp,energy:+10%"``: a CI regression gate.

Like pyperf's ``compare_to``, it compares campaigns, not one run's histogram: a change is a
regression only when it is beyond the user's threshold in the bad direction *and* significant —
Student's t-test on the two campaigns' repeats (``significance``), or for top-1 the exact McNemar
test on the same samples scored by both (``paired``). One run's latency histogram says how its
percentile would move if its samples were drawn again, not how the next campaign will differ,
so it is not used. Without repeats on both sides the noise is unknown: such a change is shown
as "noise unknown" and fails only with ``strict``. A reference row the new campaign did not
measure, or a KPI it lost, fails the gate: nothing measured is not a pass.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from agent.contract import Accuracy
from agent.errors import EdgeperfError
from agent.kpi import BY_KEY
from controller.analysis import paired, significance
from controller.analysis.intervals import Estimate, mean_interval
from controller.analysis.scorecard import ACCURACY_KPI, Row, kpi_value

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

    def change(self, old: float, new: float) -> float | None:
        """new − old in the rule's unit: % of old, percentage points, or the KPI's own unit (None:
        a relative change from 0)."""
        if self.unit == "%":
            return None if old == 0 else (new - old) / abs(old) * 100
        return (new - old) * (100 if self.unit == "pp" else 1)

    def exceeded(self, old: float, new: float) -> bool:
        change = self.change(old, new)
        return change is not None and change * self.sign > self.amount


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


@dataclass(frozen=True)
class Finding:
    """One rule on one row both campaigns measured: both sides' estimates, the change in the
    rule's unit, and the significance test behind the verdict."""

    row: Row
    kpi: str
    rule: Rule
    old: Estimate
    new: Estimate
    test: significance.Test
    strict: bool = False
    interval: tuple[float, float] | None = None  # top-1: the 95 % interval of new − old, in the rule's unit

    @property
    def change(self) -> float | None:
        return self.rule.change(self.old.value, self.new.value)

    @property
    def beyond_threshold(self) -> bool:
        return self.rule.exceeded(self.old.value, self.new.value)

    @property
    def regression(self) -> bool:
        if not self.beyond_threshold:
            return False
        return self.test.significant is True or (self.test.significant is None and self.strict)

    @property
    def verdict(self) -> str:
        if self.regression:
            return "REGRESSION" if self.test.significant else "REGRESSION (noise unknown)"
        if not self.beyond_threshold:
            return "ok"
        return "noise unknown" if self.test.significant is None else "within noise"

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row.label, "device": self.row.device, "model": self.row.model, "runtime": self.row.runtime,
                "accelerator": self.row.accelerator, "threads": self.row.threads, "scenario": self.row.scenario,
                "mode": self.row.mode, "kpi": self.kpi, "rule": self.rule.text, "old": _side(self.old), "new": _side(self.new),
                "change": self.change, "change_unit": self.rule.unit or BY_KEY[self.kpi].unit,
                "change_ci95": None if self.interval is None else list(self.interval),
                "beyond_threshold": self.beyond_threshold, **self.test.to_dict(),
                "regression": self.regression, "verdict": self.verdict}


def _side(e: Estimate) -> dict[str, Any]:
    """One campaign's estimate as ``--json`` shows it: a confidence interval or a range, never one for the other."""
    interval = e.method in ("t", "wilson")
    return {"value": e.value, "ci95": [e.lo, e.hi] if interval else None,
            "range": [e.lo, e.hi] if e.method == "range" else None, "runs": e.n, "method": e.method}


@dataclass
class Outcome:
    """Everything ``compare`` found; the gate passes only when ``passed``."""

    findings: list[Finding]
    missing: list[str]  # what the reference measured and the new campaign did not
    notes: list[str]

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.regression]

    @property
    def passed(self) -> bool:
        return bool(self.findings) and not self.regressions and not self.missing


def _key(row: Row) -> tuple:
    return (row.device, row.model, row.runtime, row.accelerator, row.threads, row.scenario, row.mode)


def _values(row: Row, kpi: str) -> list[float]:
    return [v for r in row.results if (v := kpi_value(r, kpi)) is not None and math.isfinite(v)]


def _accuracy_finding(old_blocks: list[Accuracy], new_blocks: list[Accuracy], b: Row, rule: Rule,
                      strict: bool) -> Finding | None:
    """top-1 judged on the samples themselves: paired (McNemar) where both runs carry them; None
    when the new campaign scored nothing."""
    old, new = paired.pooled(old_blocks), paired.pooled(new_blocks)
    d = paired.delta(new_blocks, old_blocks)
    if old is None or new is None or d is None:
        return None
    test = significance.from_p_value("McNemar exact" if d.paired else "two-proportion z", d.p_value, old.samples, new.samples)
    scale = 100 if rule.unit == "pp" else (100 / old.value if rule.unit == "%" and old.value else 1)
    return Finding(b, rule.kpi, rule, Estimate(old.value, old.lo, old.hi, "wilson", old.runs),
                   Estimate(new.value, new.lo, new.hi, "wilson", new.runs), test, strict, (d.lo * scale, d.hi * scale))


def compare(old_rows: list[Row], new_rows: list[Row], rules: list[Rule], strict: bool = False) -> Outcome:
    """Every rule on every row both sides have; what the new side lost; rows only one side has."""
    old = {_key(r): r for r in old_rows}
    new = {_key(r): r for r in new_rows}
    out = Outcome([], [], [])
    for key in sorted(old.keys() & new.keys(), key=str):
        a, b = old[key], new[key]
        for rule in rules:
            if rule.kpi == ACCURACY_KPI:
                old_blocks = [r.kpis.accuracy for r in a.results if r.kpis.accuracy is not None]
                if not old_blocks:
                    continue  # the rule does not apply to this row (a performance run)
                new_blocks = [r.kpis.accuracy for r in b.results if r.kpis.accuracy is not None]
                finding = _accuracy_finding(old_blocks, new_blocks, b, rule, strict)
                if finding is None:
                    out.missing.append(f"{b.label}: {rule.kpi} not measured in the new campaign")
                else:
                    out.findings.append(finding)
                continue
            va, vb = _values(a, rule.kpi), _values(b, rule.kpi)
            if not va:
                continue  # the rule does not apply to this row (top-1 of a performance run)
            if not vb:
                out.missing.append(f"{b.label}: {rule.kpi} not measured in the new campaign")
                continue
            out.findings.append(Finding(b, rule.kpi, rule, mean_interval(va), mean_interval(vb),
                                        significance.student(va, vb), strict))
    out.missing += [f"{old[k].label}: no result in the new campaign" for k in sorted(old.keys() - new.keys(), key=str)]
    out.notes += [f"only in the new campaign: {new[k].label}" for k in sorted(new.keys() - old.keys(), key=str)]
    return out
