"""Scalability: speed-up and parallel efficiency of a campaign's ``sweep:`` against its baseline point.

Why: a board with 4 cores is bought to run 4 threads (or 4 boards to run 4x the work); whether the
model gets there, and how far short it falls, is a number a reader should not have to work out from
scorecard rows. How:

- **Groups.** Performance results are grouped by (device, model family, base variant, runtime,
  scenario) and by the axis swept: ``threads`` and ``batch_size`` points come from the variant names a
  sweep gives (``fp32.onnx@t2b8``: base ``fp32.onnx``, the other axis held fixed), ``devices`` points
  from the gangs (``@k2``: the same job on k devices at once) beside each member's own run (k = 1).
- **Throughput** of a point is the mean of its repeats' ``throughput_sps``. For a gang it is the
  **fleet throughput** of each repeat: the samples of all its members over the union of their
  measured windows (``result.window``: latest end − earliest begin), so members that did not run
  fully at once are not counted as if they had; the ``overlap`` (the share of that union all members
  ran together) is reported beside it.
- **Speed-up** is the ratio of geometric means, point over baseline (threads = 1, batch = 1, k = 1,
  or the smallest value swept), with a 95 % interval from the repeats: Welch's t interval on the
  difference of mean log throughputs, exponentiated. With fewer than 2 repeats on a side there is
  no interval ("1 run: no interval"). Simulated coverage of a true speed-up of 1.7
  (``tests/test_scaling.py``, 2,000 campaigns per cell, log-normal run-to-run noise): 96.5 % at 3
  repeats a side with σ = 0.05, 97.0 % at 3 with σ = 0.2, 96.9 % at 4 with σ = 0.2, 95.6 % at 5 with
  unequal σ (0.05 vs 0.2): it does not undercover (Welch's degrees of freedom make it slightly
  conservative at these n), so it was kept.
- **Parallel efficiency** = speed-up ÷ (threads ÷ baseline threads), or ÷ (k ÷ 1) for devices, with
  the interval scaled the same way. For a gang the baseline is the mean of its members' own
  throughputs, so efficiency 1 means "no loss from working at once" even on unlike devices. Batch
  size has a speed-up only: a batch is not a worker, so there is no ideal to be efficient against.
- **Oversubscription.** A point with more threads than the device's logical cores
  (``device.facts.cpu_count_logical``) is marked ``oversubscribed: N threads on M cores`` and kept
  out of the curve (``drawn`` False): a 2-core machine cannot scale to 4 threads, and plotting that
  point would draw a fake curve. The table still lists it with the note. Each group carries the
  device's logical and physical core counts and CPU governor (``cpu_governor``) for the reader.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.contract import Result
from controller.analysis.intervals import CONFIDENCE
from controller.analysis.intervals import t_quantile as _t  # Welch: fractional degrees of freedom

AXES = ("threads", "batch_size", "devices")
_POINT = re.compile(r"^(?P<base>.*)@(?:t(?P<t>\d+))?(?:b(?P<b>\d+))?(?:k(?P<k>\d+))?$")
NO_INTERVAL = "1 run: no interval"
BATCH_NOTE = "efficiency is not meaningful for batch size (a batch is not a worker); speed-up only"


@dataclass(frozen=True)
class Ratio:
    """A ratio (speed-up or efficiency) with its 95 % interval, or ``lo``/``hi`` None and ``note`` why not."""

    value: float
    lo: float | None = None
    hi: float | None = None
    note: str = ""

    def scaled(self, factor: float) -> Ratio:
        return Ratio(self.value * factor, None if self.lo is None else self.lo * factor,
                     None if self.hi is None else self.hi * factor, self.note)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "note": self.note}


def ratio_interval(points: Sequence[float], baseline: Sequence[float], confidence: float = CONFIDENCE) -> Ratio:
    """Ratio of geometric means ``points / baseline`` with Welch's t interval on the log scale, exponentiated."""
    a = np.log(np.asarray([v for v in points if v and v > 0 and math.isfinite(v)], dtype=np.float64))
    b = np.log(np.asarray([v for v in baseline if v and v > 0 and math.isfinite(v)], dtype=np.float64))
    if a.size == 0 or b.size == 0:
        return Ratio(math.nan, note="no throughput")
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return Ratio(math.exp(diff), note=NO_INTERVAL)
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return Ratio(math.exp(diff), math.exp(diff), math.exp(diff))
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = _t(df, confidence) * se
    return Ratio(math.exp(diff), math.exp(diff - half), math.exp(diff + half))


@dataclass(frozen=True)
class Point:
    """One value of the swept axis: its throughput, speed-up and efficiency, and why it may not be drawn."""

    value: int
    runs: int
    throughput_sps: float
    speedup: Ratio | None
    efficiency: Ratio | None
    drawn: bool = True
    note: str = ""
    members: tuple[str, ...] = ()  # devices: the gang's devices
    overlap: float | None = None  # devices: mean share of the union window every member measured in

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "runs": self.runs, "throughput_sps": self.throughput_sps,
                "speedup": None if self.speedup is None else self.speedup.to_dict(),
                "efficiency": None if self.efficiency is None else self.efficiency.to_dict(),
                "drawn": self.drawn, "note": self.note, "members": list(self.members), "overlap": self.overlap}


@dataclass(frozen=True)
class Group:
    """One scaling curve: a device (or a gang's devices), a model variant, a runtime and scenario, one axis."""

    axis: str
    device: str
    model: str
    variant: str  # the base variant, with the other axes' fixed values (``fp32.onnx b8``)
    runtime: str
    scenario: str
    baseline: int
    points: tuple[Point, ...]
    cores_logical: int | None = None
    cores_physical: int | None = None
    governor: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        return f"{self.device} · {self.model}/{self.variant} · {self.runtime}"

    def to_dict(self) -> dict[str, Any]:
        return {"axis": self.axis, "device": self.device, "model": self.model, "variant": self.variant,
                "runtime": self.runtime, "scenario": self.scenario, "mode": "performance", "baseline": self.baseline,
                "cores_logical": self.cores_logical, "cores_physical": self.cores_physical, "governor": self.governor,
                "points": [p.to_dict() for p in self.points], "notes": list(self.notes)}


@dataclass(frozen=True)
class _Run:
    result: Result
    model: str
    base: str
    threads: int | None
    batch: int | None
    k: int | None
    repeat: int


def _parse(result: Result) -> _Run | None:
    """A sweep point's result: its model family, base variant and swept values from the variant name."""
    if result.mode != "performance" or not result.kpis.throughput_sps:
        return None
    model, _, variant = result.model.name.partition("/")
    if not variant:
        return None
    repeat = 0
    if result.job is not None and result.job.key and (tail := result.job.key.rsplit("/", 1)[-1]).startswith("r"):
        repeat = int(tail[1:]) if tail[1:].isdigit() else 0
    match = _POINT.match(variant)
    if match is None:  # not a sweep point: a gang's single-device baseline, when the sweep swept only devices
        return _Run(result, model, variant, None, None, None, repeat)
    t, b, k = (int(match[g]) if match[g] else None for g in ("t", "b", "k"))
    return _Run(result, model, match["base"], t, b, k, repeat)


def _governor(facts: dict[str, Any]) -> str | None:
    value = facts.get("cpu_governor")
    if isinstance(value, dict):
        return ", ".join(f"{cpus}: {g}" for cpus, g in value.items())
    return None if value is None else str(value)


def _cores(result: Result) -> tuple[int | None, int | None]:
    facts = result.device.facts
    logical, physical = facts.get("cpu_count_logical"), facts.get("cpu_count_physical")
    return (logical if isinstance(logical, int) else None), (physical if isinstance(physical, int) else None)


def _fixed(base: str, t: int | None, b: int | None, axis: str) -> str:
    parts = [base] + ([f"t{t}"] if t is not None and axis != "threads" else []) + \
        ([f"b{b}"] if b is not None and axis != "batch_size" else [])
    return " ".join(parts)


def analyse(results: Sequence[Result]) -> list[Group]:
    """Every scaling group the results hold (at least two points of one axis), in a stable order."""
    runs = [r for r in (_parse(x) for x in results) if r is not None]
    return _axis_groups(runs, "threads") + _axis_groups(runs, "batch_size") + _device_groups(runs)


def _axis_groups(runs: Sequence[_Run], axis: str) -> list[Group]:
    by: dict[tuple, dict[int, list[_Run]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        value = run.threads if axis == "threads" else run.batch
        if run.k is not None or value is None:
            continue
        other = run.batch if axis == "threads" else run.threads
        key = (run.result.device.id, run.model, run.base, other, run.result.runtime.name, run.result.scenario)
        by[key][value].append(run)
    out = []
    for (device, model, base, other, runtime, scenario), points in by.items():
        if len(points) < 2:
            continue
        first = next(iter(points.values()))[0].result
        logical, physical = _cores(first)
        values = sorted(points)
        base_value = values[0]
        base_tp = [r.result.kpis.throughput_sps for r in points[base_value]]
        rows, notes = [], []
        if base_value != 1:
            notes.append(f"no {'1-thread' if axis == 'threads' else 'batch-1'} point: speed-up is against "
                         f"{axis.replace('_', ' ')} {base_value}")
        if axis == "batch_size":
            notes.append(BATCH_NOTE)
        for value in values:
            tps = [r.result.kpis.throughput_sps for r in points[value]]
            speedup = Ratio(1.0, note="baseline") if value == base_value else ratio_interval(tps, base_tp)
            efficiency = speedup.scaled(base_value / value) if axis == "threads" else None
            note, drawn = "", True
            if axis == "threads":
                cores = _cores(points[value][0].result)[0]
                if cores is not None and value > cores:
                    note, drawn = f"oversubscribed: {value} threads on {cores} cores", False
            rows.append(Point(value, len(tps), float(np.mean(tps)), speedup, efficiency, drawn, note))
        other_t = other if axis == "batch_size" else None
        other_b = other if axis == "threads" else None
        out.append(Group(axis, device, model, _fixed(base, other_t, other_b, axis), runtime, scenario, base_value,
                         tuple(rows), logical, physical, _governor(first.device.facts), tuple(notes)))
    return out


def fleet_throughput(members: Sequence[Result]) -> tuple[float, float]:
    """(samples/s over the union of the members' measured windows, the share of that union all ran together)."""
    windows = [(r.window.begin_unix_ns, r.window.end_unix_ns) for r in members if r.window is not None]
    samples = sum(r.kpis.sample_count for r in members)
    if len(windows) != len(members) or not windows:  # without windows: the members' own rates, summed
        return float(sum(r.kpis.throughput_sps or 0.0 for r in members)), math.nan
    begin, end = min(b for b, _ in windows), max(e for _, e in windows)
    common = max(0, min(e for _, e in windows) - max(b for b, _ in windows))
    span = max(end - begin, 1)
    return samples / (span / 1e9), common / span


def _device_groups(runs: Sequence[_Run]) -> list[Group]:
    """Gangs (``@k``) against their members' own runs of the same variant (k = 1)."""
    gangs: dict[tuple, dict[int, dict[int, list[_Run]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    solo: dict[tuple, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for run in runs:
        key = (run.model, run.base, run.threads, run.batch, run.result.runtime.name, run.result.scenario)
        if run.k is not None:
            gangs[key][run.k][run.repeat].append(run)
        elif run.result.scenario == "Offline":
            solo[key][run.result.device.id][run.repeat] = run.result.kpis.throughput_sps
    out = []
    for key, per_k in gangs.items():
        model, base, t, b, runtime, scenario = key
        all_members = sorted({r.result.device.id for reps in per_k.values() for rs in reps.values() for r in rs})
        first = next(r for reps in per_k.values() for rs in reps.values() for r in rs).result
        logical, physical = _cores(first)
        notes: list[str] = []
        single = solo.get(key, {})
        baseline_all = [v for d in all_members for v in single.get(d, {}).values()]
        rows = []
        if baseline_all:
            rows.append(Point(1, len(baseline_all), float(np.mean(baseline_all)), Ratio(1.0, note="baseline"),
                              Ratio(1.0, note="baseline"), note="each device alone (its own Offline run)"))
        else:
            notes.append("no single-device run of this variant: no speed-up")
        for k in sorted(per_k):
            fleet, overlaps, members_seen, base_samples = [], [], set(), []
            for repeat, members in sorted(per_k[k].items()):
                tp, overlap = fleet_throughput([m.result for m in members])
                fleet.append(tp)
                if not math.isnan(overlap):
                    overlaps.append(overlap)
                ids = [m.result.device.id for m in members]
                members_seen.update(ids)
                own = [single.get(d, {}).get(repeat) for d in ids]
                if all(v for v in own):
                    base_samples.append(float(np.mean(own)))
            n_members = max(len(ms) for ms in per_k[k].values())
            note = "" if n_members == k else f"{n_members} of {k} members measured"
            speedup = ratio_interval(fleet, base_samples) if base_samples else None
            efficiency = None if speedup is None else speedup.scaled(1 / n_members)
            rows.append(Point(k, len(fleet), float(np.mean(fleet)), speedup, efficiency, True, note,
                              tuple(sorted(members_seen)), float(np.mean(overlaps)) if overlaps else None))
        if len(rows) < 2:
            continue
        label = _fixed(base, t, b, "devices")
        out.append(Group("devices", "+".join(all_members), model, label, runtime, scenario, 1, tuple(rows), logical,
                         physical, _governor(first.device.facts), tuple(notes)))
    return out
