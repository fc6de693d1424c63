"""How a phone job's energy is found: the battery's fuel gauge, measured (``agent.android.gauge``), or —
on a phone that exposes no gauge — an estimate from the phone's CPU time, always labelled estimated.

The estimate is the agent's own model (``devices/power/estimate.py``): ``idle_w + (max_w − idle_w) ×
CPU utilisation``, with the utilisation from ``/proc/stat`` read on the phone just before and just
after the tool's run, and the two powers the user's (``power: estimate:idle_w=W,max_w=W``): no profile
of a phone's power envelope ships with edgeperf, and a number from nothing would look like a number.
``auto`` takes the gauge where there is one; without one and without figures it gives an energy block
that says so and holds no energy, as ``auto`` never fails a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.android import gauge
from agent.energy_meter import NO_ENERGY
from agent.energy_meter import figures as energy_figures
from agent.errors import SettingsError
from agent.scenarios.settings import Scenario
from devices.power.integration import WindowEnergy

SPECS = ("auto", gauge.SOURCE, "battery", "estimate")
STAT = "/proc/stat"
MODEL = "idle_w + (max_w - idle_w) x CPU utilisation (/proc/stat over the tool's run)"


@dataclass(frozen=True)
class Estimate:
    """The user's idle and full-load power of the phone, in watts."""

    idle_w: float
    max_w: float


@dataclass(frozen=True)
class PowerSpec:
    """A job's ``power:`` as a phone reads it: the source's name and, for an estimate, the figures."""

    name: str
    estimate: Estimate | None

    @classmethod
    def parse(cls, spec: str) -> PowerSpec:
        name, _, rest = spec.strip().partition(":")
        name = name.lower()
        if name not in SPECS:
            raise SettingsError(f"power: {spec} names a source on a host; a phone's energy comes from its own battery gauge: "
                                f"use power: {gauge.SOURCE} (or auto), or estimate:idle_w=W,max_w=W for a phone without one")
        options = dict(item.partition("=")[::2] for item in filter(None, rest.split(",")))
        if name != "estimate":
            if options:
                raise SettingsError(f"power: {spec}: {name} takes no options on a phone")
            return cls(name, None)
        try:
            figures = Estimate(float(options["idle_w"]), float(options["max_w"]))
        except (KeyError, ValueError):
            raise SettingsError(f"power: {spec}: an estimate on a phone needs both figures, estimate:idle_w=W,max_w=W (the "
                                "phone's idle and full-load power, from its datasheet or one reading of a USB meter)") from None
        if not 0 <= figures.idle_w <= figures.max_w:
            raise SettingsError(f"power: {spec}: give 0 <= idle_w <= max_w")
        return cls(name, figures)

    def source(self, has_gauge: bool, serial: str) -> str | Estimate | None:
        """``fuel-gauge``, the estimate's figures, or None (``auto`` on a phone with neither)."""
        if self.name == "estimate":
            return self.estimate
        if has_gauge:
            return gauge.SOURCE
        if self.name == "auto":
            return None
        raise SettingsError(f"phone {serial} exposes no fuel gauge (no readable current_now and voltage_now under "
                            f"{gauge.BATTERY}); use power: estimate:idle_w=W,max_w=W for an estimate, or drop power:")


def has_gauge(facts: dict[str, Any]) -> bool:
    """Whether the phone's facts show a fuel gauge: a battery whose ``current_now`` and ``voltage_now`` the shell can read."""
    return {"current_now", "voltage_now"} <= facts.get("battery", {}).keys()


def cpu_times(text: str) -> tuple[int, int] | None:
    """(busy, total) jiffies from ``/proc/stat``'s first ``cpu`` line; idle and iowait are not busy."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu" and len(fields) >= 5 and all(f.isdigit() for f in fields[1:]):
            values = [int(f) for f in fields[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            return sum(values) - idle, sum(values)
    return None


def utilisation(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of CPU time that was busy between the two readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return min(1.0, max(0.0, (after[0] - before[0]) / (after[1] - before[1])))


def estimated_block(figures: Estimate, busy: float | None, window_s: tuple[float, float], inferences: int,
                    grid_g_per_kwh: float) -> dict[str, Any]:
    """The result's ``kpis.energy`` for an estimate: labelled so, with the model and its inputs."""
    detail = {"model": MODEL, "idle_w": figures.idle_w, "max_w": figures.max_w, "cpu_utilisation": busy}
    block: dict[str, Any] = {"source": "estimate", "measured": False, "rail": "the whole phone (estimated from its CPU time)",
                             "nominal_rate_hz": 0.0, "source_detail": detail, "samples": 0,
                             "grid_intensity_g_per_kwh": grid_g_per_kwh, "idle_power_w": figures.idle_w,
                             "warnings": ["estimated, not measured: this phone exposes no fuel gauge, so the energy is "
                                          f"{MODEL} with the figures given in power:"]}
    duration = window_s[1] - window_s[0]
    if busy is None or duration <= 0 or inferences == 0:
        block["warnings"].append(f"no CPU time could be read from {STAT}; energy not reported")
        return block | NO_ENERGY
    watts = figures.idle_w + (figures.max_w - figures.idle_w) * busy
    window = WindowEnergy(watts * duration, watts, duration, 0, 0.0, duration, "estimate")
    idle = WindowEnergy(figures.idle_w * duration, figures.idle_w, duration, 0, 0.0, duration, "estimate")
    return block | energy_figures(window, idle, inferences, inferences, Scenario.SINGLE_STREAM, grid_g_per_kwh)


def unavailable_block(serial: str, grid_g_per_kwh: float) -> dict[str, Any]:
    """``auto`` on a phone with no gauge and no figures: a block that says why it holds no energy."""
    why = f"phone {serial} exposes no fuel gauge; for an estimate give power: estimate:idle_w=W,max_w=W"
    return {"source": "none", "measured": False, "rail": "", "source_detail": {}, "samples": 0,
            "grid_intensity_g_per_kwh": grid_g_per_kwh, "warnings": [why]} | NO_ENERGY
