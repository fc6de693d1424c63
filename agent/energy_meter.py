"""Energy per inference for one run: a power source around it, an idle baseline, the result block.

The meter starts before the run, measures the device idle for a moment (the baseline "above
idle" is reported against), and its samples are cut to exactly the engine's measured window
(LoadGen's power_begin/power_end, or the native engine's own). MLPerf's power units are given
per scenario: mJ per query for SingleStream/MultiStream, watts and samples per joule for
Offline/Server. An estimate is never presented as a measurement: its block says ``measured:
false`` and carries a warning.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agent.scenarios.outcome import Outcome
from agent.scenarios.settings import Scenario
from devices import power, profiles
from devices.power.base import PowerMonitor
from devices.power.integration import WindowEnergy, integrate

DEFAULT_GRID_G_PER_KWH = 475.0  # world-average grid carbon intensity; set your own with --grid-intensity
J_PER_KWH = 3.6e6
DEFAULT_IDLE_S = 2.0  # the idle baseline measured before a run
NO_ENERGY = {"avg_power_w": None, "energy_j": None, "energy_per_inference_mj": None, "inferences_per_joule": None}  # none usable
TRACE_POINTS = 600  # the power trace kept in the result for reports: enough for a plot, small on the wire


@dataclass(frozen=True)
class PowerPlan:
    """What the user asked for: a source spec, how long to measure idle, the grid's carbon intensity.

    ``monitor`` lets a script bring its own opened source (an INA219 on a custom bus, say)
    instead of a spec string.
    """

    spec: str = "auto"
    idle_s: float = DEFAULT_IDLE_S
    grid_g_per_kwh: float = DEFAULT_GRID_G_PER_KWH
    monitor: PowerMonitor | None = field(default=None, compare=False)


def auto_order(facts: dict[str, Any]) -> tuple[str, ...]:
    """``auto``'s order: the device profile's preferred sources, always ending at the estimate."""
    profile = profiles.match(facts)
    order = profile.power_sources if profile else power.AUTO_ORDER
    return tuple(dict.fromkeys((*order, "estimate")))


class EnergyMeter:
    """A started power source, its idle baseline, and the energy block once the run is over."""

    def __init__(self, plan: PowerPlan, facts: dict[str, Any]) -> None:
        self.plan = plan
        self.monitor: PowerMonitor = plan.monitor or power.open_source(plan.spec, auto_order(facts))
        self.idle: WindowEnergy | None = None
        self._closed = False

    def start(self) -> None:
        """Start sampling and measure ``idle_s`` seconds of the device doing nothing."""
        self.monitor.start()
        if self.plan.idle_s > 0:
            t0 = time.monotonic_ns()
            time.sleep(self.plan.idle_s)
            self.idle = integrate(self.monitor.samples(), t0, time.monotonic_ns(), self.monitor.info.nominal_hz)

    def _release(self) -> list:
        samples = self.monitor.stop()
        if not self._closed:
            self._closed = True
            self.monitor.close()
        return samples

    def abort(self) -> None:
        """Stop and release the source when the run itself failed."""
        self._release()

    def finish(self, outcome: Outcome) -> dict[str, Any]:
        """Stop sampling and account the measured window."""
        samples = self._release()
        info = self.monitor.info
        t0, t1 = outcome.window_monotonic_ns
        window = integrate(samples, t0, t1, info.nominal_hz) if t1 > t0 else None
        warnings = list(window.warnings) if window else []
        if self.monitor.error:
            warnings.append(f"the power source failed during the run: {self.monitor.error}")
        if not info.measured:
            warnings.append(f"estimated, not measured: {info.detail.get('model', 'a model of the device')}")
        block: dict[str, Any] = {
            "source": info.source, "measured": info.measured, "rail": info.rail, "nominal_rate_hz": info.nominal_hz,
            "source_detail": info.detail, "samples": len(samples), "grid_intensity_g_per_kwh": self.plan.grid_g_per_kwh,
            "idle_power_w": self.idle.avg_power_w if self.idle else None, "warnings": warnings,
        }
        block["trace"] = trace(samples, t0, t1)
        if window is None or window.energy_j <= 0 or outcome.sample_count == 0:
            block["warnings"].append("no usable power samples in the measured window; energy not reported")
            return block | NO_ENERGY
        return block | figures(window, self.idle, outcome.sample_count, outcome.query_count, outcome.settings.scenario,
                               self.plan.grid_g_per_kwh)


def trace(samples: list, t0_ns: int, t1_ns: int, points: int = TRACE_POINTS) -> dict[str, Any]:
    """Power over the window and a tenth of it either side, thinned to ``points`` readings, as
    seconds from the window's start: what a report plots."""
    margin = (t1_ns - t0_ns) // 10
    shown = [s for s in samples if s.watts is not None and s.valid and t0_ns - margin <= s.t_ns <= t1_ns + margin]
    step = max(1, -(-len(shown) // points))
    kept = shown[::step]
    return {"t_s": [round((s.t_ns - t0_ns) / 1e9, 6) for s in kept], "w": [round(s.watts, 6) for s in kept],
            "window_s": (t1_ns - t0_ns) / 1e9}


def figures(window: WindowEnergy, idle: WindowEnergy | None, n: int, queries: int, scenario: Scenario,
            grid: float) -> dict[str, Any]:
    """The energy block's figures for ``n`` samples in ``queries`` queries over ``window``, in MLPerf's unit
    for ``scenario``; above idle where an idle baseline was measured."""
    per_inference_j = window.energy_j / n
    above_idle = None
    if idle is not None:
        above_idle = (window.energy_j - idle.avg_power_w * window.duration_s) / n * 1e3
    if scenario in (Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM):
        mlperf = {"metric": "mJ/query", "mj_per_query": window.energy_j * 1e3 / queries}
    else:
        mlperf = {"metric": "W", "avg_power_w": window.avg_power_w, "samples_per_joule": n / window.energy_j}
    return {
        "sample_rate_hz": window.achieved_hz, "window_samples": window.samples, "window_s": window.duration_s,
        "method": window.method, "max_gap_s": window.max_gap_s, "energy_j": window.energy_j,
        "avg_power_w": window.avg_power_w, "energy_per_inference_mj": per_inference_j * 1e3,
        "energy_per_inference_above_idle_mj": above_idle, "inferences_per_joule": n / window.energy_j,
        "mlperf": mlperf, "gco2e_per_1000_inferences": per_inference_j * 1000 / J_PER_KWH * grid,
    }


def open_meter(plan: PowerPlan | None, facts: dict[str, Any]) -> EnergyMeter | None:
    """The meter for a run, or None without ``--power``. An explicitly named source that cannot
    open is the user's to fix (one clear line); ``auto`` never fails: it ends at the estimate."""
    return EnergyMeter(plan, facts) if plan is not None else None
