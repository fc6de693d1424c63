"""The regression gate's verdicts as lines that fit an 80-column CI log.

A table with a column per field wraps into noise in a CI job's log; here each compared row gets a
header line and one line per rule, with the two values, the change in the rule's unit, the
p-value and the verdict, so every line stays within 80 columns.
"""

from __future__ import annotations

import textwrap

from agent.kpi import BY_KEY
from controller.analysis.gate import Finding, Outcome

WIDTH = 80


def _value(value: float, kpi: str) -> str:
    if BY_KEY[kpi].unit == "fraction":
        return f"{value * 100:.2f}%"
    return f"{value:.4g}"


def _change(f: Finding) -> str:
    change = f.change
    if change is None:
        return "n/a"
    unit = f.rule.unit or ""
    return f"{change:+.1f}{unit}" if unit else f"{change:+.4g}"


def _p(f: Finding) -> str:
    p = f.test.p_value
    if p is None:
        return "p=?"
    return "p<0.0001" if p < 1e-4 else f"p={p:.3g}"


def _name(f: Finding) -> str:
    return f.rule.text.split(":", 1)[0]


def finding_line(f: Finding) -> str:
    """``  p90      0.0612 →    0.0688     +12.4%  p=0.004  REGRESSION``"""
    return (f"  {_name(f)[:8]:<8} {_value(f.old.value, f.kpi):>9} → {_value(f.new.value, f.kpi):<9} "
            f"{_change(f):>8} {_p(f):>8}  {f.verdict}")


def lines(outcome: Outcome, title: str, rules: str, strict: bool) -> list[tuple[str, str | None]]:
    """(text, style) pairs: the title, the rule line, per row a header and its findings, the summary."""
    out: list[tuple[str, str | None]] = [(line, "bold") for line in textwrap.wrap(title, WIDTH)]
    method = "beyond threshold and p < 0.05 (Student t on repeats; McNemar on top-1)"
    out += [(line, None) for line in textwrap.wrap(f"rules {rules}: a regression is {method}", WIDTH)]
    current = None
    for f in outcome.findings:
        if f.row is not current:
            current = f.row
            out.append(("", None))
            out += [(line, None) for line in textwrap.wrap(f.row.label, WIDTH)]
        out.append((finding_line(f), "bold red" if f.regression else None))
    if outcome.missing or outcome.notes:
        out.append(("", None))
    out += [(line, "bold red") for m in outcome.missing for line in textwrap.wrap(f"not comparable: {m}", WIDTH)]
    out += [(line, None) for n in outcome.notes for line in textwrap.wrap(n, WIDTH)]
    unknown = [f for f in outcome.findings if f.beyond_threshold and f.test.significant is None and not strict]
    if unknown:
        text = (f"{len(unknown)} change(s) beyond the threshold with noise unknown (a side has one run): "
                "run campaigns with repeats >= 2, or pass --strict to fail on them")
        out += [(line, "yellow") for line in textwrap.wrap(text, WIDTH)]
    out.append(("", None))
    out.append(_summary(outcome))
    return out


def _summary(outcome: Outcome) -> tuple[str, str | None]:
    if not outcome.findings and not outcome.missing:
        return ("FAIL: nothing to compare (no row has the KPIs the rules name on both sides)", "bold red")
    problems = []
    if outcome.regressions:
        problems.append(f"{len(outcome.regressions)} regression(s)")
    if outcome.missing:
        problems.append(f"{len(outcome.missing)} not comparable")
    if problems:
        return ("FAIL: " + ", ".join(problems), "bold red")
    return (f"PASS: no regressions in {len(outcome.findings)} comparison(s)", "green")
