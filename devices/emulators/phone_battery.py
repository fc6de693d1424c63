"""A phone's fuel gauge, thermal zones and CPU time in the adb emulator's sysfs and procfs, so the
bridge's energy measurement (the gauge), its estimate (the CPU time) and its charging control can
be tested against a phone whose true energy is known.

Why: a real phone reports its power only through the fuel gauge — ``current_now`` × ``voltage_now``
under ``/sys/class/power_supply/battery/`` — which updates a few times a second, reads the
*battery's* current (the load minus whatever the charger pushes in), and says so in ``status``.
A measurement on a charging phone reads the wrong thing. This class reproduces exactly those
properties, with a ground truth (``true_energy_j``) a test can hold a measured energy against.

What it writes under ``root`` (the emulated phone's file system, ``AdbDevice.root``), after the
Linux power_supply class ABI (``Documentation/ABI/testing/sysfs-class-power``) and the thermal
class (``Documentation/ABI/testing/sysfs-class-thermal``):

- ``sys/class/power_supply/battery/``: ``type`` (Battery), ``status`` (Charging / Discharging /
  Not charging), ``capacity`` (%), ``health`` (Good), ``temp`` (deci-°C), ``current_now`` (µA),
  ``voltage_now`` (µV), ``charge_counter`` (µAh), all mode 0444 as sysfs read-only attributes
  are; and ``input_suspend``, the charging-control node Qualcomm kernels expose
  (``qcom,qpnp-smb`` / ``smb5-lib`` ``input_suspend``: "1" stops the charger drawing from USB,
  "0" lets it charge). The adb emulator gives the shell user a file's *other* permission bits, so
  the node is 0666 when ``can_suspend`` (the shell may write it, as on a rooted or permissive
  phone) and 0444 when the phone refuses (the common case on a locked phone).
- ``proc/stat``: the ``cpu`` line and one per core, in USER_HZ (100) ticks (``proc(5)``): one core
  busy while ``busy()`` is held, 2 % of the cores otherwise. With ``gauge=False`` the battery has
  no ``current_now``/``voltage_now`` (a driver that exposes no gauge), and the CPU time is what an
  estimate has.
- ``sys/class/thermal/thermal_zone0`` (``type`` cpu-0-0, ``temp`` in m°C: rising towards a hotter
  value while busy, cooling back when idle, first order) and ``thermal_zone1`` (``type`` battery).

The gauge: a thread updates the files every ``1/update_hz`` s and only then — between updates the
files hold the last value, as a real gauge's registers do. ``current_now`` is the mean load over
the last period (``idle_a``, or ``busy_a`` while any ``busy()`` context is held) minus
``charge_a`` while the charger is connected and ``input_suspend`` reads 0. Sign per the ABI when
``discharge_negative`` (negative = discharging); positive for discharge otherwise, as ACPI
batteries report. ``status`` follows the net flow (Charging when it flows in, Discharging when
out, Not charging when it is exactly zero with the charger on). ``voltage_now`` stays at
``voltage_v`` with a deterministic ripple of ±1 mV. Values are integers (µA, µV, µAh). Each file
is replaced whole (written beside it in ``root/.phone_battery_tmp/``, then renamed), so a reader
never sees half a value; ``input_suspend`` is never rewritten, only read, so a write by the shell
sticks.

``true_energy_j(t0, t1)`` is ∫ ``voltage_v`` × |load| dt over host ``time.time()`` seconds, from
the exact times ``busy()`` was entered and left — the energy the phone's load drew, whatever the
charger did, which is what an energy measurement of an inference claims to report.

Nothing here was captured from a real phone: the file names and units are the kernel ABI's, the
numbers are this model's.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PhoneBattery"]

SUPPLY = "sys/class/power_supply/battery"
THERMAL = "sys/class/thermal"
DESIGN_UAH = 4_000_000  # a 4000 mAh cell
RIPPLE_UV = 1000
PROC_STAT = "proc/stat"
USER_HZ = 100  # the kernel's clock ticks per second in /proc/stat (sysconf(_SC_CLK_TCK) on Android)


class PhoneBattery:
    """A fuel gauge and two thermal zones under ``root`` (the emulated phone's ``/``)."""

    def __init__(self, root: Path | str, update_hz: float = 10.0, voltage_v: float = 3.85, idle_a: float = 0.20,
                 busy_a: float = 0.90, charge_a: float = 1.0, charger: bool = True, can_suspend: bool = True,
                 discharge_negative: bool = True, gauge: bool = True, cores: int = 8) -> None:
        if update_hz <= 0:
            raise ValueError("update_hz must be positive")
        self.root = Path(root)
        self.supply = self.root / SUPPLY
        self.thermal = self.root / THERMAL
        self.update_hz = float(update_hz)
        self.voltage_v = float(voltage_v)
        self.idle_a, self.busy_a, self.charge_a = float(idle_a), float(busy_a), float(charge_a)
        self.charger = charger
        self.can_suspend = can_suspend
        self.discharge_negative = discharge_negative
        self.gauge = gauge  # False: a phone whose battery driver exposes no current_now/voltage_now
        self.cores = cores
        self._jiffies = [0.0, 0.0]  # /proc/stat's busy (user) and idle time over all cores, in USER_HZ ticks
        self._lock = threading.Lock()
        self._busy = 0
        self._timeline: list[tuple[float, float]] = []  # (time.time(), load in A) at start and every change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tmp = self.root / ".phone_battery_tmp"
        self._tick = 0
        self._charge_uah = 0.8 * DESIGN_UAH
        self._cpu_mc = 35_000.0
        self._last = 0.0
        self.updates = 0  # how many times the gauge has written its files

    # load
    @property
    def load_a(self) -> float:
        with self._lock:
            return self.busy_a if self._busy else self.idle_a

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """The phone is under load (counted: nested and concurrent holders keep it busy until the last leaves)."""
        with self._lock:
            self._busy += 1
            if self._busy == 1:
                self._timeline.append((time.time(), self.busy_a))
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                if self._busy == 0:
                    self._timeline.append((time.time(), self.idle_a))

    # ground truth
    def _mean_load(self, t0: float, t1: float) -> float:
        """Mean load current over [t0, t1] from the timeline (the caller holds the lock)."""
        if t1 <= t0:
            return self._timeline[-1][1] if self._timeline else self.idle_a
        return self._charge_as(t0, t1) / (t1 - t0)

    def _charge_as(self, t0: float, t1: float) -> float:
        """∫ |load| dt over [t0, t1] in A·s (the caller holds the lock)."""
        timeline = self._timeline or [(t0, self.idle_a)]
        total = 0.0
        for i, (start, amps) in enumerate(timeline):
            end = timeline[i + 1][0] if i + 1 < len(timeline) else math.inf
            if i == 0:
                start = min(start, t0)  # before the first entry the phone was at its first load
            lo, hi = max(start, t0), min(end, t1)
            if hi > lo:
                total += abs(amps) * (hi - lo)
        return total

    def true_energy_j(self, t0: float, t1: float) -> float:
        """The energy the phone's load drew between host ``time.time()`` instants t0 and t1, in joules:
        ∫ voltage × |load current| dt, charger or not."""
        with self._lock:
            return self.voltage_v * self._charge_as(t0, t1)

    # sysfs
    def _write(self, path: Path, value: str, mode: int = 0o444) -> None:
        """Replace a sysfs file at once, so a reader never sees half a value."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / path.name
        tmp.write_text(value + "\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)

    def suspended(self) -> bool:
        """Whether ``input_suspend`` reads 1 (charging stopped)."""
        try:
            return (self.supply / "input_suspend").read_text().strip() == "1"
        except OSError:
            return False

    def _setup(self) -> None:
        self.supply.mkdir(parents=True, exist_ok=True)
        (self.root / PROC_STAT).parent.mkdir(parents=True, exist_ok=True)
        self._write(self.supply / "type", "Battery")
        self._write(self.supply / "health", "Good")
        suspend = self.supply / "input_suspend"
        suspend.write_text("0\n")
        os.chmod(suspend, 0o666 if self.can_suspend else 0o444)
        for zone, kind in (("thermal_zone0", "cpu-0-0"), ("thermal_zone1", "battery")):
            (self.thermal / zone).mkdir(parents=True, exist_ok=True)
            self._write(self.thermal / zone / "type", kind)
        now = time.time()
        with self._lock:
            if not self._timeline:
                self._timeline.append((now, self.busy_a if self._busy else self.idle_a))
        self._last = now
        self._update(now)

    def _update(self, now: float) -> None:
        """One gauge update: the mean load since the last one, the charger, the temperatures."""
        period = max(now - self._last, 1e-6)
        with self._lock:
            load = self._mean_load(self._last, now)
            busy = self._busy > 0
        charging = self.charger and not self.suspended()
        net_out = load - (self.charge_a if charging else 0.0)  # A leaving the battery
        self._charge_uah = min(DESIGN_UAH, max(0.0, self._charge_uah - net_out * 1e6 * period / 3600))
        if net_out > 0:
            status = "Discharging"
        elif net_out < 0:
            status = "Charging"
        else:
            status = "Not charging" if self.charger else "Discharging"
        sign = -1 if self.discharge_negative else 1
        current_ua = round(sign * net_out * 1e6)
        self._tick += 1
        voltage_uv = round(self.voltage_v * 1e6) + (RIPPLE_UV if self._tick % 2 else -RIPPLE_UV)
        target = 55_000.0 if busy else 35_000.0
        self._cpu_mc = target + (self._cpu_mc - target) * math.exp(-period / 5.0)
        battery_dc = round(300 + (self._cpu_mc - 35_000.0) / 200)
        if self.gauge:
            self._write(self.supply / "current_now", str(current_ua))
            self._write(self.supply / "voltage_now", str(voltage_uv))
        busy_cores = 1.0 if busy else 0.02 * self.cores  # a benchmark keeps one core busy; an idle phone ticks over
        self._jiffies[0] += USER_HZ * period * busy_cores
        self._jiffies[1] += USER_HZ * period * (self.cores - busy_cores)
        user, idle = round(self._jiffies[0]), round(self._jiffies[1])
        self._write(self.root / PROC_STAT, f"cpu  {user} 0 0 {idle} 0 0 0 0 0 0\n" + "".join(
            f"cpu{n} {user // self.cores} 0 0 {idle // self.cores} 0 0 0 0 0 0\n" for n in range(self.cores)).rstrip("\n"))
        self._write(self.supply / "charge_counter", str(round(self._charge_uah)))
        self._write(self.supply / "capacity", str(round(100 * self._charge_uah / DESIGN_UAH)))
        self._write(self.supply / "status", status)
        self._write(self.supply / "temp", str(battery_dc))
        self._write(self.thermal / "thermal_zone0" / "temp", str(round(self._cpu_mc)))
        self._write(self.thermal / "thermal_zone1" / "temp", str(battery_dc * 100))
        self._last = now
        self.updates += 1

    def _run(self) -> None:
        interval = 1.0 / self.update_hz
        next_at = time.monotonic() + interval
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            self._update(time.time())
            next_at += interval
            if next_at < time.monotonic():  # fell behind (a stalled host): skip, never burst
                next_at = time.monotonic() + interval

    # lifecycle
    def start(self) -> PhoneBattery:
        self._stop.clear()
        self._setup()
        self._thread = threading.Thread(target=self._run, name="phone-battery-gauge", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> PhoneBattery:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
