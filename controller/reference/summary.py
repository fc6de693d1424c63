"""``mlperf_log_summary.txt``, the file LoadGen writes at the end of every run, read back into numbers.

Published results trees carry this file for every performance run, and it is the only place their
headline number is stated the way LoadGen judged it. Its layout moved between LoadGen versions
("90th percentile latency (ns)" became "90.0th percentile latency (ns)"; Offline's result line lost
the space before its colon), so it is read line by line as ``key : value`` pairs, not by position,
and the result line is found as the numeric line LoadGen prints between ``Mode`` and ``Result is``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
MODES = {"PerformanceOnly": "performance", "AccuracyOnly": "accuracy"}
_PAIR = re.compile(r"^\s*(?![*\s])([^:]+?)\s*:\s*(.*?)\s*$")  # "key : value"; not LoadGen's " * …" bullets
_ESTIMATE = re.compile(r"Early stopping (\d+(?:\.\d+)?)(?:th)? percentile estimate:\s*(\d+)")
_PERCENTILE = re.compile(r"^(\d+(?:\.\d+)?) percentile latency \(ns\)$")


class SummaryError(ValueError):
    """The file is not a LoadGen summary, or lacks a line every summary has."""


@dataclass(frozen=True)
class Summary:
    """What one ``mlperf_log_summary.txt`` says, in LoadGen's own units (ns for latencies)."""

    sut_name: str | None
    scenario: str
    mode: str  # performance | accuracy
    result_field: str  # the result line's name as LoadGen wrote it, e.g. "90th percentile latency (ns)"
    result_value: float
    valid: bool
    constraints: dict[str, bool] = field(default_factory=dict)  # "Min duration satisfied": True, ...
    early_stopping_ns: dict[str, float] = field(default_factory=dict)  # percentile ("90.0") -> estimate
    latency_ns: dict[str, float] = field(default_factory=dict)  # min, max, mean, p50, p90, p95, p97, p99, p999
    stats: dict[str, float] = field(default_factory=dict)  # other numeric lines ("QPS w/ loadgen overhead", ...)
    parameters: dict[str, str] = field(default_factory=dict)  # "Test Parameters Used", as written

    def parameter(self, name: str) -> int | None:
        """A test parameter as an integer (``min_duration (ms)``, ``performance_sample_count``), None if absent."""
        try:
            return int(float(self.parameters[name]))
        except (KeyError, ValueError):
            return None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _percentile_key(p: str) -> str:
    """``50.00`` -> ``p50``, ``99.90`` -> ``p999`` (the names result documents use)."""
    return "p" + f"{float(p):g}".replace(".", "")


def parse_summary(text: str) -> Summary:
    """Read a LoadGen summary; ``SummaryError`` names the first line a summary must have and this lacks."""
    if "MLPerf Results Summary" not in text:
        raise SummaryError("not a LoadGen summary (no 'MLPerf Results Summary' header)")
    head: dict[str, str] = {}
    result: tuple[str, float] | None = None
    constraints: dict[str, bool] = {}
    estimates: dict[str, float] = {}
    latency: dict[str, float] = {}
    stats: dict[str, float] = {}
    parameters: dict[str, str] = {}
    section = "results"
    for line in text.splitlines():
        if line.startswith("Additional Stats"):
            section = "stats"
        elif line.startswith("Test Parameters Used"):
            section = "parameters"
        if (estimate := _ESTIMATE.search(line)) is not None:
            estimates[f"{float(estimate.group(1)):g}"] = float(estimate.group(2))
            continue
        pair = _PAIR.match(line)
        if pair is None:
            continue
        key, value = pair.groups()
        if section == "parameters":
            parameters[key] = value
        elif key in ("SUT name", "Scenario", "Mode", "Result is"):
            head[key] = value
        elif value in ("Yes", "NO", "No"):
            constraints[key] = value == "Yes"
        elif (number := _number(value)) is None:
            continue
        elif section == "results" and "Mode" in head and "Result is" not in head and result is None:
            result = (key, number)
        elif (percentile := _PERCENTILE.match(key)) is not None:
            latency[_percentile_key(percentile.group(1))] = number
        elif key in ("Min latency (ns)", "Max latency (ns)", "Mean latency (ns)"):
            latency[key.split()[0].lower()] = number
        else:
            stats[key] = number
    for needed in ("Scenario", "Mode", "Result is"):
        if needed not in head:
            raise SummaryError(f"no '{needed} :' line")
    scenario = head["Scenario"].replace(" ", "")
    if scenario not in SCENARIOS:
        raise SummaryError(f"unknown scenario {head['Scenario']!r}")
    if head["Mode"] not in MODES:
        raise SummaryError(f"unknown mode {head['Mode']!r}")
    if result is None:
        raise SummaryError("no result line (a number between 'Mode' and 'Result is')")
    return Summary(head.get("SUT name"), scenario, MODES[head["Mode"]], result[0], result[1],
                   head["Result is"].upper() == "VALID", constraints, estimates, latency, stats, parameters)
