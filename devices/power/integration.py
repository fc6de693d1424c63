"""Energy over exactly the measured window, from timestamped power samples or energy counters.

MLPerf Power cuts the analyzer's trace to LoadGen's ``power_begin``/``power_end``; so do we.
Power is taken as piecewise linear between samples: the trapezoid rule is exact for it, and the
power at the window's edges is interpolated from the samples on either side, so a window that
starts between two samples is neither padded nor cut short. Counter sources (RAPL, NVML energy)
are read the same way: the counter is interpolated at both edges and subtracted. Whatever makes
the number less trustworthy — too few samples, gaps, edges not covered, flagged readings — comes
back as a warning sentence for the result.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from devices.power.base import PowerSample

MIN_SAMPLES = 10  # fewer than this in the window and the energy is more guess than measurement
GAP_FACTOR = 3.0  # a gap is reported when longer than this many nominal periods ...
GAP_SHARE = 0.01  # ... and than this share of the window (a 5 ms hiccup in a 10 s run changes nothing)
RATE_SHARE = 0.5  # an achieved rate below half the nominal one is reported


@dataclass(frozen=True)
class WindowEnergy:
    """Energy and power over one window, with how well the samples covered it."""

    energy_j: float
    avg_power_w: float
    duration_s: float
    samples: int  # readings inside the window
    achieved_hz: float
    max_gap_s: float
    method: str  # "trapezoid" | "counter"
    warnings: list[str] = field(default_factory=list)


def _interpolate(times: Sequence[int], values: Sequence[float], t: int) -> float:
    """Linear interpolation at ``t`` (held constant beyond the first/last point)."""
    i = bisect_left(times, t)
    if i < len(times) and times[i] == t:
        return values[i]
    if i == 0:
        return values[0]
    if i == len(times):
        return values[-1]
    t0, t1, v0, v1 = times[i - 1], times[i], values[i - 1], values[i]
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def _trapezoid(times: Sequence[int], values: Sequence[float], t0: int, t1: int) -> float:
    """∫ of the piecewise-linear curve through (times, values) from t0 to t1, in value × seconds."""
    inside = [(t, v) for t, v in zip(times, values, strict=True) if t0 < t < t1]
    points = [(t0, _interpolate(times, values, t0)), *inside, (t1, _interpolate(times, values, t1))]
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in pairwise(points)) / 1e9


def integrate(samples: Sequence[PowerSample], t0_ns: int, t1_ns: int, nominal_hz: float = 0.0) -> WindowEnergy | None:
    """Energy over [t0_ns, t1_ns] (host monotonic ns); None when no usable sample exists."""
    if t1_ns <= t0_ns:
        raise ValueError("the window must end after it starts")
    good = sorted((s for s in samples if s.valid), key=lambda s: s.t_ns)
    flagged = len(samples) - len(good)
    counters = [s for s in good if s.energy_j is not None]
    powered = [s for s in good if s.watts is not None]
    use = counters if len(counters) >= 2 else powered
    if not use:
        return None
    times = [s.t_ns for s in use]
    duration = (t1_ns - t0_ns) / 1e9
    if use is counters:
        values = [s.energy_j for s in counters]
        energy = _interpolate(times, values, t1_ns) - _interpolate(times, values, t0_ns)
        method = "counter"
    else:
        energy = _trapezoid(times, [s.watts for s in powered], t0_ns, t1_ns)
        method = "trapezoid"
    inside = times[bisect_left(times, t0_ns):bisect_right(times, t1_ns)]
    in_window = [min(max(t, t0_ns), t1_ns) for t in (times[0], *inside, times[-1])]
    max_gap = max(b - a for a, b in pairwise([t0_ns, *in_window, t1_ns])) / 1e9
    achieved = len(inside) / duration

    warnings = []
    if len(inside) < MIN_SAMPLES:
        rate = f"{achieved:.2g} Hz" if inside else "no"
        warnings.append(
            f"only {len(inside)} power samples in the {duration:.2f} s window ({rate} sampling): the source is too slow "
            f"for this run; run at least {MIN_SAMPLES / max(nominal_hz or achieved, 1e-9):.0f} s or use a faster source"
        )
    if times[0] > t0_ns or times[-1] < t1_ns:
        warnings.append("the power samples do not cover the whole window; its edges were extrapolated")
    allowed_gap = max(GAP_FACTOR / nominal_hz if nominal_hz else 0.0, GAP_SHARE * duration)
    if max_gap > allowed_gap and len(inside) >= MIN_SAMPLES:
        expected = f" (expected every {1e3 / nominal_hz:.1f} ms)" if nominal_hz else ""
        warnings.append(f"gaps of up to {max_gap * 1e3:.0f} ms between power samples{expected}")
    if nominal_hz and achieved < RATE_SHARE * nominal_hz and len(inside) >= MIN_SAMPLES:
        warnings.append(
            f"sampled at {achieved:.3g} Hz of a nominal {nominal_hz:.3g} Hz: the sampler competed with the run for CPU"
        )
    if flagged:
        warnings.append(f"{flagged} flagged power readings (e.g. overflow) were left out")
    return WindowEnergy(energy, energy / duration, duration, len(inside), achieved, max_gap, method, warnings)
