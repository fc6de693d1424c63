"""Energy on a phone from its battery's fuel gauge, sampled on the phone and pulled afterwards.

Why on the phone: an adb round trip per reading would cost the phone more CPU than the gauge
is worth and would time each reading by the host. So a shell loop on the phone (``sampler``)
writes ``$EPOCHREALTIME`` (mksh: the phone's clock in µs) and the gauge's ``current_now`` (µA)
and ``voltage_now`` (µV) every ``PERIOD_S``, in the background of the command that runs the tool;
the tool's start and end are stamped on the same clock (``T0``/``T1`` lines), so no clock needs
to agree with the host's. The loop stops when a stop file appears, so a loop left running by a
run that was cut off is ended by the next run (``stop_stale``).

What the gauge can resolve is measured, not assumed: its update rate is the rate at which the
readings change (a gauge updates at 1–10 Hz on most phones; the loop reads faster), and its
resolution the smallest step between two different current readings. Power is
``|current| × voltage`` (drivers differ in sign: the power_supply ABI makes discharge negative,
many vendors positive), integrated by ``devices.power.integration`` exactly as an agent's source
is, over the tool's measured runs: they are the last thing the tool does before it exits, so the
window is placed at the tool's end, as long as their summed latency (``measured_window``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.energy_meter import NO_ENERGY, figures, trace
from agent.scenarios.settings import Scenario
from devices.power.base import PowerSample
from devices.power.integration import WindowEnergy, integrate

BATTERY = "/sys/class/power_supply/battery"
PERIOD_S = 0.02  # the loop's pause: faster than phone gauges update, so every update is seen
SOURCE = "fuel-gauge"
T0, T1, TOOL_RC = "__EDGEPERF_T0=", "__EDGEPERF_T1=", "__EDGEPERF_TOOL_RC="


@dataclass(frozen=True)
class Reading:
    """One pass of the loop: the phone's clock (s), the gauge's current (µA) and voltage (µV)."""

    t_s: float
    current_ua: int
    voltage_uv: int

    @property
    def watts(self) -> float:
        return abs(self.current_ua) * 1e-6 * self.voltage_uv * 1e-6


def sampler(folder: str, battery: str = BATTERY, period_s: float = PERIOD_S) -> str:
    """The background loop, as a command ending in ``&``; it writes ``folder/gauge.txt`` until ``folder/gauge.stop``."""
    return (f"rm -f {folder}/gauge.stop {folder}/gauge.txt; while [ ! -e {folder}/gauge.stop ]; do echo $EPOCHREALTIME; "
            f"cat {battery}/current_now {battery}/voltage_now; sleep {period_s:g}; done > {folder}/gauge.txt 2>&1 &")


def stop(folder: str) -> str:
    """The command that ends the loop (``wait`` then returns once it has)."""
    return f"echo > {folder}/gauge.stop; wait"


def stop_stale(folder: str, period_s: float = PERIOD_S) -> str:
    """End any loop a cut-off run left behind: the stop file, held longer than one pass of the loop."""
    return f"echo > {folder}/gauge.stop; sleep {max(0.2, 5 * period_s):g}; rm -f {folder}/gauge.stop"


def parse(text: str) -> list[Reading]:
    """The loop's records (a time line, then the two gauge lines); a record cut short or unreadable is skipped."""
    lines = [line.strip() for line in text.splitlines()]
    out: list[Reading] = []
    i = 0
    while i + 2 < len(lines):
        try:
            t, current, voltage = float(lines[i]), int(lines[i + 1]), int(lines[i + 2])
        except ValueError:
            i += 1  # not at a record's start (a cut line or a cat error): move on until one is
            continue
        if "." in lines[i] and voltage > 0:
            out.append(Reading(t, current, voltage))
            i += 3
        else:
            i += 1
    return out


def stamp(output: str, marker: str) -> float | None:
    """The phone-clock time on the ``marker`` line of the tool command's output."""
    for line in output.splitlines():
        if line.startswith(marker):
            try:
                return float(line[len(marker):].strip())
            except ValueError:
                return None
    return None


def update_rate(readings: Sequence[Reading]) -> tuple[float | None, int | None]:
    """How often the gauge's readings changed (Hz, between the first and last change) and the smallest step of its
    current (µA): a gauge holds its values between updates, and a real load never reads the same twice."""
    changes = [b.t_s for a, b in itertools.pairwise(readings) if (b.current_ua, b.voltage_uv) != (a.current_ua, a.voltage_uv)]
    steps = sorted({abs(b.current_ua - a.current_ua) for a, b in itertools.pairwise(readings)} - {0})
    rate = (len(changes) - 1) / (changes[-1] - changes[0]) if len(changes) > 1 and changes[-1] > changes[0] else None
    return rate, (steps[0] if steps else None)


def measured_window(t1_s: float, measured_s: float) -> tuple[float, float]:
    """The measured runs on the phone's clock: the ``measured_s`` before the tool's end ``t1_s``."""
    return t1_s - measured_s, t1_s


def energy_block(readings: Sequence[Reading], window_s: tuple[float, float], idle_s: tuple[float, float] | None,
                 inferences: int, charging: str, grid_g_per_kwh: float) -> dict[str, Any]:
    """The result's ``kpis.energy`` for the window, measured by the gauge; ``charging`` says how the battery was
    made to power the phone alone (charging suspended, or already on battery)."""
    samples = [PowerSample(round(r.t_s * 1e9), r.watts, volts=r.voltage_uv * 1e-6, amps=abs(r.current_ua) * 1e-6)
               for r in readings]
    nominal = 1 / PERIOD_S
    t0, t1 = (round(t * 1e9) for t in window_s)
    rate_hz, step_ua = update_rate(readings)
    detail = {"gauge": f"{BATTERY}/current_now × voltage_now", "gauge_update_hz": rate_hz, "smallest_step_ua": step_ua,
              "loop_period_s": PERIOD_S, "charging": charging,
              "window": "the tool's measured runs, placed at its end on the phone's clock (their summed latency)"}
    block: dict[str, Any] = {"source": SOURCE, "measured": True, "rail": "battery (the whole phone)",
                             "nominal_rate_hz": nominal, "source_detail": detail, "samples": len(samples),
                             "grid_intensity_g_per_kwh": grid_g_per_kwh, "warnings": []}
    window = integrate(samples, t0, t1, nominal) if samples and t1 > t0 else None
    idle: WindowEnergy | None = None
    if idle_s is not None and samples and idle_s[1] > idle_s[0]:
        idle = integrate(samples, round(idle_s[0] * 1e9), round(idle_s[1] * 1e9), nominal)
    block["idle_power_w"] = idle.avg_power_w if idle else None
    if window is None or window.energy_j <= 0 or inferences == 0:
        block["warnings"].append("no usable gauge readings in the measured window; energy not reported")
        return block | NO_ENERGY
    block["warnings"] += window.warnings
    updates = rate_hz * window.duration_s if rate_hz else 0.0
    if updates < 10:
        block["warnings"].append(f"the gauge updated about {updates:.0f} times in the {window.duration_s:.2f} s window "
                                 f"(every {1 / rate_hz:.2f} s)" if rate_hz else "the gauge's reading never changed")
    block["trace"] = trace(samples, t0, t1)
    return block | figures(window, idle, inferences, inferences, Scenario.SINGLE_STREAM, grid_g_per_kwh)
