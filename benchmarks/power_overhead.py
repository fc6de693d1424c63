"""Sampling overhead: the bench's p50 with and without each power source, and achieved sample rates.

A power meter that slows the run it measures falsifies its own energy per inference, and one that
samples slower than it claims smears it; this measures both on the machine at hand.

Part A runs the zoo's int8 TFLite model (1 thread, SingleStream, native engine) through
``agent.bench.run``, the product's own path, with no power source and then with each source in
turn, interleaved (none, source 1, none, source 2, ...), and reports per source the median p50 of
the runs without and with it, the median of the paired ratios p50(with)/p50(none just before),
and the sample rate the source achieved inside the measured window. The sources are every one
``devices.power.survey()`` finds usable here, plus two emulated ones that run anywhere:

- ``ina219 (emulated)``: ``INA219Monitor`` over an ``EmulatedSMBus``, in process, as the real
  driver runs on a Pi. The emulator is Python and holds the GIL for each register transfer,
  where a real i2c-dev ioctl releases it: its overhead is an upper bound.
- ``serial (emulated)``: ``SerialPowerMonitor`` on the pty of the real firmware core, which runs
  in a process of its own (``devices.emulators.power_board.BoardProcess``) as the firmware runs on
  its own microcontroller, so the host's cost is the driver's reader thread. The firmware process
  still takes CPU time that a real board would not; its share is printed.

Part B samples with each emulated path alone for ``--seconds`` and compares the achieved rate
with the nominal one (INA219 at 12 bit: one conversion per 1.064 ms; the firmware at 1000 Hz),
with the host process's CPU use, the serial link's losses and its fitted clock against the
emulated crystal.

    python benchmarks/power_overhead.py [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import bench
from agent.contract import RuntimeOptions
from agent.energy_meter import PowerPlan
from agent.scenarios.settings import Scenario, for_profile, with_overrides
from devices import power
from devices.emulators.ina219 import EmulatedSMBus, INA219Chip
from devices.emulators.power_board import BoardProcess
from devices.power.base import PowerMonitor, PowerSample, PowerSourceError
from devices.power.ina219 import INA219, INA219Monitor
from devices.power.serial_monitor import SerialPowerMonitor

MODEL = "zoo:fashion-mnist-cnn/int8.tflite"
LOAD_A, LOAD_V, SHUNT_OHMS = 1.0, 5.0, 0.1  # the emulated rail: 5 W through the common 0.1 ohm breakout
SERIAL_RATE_HZ = 1000
DRIFT_PPM = 50.0  # the emulated board's crystal: at the edge of a common crystal's tolerance


@dataclass
class Source:
    """A power source to measure with: ``opened`` yields a fresh monitor and cleans up after it
    (``bench.run`` closes the monitor itself; this releases what stands behind it)."""

    label: str
    opened: Callable[[], contextlib.AbstractContextManager[PowerMonitor]]
    p50_none_us: list[float] = field(default_factory=list)
    p50_with_us: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    rates_hz: list[float] = field(default_factory=list)
    nominal_hz: float = 0.0
    measured: bool = True
    notes: dict[str, list[float]] = field(default_factory=dict)

    def note(self, key: str, value: float | None) -> None:
        if value is not None:
            self.notes.setdefault(key, []).append(value)


# --- the sources -----------------------------------------------------------------------------------------
def ina219_monitor() -> INA219Monitor:
    chip = INA219Chip(0x40, shunt_ohms=SHUNT_OHMS)
    chip.set_current(LOAD_A, LOAD_V)
    return INA219Monitor(INA219(EmulatedSMBus(chip), 0x40, shunt_ohms=SHUNT_OHMS, max_current_a=3.2), rail="emulated 5 V")


@contextlib.contextmanager
def emulated_ina219() -> Iterator[PowerMonitor]:
    monitor = ina219_monitor()
    try:
        yield monitor
    finally:
        monitor.stop()
        monitor.close()


class EmulatedSerial:
    """A fresh ``BoardProcess`` and the host driver on its pty for each run; the firmware process's
    share of a core is kept in ``notes`` for the report."""

    def __init__(self) -> None:
        self.notes: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def __call__(self) -> Iterator[SerialPowerMonitor]:
        board = BoardProcess(amps=LOAD_A, volts=LOAD_V, drift_ppm=DRIFT_PPM)
        monitor = None
        try:
            monitor = SerialPowerMonitor(board.path, rate_hz=SERIAL_RATE_HZ, timeout_s=5.0)
            yield monitor
        finally:
            if monitor is not None:
                monitor.close()
            final = board.close()
            if final:
                self.notes.setdefault("firmware_cpu", []).append(final["cpu_s"] / final["wall_s"])


def by_spec(name: str) -> Callable[[], contextlib.AbstractContextManager[PowerMonitor]]:
    @contextlib.contextmanager
    def opened() -> Iterator[PowerMonitor]:
        monitor = power.open_source(name)
        try:
            yield monitor
        finally:
            monitor.stop()
            monitor.close()

    return opened


def sources_here() -> tuple[list[Source], list[str]]:
    """Every source the survey finds usable and that opens, then the two emulated paths; and one
    line per source left out, saying why."""
    found, skipped = [], []
    for entry in power.survey():
        if not entry.available:
            skipped.append(entry.name)
            continue
        try:
            with by_spec(entry.name)():
                pass
        except PowerSourceError as exc:
            skipped.append(f"{entry.name} ({exc})")
            continue
        found.append(Source(entry.name, by_spec(entry.name)))
    found.append(Source("ina219 (emulated)", emulated_ina219))
    serial = EmulatedSerial()
    found.append(Source("serial (emulated)", serial, notes=serial.notes))
    return found, skipped


# --- Part A: p50 with and without ------------------------------------------------------------------------
def bench_once(seconds: float, log_dir: Path, monitor: PowerMonitor | None) -> dict[str, Any]:
    settings = with_overrides(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=int(seconds * 1000))
    request = bench.BenchRequest(model=MODEL, settings=settings, engine="native", options=RuntimeOptions(threads=1),
                                 log_dir=log_dir, power=PowerPlan(idle_s=0, monitor=monitor) if monitor else None)
    return bench.run(request)


def p50_us(doc: dict[str, Any]) -> float:
    return doc["kpis"]["latency_ms"]["p50"] * 1e3


def part_a(sources: list[Source], seconds: float, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as logs:
        bench_once(1.0, Path(logs), None)  # warm caches and the CPU clock before anything counts
        for _ in range(rounds):
            for source in sources:
                none = p50_us(bench_once(seconds, Path(logs), None))
                with source.opened() as monitor:
                    doc = bench_once(seconds, Path(logs), monitor)
                with_ = p50_us(doc)
                energy = doc["kpis"]["energy"]
                source.p50_none_us.append(none)
                source.p50_with_us.append(with_)
                source.ratios.append(with_ / none)
                source.nominal_hz, source.measured = energy["nominal_rate_hz"], energy["measured"]
                if energy.get("sample_rate_hz") is not None:
                    source.rates_hz.append(energy["sample_rate_hz"])
                link = energy["source_detail"].get("link")
                if link:
                    source.note("dropped", link["dropped"])
                    source.note("corrupt", link["corrupt"])


def print_part_a(sources: list[Source], skipped: list[str], seconds: float, rounds: int) -> None:
    print(f"A. SingleStream p50 (µs), int8 TFLite, 1 thread, native engine via bench.run; median of {rounds} "
          f"interleaved rounds of {seconds:g} s")
    print(f"{'source':<18} {'p50 none':>9} {'p50 with':>9} {'with/none':>10} {'samples/s in window':>20} {'nominal':>8}")
    for s in sources:
        rate = f"{statistics.median(s.rates_hz):.1f}" if s.rates_hz else "none"
        print(f"{s.label:<18} {statistics.median(s.p50_none_us):9.1f} {statistics.median(s.p50_with_us):9.1f} "
              f"{statistics.median(s.ratios):10.3f} {rate:>20} {s.nominal_hz:8.1f}")
    print("   with/none: median over rounds of p50(with) / p50(the run without, just before)")
    for s in sources:
        if not s.measured:
            print(f"   {s.label}: estimated from CPU use, not measured")
    print("   ina219 (emulated): in process; the emulator holds the GIL for every register transfer, where a real "
          "i2c-dev ioctl releases it: an upper bound")
    serial = next(s for s in sources if s.label == "serial (emulated)")
    cpu = serial.notes.get("firmware_cpu")
    lost = f"{sum(serial.notes.get('dropped', []))} dropped, {sum(serial.notes.get('corrupt', []))} corrupt frames in all runs"
    print("   serial (emulated): firmware core in its own process (on hardware: the board's MCU)"
          + (f", which took {100 * statistics.median(cpu):.0f} % of a core here" if cpu else "") + f"; {lost}")
    if skipped:
        print(f"   not usable here: {', '.join(skipped)} (edgeperf-agent power list)")


# --- Part B: achieved rate, nothing else running ------------------------------------------------------------
def rate_hz(samples: list[PowerSample]) -> float:
    if len(samples) < 2:
        return 0.0
    return (len(samples) - 1) / ((samples[-1].t_ns - samples[0].t_ns) / 1e9)


def sample_alone(monitor: PowerMonitor, seconds: float) -> tuple[list[PowerSample], float]:
    """Sample for ``seconds``; return the samples and the host process's CPU use meanwhile (the
    main thread sleeps, so it is the sampling thread's), in cores."""
    monitor.start()
    wall0, cpu0 = time.monotonic(), time.process_time()
    time.sleep(seconds)
    cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    return monitor.stop(), cpu


def part_b(seconds: float) -> None:
    print(f"B. achieved sample rate, nothing else running, {seconds:g} s each")
    print(f"{'source':<18} {'nominal/s':>10} {'achieved/s':>11} {'ratio':>7} {'host CPU, % of a core':>22}")
    monitor = ina219_monitor()
    try:
        samples, cpu = sample_alone(monitor, seconds)
    finally:
        monitor.close()
    nominal = monitor.info.nominal_hz
    print(f"{'ina219 (emulated)':<18} {nominal:10.1f} {rate_hz(samples):11.1f} {rate_hz(samples) / nominal:7.3f} "
          f"{100 * cpu:22.1f}")

    board = BoardProcess(amps=LOAD_A, volts=LOAD_V, drift_ppm=DRIFT_PPM)
    try:
        serial = SerialPowerMonitor(board.path, rate_hz=SERIAL_RATE_HZ, timeout_s=5.0)
        try:
            samples, cpu = sample_alone(serial, seconds)
            stopped_ns = time.monotonic_ns()  # stop() ended with a clock sync: the fit's last point is now
            stats = serial.stats()
        finally:
            serial.close()
    finally:
        final = board.close()
    clock = board.clock
    true_offset_s = (stopped_ns - (clock.offset_ns + (stopped_ns - clock.host0) * clock.rate)) / 1e9
    achieved = stats["achieved_hz"] or 0.0
    print(f"{'serial (emulated)':<18} {SERIAL_RATE_HZ:10.1f} {achieved:11.1f} {achieved / SERIAL_RATE_HZ:7.3f} "
          f"{100 * cpu:22.1f}")
    print(f"   serial link (stats()): {stats['frames']} frames, {stats['dropped']} dropped, {stats['corrupt']} corrupt, "
          f"{stats['skipped_bytes']} bytes skipped; firmware sent {final['samples_sent'] if final else '?'}")
    offset_error_us = (stats["clock_offset_s"] - true_offset_s) * 1e6
    print(f"   serial clock fit: drift {stats['clock_drift_ppm']:+.1f} ppm (emulated crystal {DRIFT_PPM:+.1f}), offset "
          f"{stats['clock_offset_s']:.6f} s (true {true_offset_s:.6f}, error {offset_error_us:+.0f} µs), "
          f"best sync round trip {stats['sync_rtt_us']:.0f} µs over {stats['sync_points']} sync points")
    if final:
        print(f"   firmware process: {100 * final['cpu_s'] / final['wall_s']:.0f} % of a core (on hardware: the board's MCU)")
    print("   achieved/s: ina219 from host timestamps, serial from device timestamps (stats()['achieved_hz'])")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each timed run and of each Part B sampling")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of Part A")
    args = parser.parse_args()
    sources, skipped = sources_here()
    part_a(sources, args.seconds, args.rounds)
    print_part_a(sources, skipped, args.seconds, args.rounds)
    print()
    part_b(args.seconds)


if __name__ == "__main__":
    main()
