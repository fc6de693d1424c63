"""TI INA219 on I2C (smbus2): the driver users script against, and the ``ina219`` power source.

What is measured: the INA219 sits on the *high side* of one supply rail, with the shunt in series
with the load; its POWER register is the bus voltage (at IN-, the load side of the shunt) times the
current through the shunt. So the number covers exactly the supply that runs through the shunt —
a board's 5 V input if the shunt is in the barrel/USB lead, one rail if it is on that rail — and
the source's ``rail`` option names it (default "shunt rail", which says only that).

Design:

- Register facts and arithmetic are the pure functions of ``ina219_regs`` (shared with the
  MicroPython firmware); this module adds I/O, waiting and error mapping.
- All bus access goes through ``_read_register``/``_write_register``, the one I/O seam. They swap
  bytes because an SMBus word is little-endian while the INA219 sends its most significant byte
  first; every access is logged at DEBUG.
- Reading faster than the conversion time returns repeats (pi_ina219#38, RobTillaart/INA219#11),
  so ``read`` waits for the conversion-ready bit; the monitor is therefore paced by the chip.
- An overflowed reading (OVF, or a shunt reading at the PGA's full scale, where the ADC clips) is
  flagged and returned as read — never clipped to a plausible number.
- A load step can brown the chip out; it then comes back with CALIBRATION 0 and reads 0 A. Every
  read checks CALIBRATION; after a reset the driver re-writes CONFIG and CALIBRATION, logs it and
  flags that reading "recalibrated", so the next reading is right.
- ``smbus2`` is imported only inside ``open``; the driver takes any object with smbus2's
  ``read_word_data``/``write_word_data`` (a real ``SMBus`` or the emulator's ``EmulatedSMBus``).
"""

from __future__ import annotations

import errno
import glob
import importlib.util
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from devices.power import ina219_regs as regs
from devices.power.base import PollingMonitor, PowerSample, PowerSourceError, SourceInfo

log = logging.getLogger(__name__)

DEFAULT_RAIL = "shunt rail"
OPTIONS = ("bus", "addr", "shunt", "max_current", "adc", "samples", "rail")
READY_TIMEOUT_PERIODS = 3  # wait this many conversion periods for CNVR ...
READY_TIMEOUT_SLACK_S = 0.005  # ... plus this, for bus transactions and scheduler latency
NACK_ERRNOS = (getattr(errno, "EREMOTEIO", 121), errno.ENXIO)  # i2c-dev's "nobody acknowledged"


class WordBus(Protocol):
    """What the driver needs of a bus: smbus2's word calls."""

    def read_word_data(self, i2c_addr: int, register: int) -> int: ...

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None: ...


class INA219Error(PowerSourceError):
    """The chip misbehaves: no conversion ready in time, or configuration that does not stick."""


@dataclass(frozen=True)
class INA219Reading:
    """One conversion, scaled to SI units. ``power_w`` is the chip's POWER register, signed like the
    current (the register holds the magnitude), so that reverse flow shows as negative power."""

    bus_voltage_v: float
    shunt_voltage_v: float
    current_a: float
    power_w: float
    overflow: bool  # OVF set or shunt at full scale: the current and power are not to be trusted
    t_ns: int  # time.monotonic_ns() when the conversion was seen ready
    recalibrated: bool = False  # the chip had reset; this reading predates the re-written calibration


class INA219:
    """An INA219 in continuous shunt+bus mode, calibrated for ``shunt_ohms`` and ``max_current_a``.

    ``adc_bits`` (9..12) and ``samples`` (1..128, averaging needs 12 bits) apply to both ADCs; the
    PGA is the smallest range that holds ``max_current_a × shunt_ohms``. ``clock_ns`` and ``sleep``
    are the waits' time base (a test can pass a fake clock together with a sleep that advances it).
    """

    def __init__(self, bus: WordBus, address: int = 0x40, shunt_ohms: float = 0.1, max_current_a: float = 3.2,
                 bus_voltage_range_v: int = 32, adc_bits: int = 12, samples: int = 1, *,
                 clock_ns: Callable[[], int] = time.monotonic_ns, sleep: Callable[[float], None] = time.sleep) -> None:
        if not regs.ADDRESS_MIN <= address <= regs.ADDRESS_MAX:
            raise ValueError(f"INA219 address must be 0x40..0x4F, not 0x{address:02x}")
        self.bus = bus
        self.address = address
        self.shunt_ohms = shunt_ohms
        self.max_current_a = max_current_a
        self.adc_bits = adc_bits
        self.samples = samples
        self.pga_mv = regs.pga_for(shunt_ohms, max_current_a)
        self.cal, self.current_lsb_a = regs.calibration(shunt_ohms, max_current_a)
        adc = regs.adc_code(adc_bits, samples)
        self.config = regs.config_word(bus_voltage_range_v, self.pga_mv, adc, adc, regs.MODE_SHUNT_BUS_CONTINUOUS)
        self._period_s = regs.conversion_period_us(adc, adc, regs.MODE_SHUNT_BUS_CONTINUOUS) / 1e6
        self._poll_s = max(self._period_s / 8, 50e-6)
        self._clock_ns = clock_ns
        self._sleep = sleep
        self._lock = threading.Lock()
        self.recalibrations = 0
        self.configure()

    @property
    def conversion_time_s(self) -> float:
        """Time between fresh results: shunt plus bus conversion at the configured ADC setting."""
        return self._period_s

    # --- the one I/O seam ------------------------------------------------------------------
    def _read_register(self, reg: int) -> int:
        value = regs.swap16(self.bus.read_word_data(self.address, reg))
        log.debug("ina219 0x%02x read  reg 0x%02x = 0x%04x", self.address, reg, value)
        return value

    def _write_register(self, reg: int, value: int) -> None:
        log.debug("ina219 0x%02x write reg 0x%02x = 0x%04x", self.address, reg, value)
        self.bus.write_word_data(self.address, reg, regs.swap16(value))

    # --- configuration and reading ----------------------------------------------------------
    def configure(self) -> None:
        """Write CONFIG, then CALIBRATION, and check that both read back: a device at the address
        that is not an INA219 (or is not powered) fails here rather than yielding nonsense."""
        self._write_register(regs.REG_CONFIG, self.config)
        self._write_register(regs.REG_CALIBRATION, self.cal)
        config, cal = self._read_register(regs.REG_CONFIG), self._read_register(regs.REG_CALIBRATION)
        if (config, cal) != (self.config, self.cal):
            raise INA219Error(f"the device at 0x{self.address:02x} does not keep its settings (CONFIG 0x{config:04x}, "
                              f"CALIBRATION 0x{cal:04x}; wrote 0x{self.config:04x}, 0x{self.cal:04x}); is it an INA219?")

    def read(self) -> INA219Reading:
        """Wait for a fresh conversion (CNVR), then read it; raises ``INA219Error`` if none comes."""
        with self._lock:
            bus_raw = self._wait_ready()
            t_ns = self._clock_ns()
            shunt_raw = self._read_register(regs.REG_SHUNT_VOLTAGE)
            current_raw = self._read_register(regs.REG_CURRENT)
            power_raw = self._read_register(regs.REG_POWER)  # clears CNVR: the next read waits for a new result
            recalibrated = self._read_register(regs.REG_CALIBRATION) != self.cal  # last: catches a reset mid-read
            if recalibrated:
                self.recalibrations += 1
                log.warning("INA219 at 0x%02x lost its calibration (reset or brown-out); re-writing CONFIG and "
                            "CALIBRATION and flagging this reading", self.address)
                self.configure()
        current = regs.current_a(current_raw, self.current_lsb_a)
        power = regs.power_w(power_raw, self.current_lsb_a)
        return INA219Reading(
            bus_voltage_v=regs.bus_voltage_v(bus_raw),
            shunt_voltage_v=regs.shunt_voltage_v(shunt_raw),
            current_a=current,
            power_w=-power if current < 0 else power,
            overflow=regs.overflow(bus_raw) or regs.shunt_saturated(shunt_raw, self.pga_mv),
            t_ns=t_ns,
            recalibrated=recalibrated,
        )

    def _wait_ready(self) -> int:
        """Poll the bus register until CNVR is set; return that register (it is this result's bus
        voltage). Bounded by a few conversion periods: a chip that stops converting is an error."""
        timeout_s = READY_TIMEOUT_PERIODS * self._period_s + READY_TIMEOUT_SLACK_S
        deadline = self._clock_ns() + int(timeout_s * 1e9)
        while True:
            bus_raw = self._read_register(regs.REG_BUS_VOLTAGE)
            if regs.conversion_ready(bus_raw):
                return bus_raw
            if self._clock_ns() > deadline:
                raise INA219Error(f"INA219 at 0x{self.address:02x} reported no conversion ready within "
                                  f"{timeout_s * 1e3:.1f} ms; check its supply and that nothing else reconfigures it")
            self._sleep(self._poll_s)


class INA219Monitor(PollingMonitor):
    """The ``ina219`` power source: one sample per conversion, paced by the chip's CNVR bit.

    ``watts`` is the chip's high-side power (bus voltage × current) of the rail the shunt sits on;
    ``rail`` says which rail that is. Flagged readings ("overflow", "recalibrated") are kept, so
    the energy integration can report them instead of silently using them.
    """

    paced_by_read = True

    def __init__(self, device: INA219, rail: str = DEFAULT_RAIL, detail: dict[str, Any] | None = None,
                 close_bus: Callable[[], None] | None = None) -> None:
        info = SourceInfo(
            source="ina219", rail=rail, measured=True, nominal_hz=1.0 / device.conversion_time_s,
            detail={"addr": f"0x{device.address:02x}", "shunt_ohms": device.shunt_ohms,
                    "max_current_a": device.max_current_a, "cal": device.cal, "current_lsb_a": device.current_lsb_a,
                    "pga_mv": device.pga_mv, "adc": device.adc_bits, "samples": device.samples, **(detail or {})},
        )
        super().__init__(info)
        self.device = device
        self._close_bus = close_bus

    def read(self) -> PowerSample:
        reading = self.device.read()
        flags = ("overflow",) * reading.overflow + ("recalibrated",) * reading.recalibrated
        return PowerSample(t_ns=reading.t_ns, watts=reading.power_w, volts=reading.bus_voltage_v,
                           amps=reading.current_a, flags=flags)

    def close(self) -> None:
        """Close the bus if ``open`` opened it; a bus passed in belongs to the caller."""
        if self._close_bus is not None:
            self._close_bus()
            self._close_bus = None


# --- registry functions ------------------------------------------------------------------------
def available() -> tuple[bool, str]:
    """Whether an I2C bus exists and smbus2 is installed (no bus is opened)."""
    buses = sorted(glob.glob("/dev/i2c-*"))
    if not buses:
        return False, "no I2C bus (/dev/i2c-*): enable I2C with raspi-config (Interface Options > I2C) or load i2c-dev"
    if importlib.util.find_spec("smbus2") is None:
        return False, "smbus2 not installed: pip install 'edgeperf[rpi]'"
    return True, "I2C buses: " + ", ".join(buses) + " (give the wiring: ina219:bus=1,addr=0x40,shunt=0.1)"


def _bad(key: str, value: str, want: str) -> PowerSourceError:
    return PowerSourceError(f"bad ina219 option {key}={value!r}: {want}")


def parse_options(options: dict[str, str]) -> dict[str, Any]:
    """Validate ``ina219:`` options into typed settings; each error names the option and what it takes."""
    if "value" in options:  # parse_spec's name for a bare word: ina219:0x41
        raise PowerSourceError(f"bad ina219 option {options['value']!r}: write KEY=VALUE, e.g. ina219:bus=1,addr=0x41")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise PowerSourceError(f"unknown ina219 option {unknown[0]!r}; use {', '.join(OPTIONS)} (e.g. ina219:bus=1,addr=0x40)")

    def number(key: str, default: str, kind: Callable[[str], Any], want: str) -> Any:
        raw = options.get(key, default)
        try:
            return kind(raw)
        except ValueError:
            raise _bad(key, raw, want) from None

    settings = {
        "bus": number("bus", "1", int, "an I2C bus number such as 1 (ls /dev/i2c-*)"),
        "addr": number("addr", "0x40", lambda s: int(s, 0), "an address 0x40..0x4F, written in hex"),
        "shunt": number("shunt", "0.1", float, "the shunt resistance in ohms, e.g. 0.1"),
        "max_current": number("max_current", "3.2", float, "the largest current to measure in amps, e.g. 3.2"),
        "adc": number("adc", "12", int, "9, 10, 11 or 12 (bits)"),
        "samples": number("samples", "1", int, "1, 2, 4, 8, 16, 32, 64 or 128"),
        "rail": options.get("rail", DEFAULT_RAIL).strip() or DEFAULT_RAIL,
    }
    if settings["bus"] < 0:
        raise _bad("bus", options["bus"], "an I2C bus number such as 1 (ls /dev/i2c-*)")
    if not regs.ADDRESS_MIN <= settings["addr"] <= regs.ADDRESS_MAX:
        raise _bad("addr", options["addr"], "an INA219 answers at 0x40..0x4F (A0/A1 strapping), written in hex")
    for key in ("shunt", "max_current"):
        if not settings[key] > 0:
            raise _bad(key, options[key], "a positive number")
    if settings["adc"] not in (9, 10, 11, 12):
        raise _bad("adc", options["adc"], "9, 10, 11 or 12 (bits)")
    try:
        regs.adc_code(settings["adc"], settings["samples"])
    except ValueError as exc:
        raise _bad("samples", options.get("samples", "1"), str(exc)) from None
    try:
        regs.pga_for(settings["shunt"], settings["max_current"])
    except ValueError as exc:
        raise PowerSourceError(str(exc)) from None
    return settings


def bus_error(exc: OSError, bus: int, addr: int | None = None) -> PowerSourceError:
    """One line naming the fix for an OS error opening bus ``bus`` or talking to ``addr`` on it."""
    if isinstance(exc, FileNotFoundError):
        return PowerSourceError(f"no I2C bus {bus} (/dev/i2c-{bus} does not exist): enable I2C with raspi-config "
                                "or pick a bus that ls /dev/i2c-* lists")
    if isinstance(exc, PermissionError):
        return PowerSourceError(f"permission denied on /dev/i2c-{bus}: add the user to group i2c "
                                "(sudo usermod -aG i2c $USER) and log in again")
    where = f"0x{addr:02x} on I2C bus {bus}" if addr is not None else f"I2C bus {bus}"
    if exc.errno in NACK_ERRNOS:
        return PowerSourceError(f"no INA219 answers at {where}; check wiring and the address (i2cdetect -y {bus})")
    return PowerSourceError(f"I2C error at {where}: {exc.strerror or exc}; check wiring and power (i2cdetect -y {bus})")


def open(options: dict[str, str], bus: WordBus | None = None) -> INA219Monitor:
    """Open an INA219 source. ``bus`` replaces the ``smbus2.SMBus`` this would open (tests pass an
    emulated bus; such a bus stays the caller's to close)."""
    settings = parse_options(options)
    number, addr = settings["bus"], settings["addr"]
    close_bus = None
    if bus is None:
        try:
            import smbus2
        except ImportError:
            raise PowerSourceError("smbus2 not installed: pip install 'edgeperf[rpi]'") from None
        try:
            bus = smbus2.SMBus(number)
        except OSError as exc:
            raise bus_error(exc, number) from exc
        close_bus = bus.close
    try:
        device = INA219(bus, address=addr, shunt_ohms=settings["shunt"], max_current_a=settings["max_current"],
                        adc_bits=settings["adc"], samples=settings["samples"])
    except OSError as exc:
        if close_bus:
            close_bus()
        raise bus_error(exc, number, addr) from exc
    except PowerSourceError as exc:
        if close_bus:
            close_bus()
        raise PowerSourceError(f"I2C bus {number}: {exc}") from exc
    return INA219Monitor(device, rail=settings["rail"], detail={"bus": number}, close_bus=close_bus)
