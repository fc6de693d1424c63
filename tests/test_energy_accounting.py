"""Energy over exactly the window: the trapezoid is exact for piecewise-linear power, edges are
interpolated, counters are differenced, and what makes a number doubtful is said."""

from __future__ import annotations

import pytest

from devices.power.base import PowerSample
from devices.power.integration import integrate

S = 1_000_000_000  # ns per second


def ramp(t_ns: int) -> float:
    """A known power profile: 2 W, ramping to 6 W between 1 s and 2 s, then 6 W."""
    t = t_ns / S
    return 2.0 if t < 1 else 6.0 if t > 2 else 2.0 + 4.0 * (t - 1)


def samples_of(profile, start_s: float, end_s: float, hz: float) -> list[PowerSample]:
    n = round((end_s - start_s) * hz)
    return [PowerSample(int((start_s + i / hz) * S), profile(int((start_s + i / hz) * S))) for i in range(n + 1)]


def exact_ramp_energy(a: float, b: float, steps: int = 200_000) -> float:
    dt = (b - a) / steps
    return sum(ramp(int((a + (i + 0.5) * dt) * S)) for i in range(steps)) * dt


def test_window_between_samples_is_exact_for_piecewise_linear_power():
    samples = samples_of(ramp, 0.0, 3.0, 100)  # samples land on the ramp's corners
    window = integrate(samples, int(0.505 * S), int(2.495 * S), nominal_hz=100)
    # 0.505..1: 2 W -> 0.99 J; 1..2: ramp 2->6 W -> 4 J; 2..2.495: 6 W -> 2.97 J
    assert window.energy_j == pytest.approx(0.99 + 4.0 + 2.97, rel=1e-12)
    assert window.energy_j == pytest.approx(exact_ramp_energy(0.505, 2.495), rel=1e-6)
    assert window.avg_power_w == pytest.approx(window.energy_j / 1.99)
    assert window.method == "trapezoid" and window.warnings == []
    assert window.samples == 199 and window.achieved_hz == pytest.approx(100, rel=0.01)


def test_energy_counters_are_interpolated_at_the_edges():
    counter = [PowerSample(i * S // 10, None, energy_j=5.0 * i / 10) for i in range(31)]  # 5 W as a counter
    window = integrate(counter, int(0.25 * S), int(2.25 * S), nominal_hz=10)
    assert window.method == "counter"
    assert window.energy_j == pytest.approx(10.0, rel=1e-12)


def test_a_slow_source_on_a_short_run_is_called_out():
    one_hz = samples_of(lambda t: 4.0, 0.0, 10.0, 1)
    window = integrate(one_hz, 3 * S, 5 * S, nominal_hz=1)
    assert window.energy_j == pytest.approx(8.0)
    assert any("too slow for this run" in w and "run at least 10 s" in w for w in window.warnings)


def test_gaps_edges_and_flagged_readings_are_reported():
    steady = samples_of(lambda t: 1.0, 0.0, 2.0, 100)
    gappy = [s for s in steady if not (0.8 * S < s.t_ns < 1.3 * S)]
    window = integrate(gappy, int(0.1 * S), int(1.9 * S), nominal_hz=100)
    assert window.max_gap_s == pytest.approx(0.5, abs=0.011)
    assert any("gaps of up to" in w for w in window.warnings)
    late = integrate(samples_of(lambda t: 1.0, 0.5, 2.0, 100), 0, int(1.9 * S), nominal_hz=100)
    assert any("do not cover the whole window" in w for w in late.warnings)
    flagged = [PowerSample(s.t_ns, 999.0, flags=("overflow",)) if i % 10 == 0 else s for i, s in enumerate(steady)]
    window = integrate(flagged, int(0.1 * S), int(1.9 * S), nominal_hz=100)
    assert window.energy_j == pytest.approx(1.8)  # the 999 W readings are left out, not averaged in
    assert any("21 flagged" in w for w in window.warnings)


def test_nothing_usable_is_none_not_zero():
    assert integrate([PowerSample(0, None)], 0, S) is None
    with pytest.raises(ValueError):
        integrate([PowerSample(0, 1.0)], S, S)
