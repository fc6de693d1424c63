"""The power-monitor board without the board: the real firmware core on an emulated INA219, its
USB serial port a pseudo-terminal, for the tests and the benchmarks that need a serial monitor.

Why the real firmware and not a fake stream: the host driver (``devices.power.serial_monitor``)
is only as right as its agreement with what the board sends — frame timing, sequence numbers,
the 32-bit device clock and its wrap, PONG stamping, the ADC choice for the rate. So the board is
``firmware/power-monitor/monitor.py`` and ``ina219_mp.py`` themselves, loaded from their files
(``load_firmware``), sampling the register-level ``INA219Chip`` under a load the caller gives.

The pieces:

- ``DeviceClock``: the board's crystal, host monotonic time shifted and running fast or slow;
  both the emulated chip (``ns``) and the firmware (``ticks_us``, wrapping at 2^30 like
  MicroPython's) read it, so the host has a real offset and drift to fit.
- ``PtyPort``: the pty master as the firmware's port, able to damage or lose SAMPLE frames and
  recording what it did, so a test knows exactly what the link should report.
- ``EmulatedBoard``: all of it in a thread of the calling process; ``path`` is the pty's slave,
  which the host driver opens with real pyserial. Fine for correctness tests, but the firmware
  then competes with the host for the GIL, which a real board (its own MCU) never does.
- ``BoardProcess``: an ``EmulatedBoard`` in a separate Python process (this module run with
  ``-m``), as the firmware runs on a microcontroller of its own: what is left in the caller's
  process is the driver's reader thread, as on real hardware. The tests use it so that a busy
  test process cannot starve the firmware of the GIL (a thread got 10 % of its ticks beside one
  busy thread), and the benchmarks to measure the *host's* cost of a serial monitor. The
  process cannot take a Python callable, so its load is a ramp (``ramp_load``: a constant when
  the slope is 0); a brown-out is asked for on its stdin, and what its port did comes back
  when it is closed.

This needs the source tree (the firmware directory sits next to ``devices/``); it is not part of
an installed wheel.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import selectors
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from devices.emulators.ina219 import INA219Chip, Load
from devices.power import frames, ina219_regs

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = ROOT / "firmware" / "power-monitor"
TICKS_PERIOD = 1 << 30  # MicroPython's ticks_us wraps here on the RP2040 and ESP32 ports
SHUNT_OHMS = 0.1  # the common Adafruit/CJMCU breakout, as firmware/power-monitor/main.py assumes
MAX_CURRENT_A = 3.2

__all__ = ["BoardProcess", "DeviceClock", "EmulatedBoard", "PtyPort", "load_firmware", "ramp_load"]


def load_firmware() -> SimpleNamespace:
    """The firmware modules ``ina219_mp`` and ``monitor``, loaded from their files the way the board
    imports them: with ``frames`` and ``ina219_regs`` as top-level modules (the host's own copies,
    which are the files copied to the board).

    Those top-level names exist in ``sys.modules`` only while the files execute; every entry is
    restored afterwards, so nothing named ``frames``/``monitor`` leaks into the caller's imports.
    That is safe because both files import at module level only: the loaded modules keep their
    references. Each call returns fresh module objects."""
    names = ("frames", "ina219_regs", "ina219_mp", "monitor")
    missing = [name for name in ("ina219_mp", "monitor") if not (FIRMWARE_DIR / f"{name}.py").is_file()]
    if missing:
        raise FileNotFoundError(f"firmware sources not found under {FIRMWARE_DIR} (needs a source checkout of edgeperf)")
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules["frames"], sys.modules["ina219_regs"] = frames, ina219_regs
    loaded = {}
    try:
        for name in ("ina219_mp", "monitor"):
            spec = importlib.util.spec_from_file_location(name, FIRMWARE_DIR / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            loaded[name] = module
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return SimpleNamespace(**loaded)


class DeviceClock:
    """A board's crystal: host monotonic time shifted by ``offset_ns``, running ``drift_ppm`` fast.
    ``host0_ns`` (default: now) is the host time at which the device clock read ``offset_ns``; give
    it to rebuild, in another process, the clock a ``BoardProcess`` runs on."""

    def __init__(self, offset_ns: int, drift_ppm: float, host0_ns: int | None = None) -> None:
        self.host0 = time.monotonic_ns() if host0_ns is None else host0_ns
        self.offset_ns = offset_ns
        self.rate = 1 + drift_ppm / 1e6

    def ns(self) -> int:
        return self.offset_ns + round((time.monotonic_ns() - self.host0) * self.rate)

    def host_ns(self, device_ns: float) -> float:
        return self.host0 + (device_ns - self.offset_ns) / self.rate

    def ticks_us(self) -> int:
        return (self.ns() // 1000) % TICKS_PERIOD

    @staticmethod
    def ticks_diff(a: int, b: int) -> int:
        return (a - b + TICKS_PERIOD // 2) % TICKS_PERIOD - TICKS_PERIOD // 2

    @staticmethod
    def sleep_us(us: int) -> None:
        time.sleep(us / 1e6)


class PtyPort:
    """The board's USB serial, played by a pty master. On the way out it can damage (flip one
    payload byte) or lose SAMPLE frames by sequence number, and records what it did."""

    def __init__(self, fd: int, corrupt_every: int = 0, drop_every: int = 0) -> None:
        self.fd = fd
        self.corrupt_every = corrupt_every
        self.drop_every = drop_every
        self.clean: list[int] = []  # sequence numbers sent intact
        self.corrupted: list[int] = []
        self.dropped: list[int] = []
        self.device_times: list[int] = []  # the 32-bit device µs of every SAMPLE sent
        os.set_blocking(fd, False)

    def read(self, n: int) -> bytes:
        try:
            return os.read(self.fd, n)
        except OSError:  # nothing waiting (EAGAIN), or the other side is gone (EIO)
            return b""

    def write(self, data: bytes) -> None:
        if data[2] == frames.SAMPLE:
            seq, t_us, *_, flags = frames.unpack_sample(data[4:-2])
            self.device_times.append(t_us)
            if flags == 0 and self.drop_every and seq % self.drop_every == self.drop_every - 1:
                self.dropped.append(seq)
                return
            if flags == 0 and self.corrupt_every and seq % self.corrupt_every == self.corrupt_every - 1:
                data = data[:9] + bytes([data[9] ^ 0xFF]) + data[10:]
                self.corrupted.append(seq)
            else:
                self.clean.append(seq)
        view, deadline = memoryview(data), time.monotonic() + 0.1
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.0005)


def ramp_load(clock: DeviceClock, amps: float, volts: float, slope_a_per_s: float = 0.0, top_amps: float = MAX_CURRENT_A,
              shunt_ohms: float = SHUNT_OHMS) -> Load:
    """``amps`` at ``volts`` when the device clock reads ``clock.offset_ns``, rising ``slope_a_per_s``
    on the device clock up to ``top_amps``: the (shunt voltage, bus voltage) the chip samples. A
    slope of 0 is a steady load; a slope makes every sample's current say when it was converted."""
    t0_ns = clock.offset_ns

    def load(device_ns: int) -> tuple[float, float]:
        return min(amps + slope_a_per_s * (device_ns - t0_ns) / 1e9, top_amps) * shunt_ohms, volts

    return load


class EmulatedBoard:
    """The firmware core in a thread, its INA219 emulated under ``load`` (``device_ns -> (shunt V,
    bus V)`` on ``clock``), its serial port a pty whose slave is ``path``. ``address`` is where the
    chip answers (the firmware asks 0x40), ``clock_us`` the firmware clock's start value (-1: the
    ticks), ``faults`` go to ``PtyPort`` (``corrupt_every``, ``drop_every``)."""

    def __init__(self, fw: SimpleNamespace, clock: DeviceClock, load: Load, address: int = 0x40, clock_us: int = -1,
                 *, shunt_ohms: float = SHUNT_OHMS, max_current_a: float = MAX_CURRENT_A, name: str = "pty",
                 **faults: int) -> None:
        self.clock = clock
        self.load = load
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.chip = INA219Chip(address, shunt_ohms=shunt_ohms, clock_ns=clock.ns, load=load)
        self.sensor = fw.ina219_mp.INA219(self.chip, clock.ticks_us, clock.ticks_diff, clock.sleep_us,
                                          shunt_ohms=shunt_ohms, max_current_a=max_current_a)
        self.port = PtyPort(self.master, **faults)
        self.core = fw.monitor.Monitor(self.sensor, self.port, clock.ticks_us, clock.ticks_diff, clock.sleep_us,
                                       board=name, clock_us=clock_us)
        self._unplugged = False
        self.thread = threading.Thread(target=self.core.run, name="firmware", daemon=True)
        self.thread.start()

    def unplug(self) -> None:
        """Stop the firmware and close both ends of the pty: to the host, the USB cable was pulled.
        Idempotent, so that cleanup code can call it whatever a test already did."""
        if self._unplugged:
            return
        self._unplugged = True
        self.core.running = False
        self.thread.join(5)
        os.close(self.master)
        os.close(self.slave)

    def __enter__(self) -> EmulatedBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unplug()


class BoardProcess:
    """An ``EmulatedBoard`` under a ``ramp_load``, running in its own Python process, as the real
    firmware runs on its own microcontroller. ``path`` is the pty to open; ``clock`` rebuilds the
    board's ``DeviceClock`` here (for checking a fitted offset and drift, or a sample's time on the
    ramp, against the truth). ``address``, ``clock_us`` and ``faults`` are ``EmulatedBoard``'s.

    ``brown_out`` resets the chip's registers to their power-on values, as a supply dip would.
    The process ends when this object is closed (its stdin reaches EOF, also when the parent
    dies) and then reports what it did: ``final`` holds the firmware's ``samples_sent`` and
    ``write_errors``, the port's records (``clean``, ``corrupted``, ``dropped`` sequence numbers
    and ``device_times``), the chip's ``resets`` and the driver's ``recalibrations``, and the
    process's CPU seconds (``cpu_s``) over ``wall_s``."""

    def __init__(self, amps: float = 1.0, volts: float = 5.0, offset_ns: int = 0, drift_ppm: float = 0.0, *,
                 slope_a_per_s: float = 0.0, top_amps: float = MAX_CURRENT_A, address: int = 0x40, clock_us: int = -1,
                 timeout_s: float = 10.0, **faults: int) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
        options = {"amps": amps, "volts": volts, "offset_ns": offset_ns, "drift_ppm": drift_ppm,
                   "slope_a_per_s": slope_a_per_s, "top_amps": top_amps, "address": address, "clock_us": clock_us,
                   "corrupt_every": faults.pop("corrupt_every", 0), "drop_every": faults.pop("drop_every", 0)}
        if faults:
            raise TypeError(f"unknown board faults: {', '.join(faults)}")
        command = [sys.executable, "-m", "devices.emulators.power_board", json.dumps(options)]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.final: dict[str, Any] | None = None
        try:
            ready = self._ready_line(timeout_s)
        except BaseException:
            self.close()
            raise
        self.path: str = ready["path"]
        self.pid: int = self.proc.pid
        self.clock = DeviceClock(ready["offset_ns"], ready["drift_ppm"], host0_ns=ready["host0_ns"])
        self.load = ramp_load(self.clock, amps, volts, slope_a_per_s, top_amps)

    def _ready_line(self, timeout_s: float) -> dict[str, Any]:
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout_s):
                raise TimeoutError(f"the emulated board process did not come up within {timeout_s:g} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulated board process exited (status {self.proc.wait()}) before it was ready")
        return json.loads(line)

    def brown_out(self) -> None:
        """Reset the chip's CONFIG and CALIBRATION to their power-on values, mid-stream."""
        self.proc.stdin.write("brown-out\n")
        self.proc.stdin.flush()

    def close(self, timeout_s: float = 5.0) -> dict[str, Any] | None:
        """Unplug the board and end its process (killed if it does not end within ``timeout_s``).
        Idempotent, so that cleanup code can call it whatever a test already did."""
        if self.proc.returncode is not None:
            return self.final
        try:
            out, _ = self.proc.communicate(input="", timeout=timeout_s)  # EOF on stdin: unplug and report
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        lines = [line for line in (out or "").splitlines() if line.startswith("{")]
        self.final = json.loads(lines[-1]) if lines else None
        return self.final

    def __enter__(self) -> BoardProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> None:
    """``BoardProcess``'s child: build the board from the JSON options in ``argv``, print one JSON
    line (pty path, clock), brown out on each ``brown-out`` line of stdin, run until stdin closes,
    then unplug and print what the board did and this process's CPU time."""
    options = json.loads((sys.argv[1:] if argv is None else argv)[0])
    clock = DeviceClock(options["offset_ns"], options["drift_ppm"])
    load = ramp_load(clock, options["amps"], options["volts"], options["slope_a_per_s"], options["top_amps"])
    board = EmulatedBoard(load_firmware(), clock, load, options["address"], options["clock_us"], name="emulated-process",
                          corrupt_every=options["corrupt_every"], drop_every=options["drop_every"])
    wall0, cpu0 = time.monotonic(), time.process_time()
    print(json.dumps({"path": board.path, "host0_ns": clock.host0, "offset_ns": clock.offset_ns,
                      "drift_ppm": options["drift_ppm"]}), flush=True)
    try:
        for line in sys.stdin:  # until the parent closes it, or dies
            if line.strip() == "brown-out":
                board.chip.reset()
    finally:
        board.unplug()
        port = board.port
        with contextlib.suppress(OSError):  # a parent that died has no stdout left to read the report
            print(json.dumps({"samples_sent": board.core.samples_sent, "write_errors": board.core.write_errors,
                              "clean": port.clean, "corrupted": port.corrupted, "dropped": port.dropped,
                              "device_times": port.device_times, "resets": board.chip.resets,
                              "recalibrations": board.sensor.recalibrations,
                              "cpu_s": time.process_time() - cpu0, "wall_s": time.monotonic() - wall0}), flush=True)


if __name__ == "__main__":
    main()
