"""A register-level emulator of the TI INA219, driven by a physical load the test controls.

Why an emulator and not canned register values: the current and power registers are computed by
the chip from the calibration the *driver* wrote, so a wrong calibration formula, a wrong LSB or a
missing byte swap only shows when something does the chip's arithmetic on a simulated load. This
module does it as the datasheet (TI SBOS448G) describes, in integer arithmetic, and deliberately
imports nothing from ``devices.power.ina219_regs``: the driver and its test double must not share
the formulas under test.

The model:

- **Conversions.** In the continuous modes a result lands every t_shunt + t_bus (shunt-only or
  bus-only modes: one of them), counted from the last CONFIG write or reset; the conversion times
  come from the BADC/SADC codes (84/148/276/532 µs, 1.06..68.10 ms when averaging). At each
  completion the load is sampled *at that completion time*, so the registers hold the value of the
  last completed conversion and reading faster than the conversion time returns the same values.
  Conversions that completed unobserved are skipped: only the latest one can be seen. Triggered
  modes convert once after the CONFIG write; power-down and ADC-off convert nothing.
- **Registers.** Shunt: the shunt voltage rounded to 10 µV, two's complement, saturating at the
  PGA's full scale (±4000/8000/16000/32000 counts). Bus: the bus voltage rounded to 4 mV in bits
  15–3, saturating at the BRNG range (4000 or 8000 counts), with CNVR (bit 1) and OVF (bit 0).
  CURRENT = trunc(SHUNT × CAL / 4096) and POWER = trunc(|CURRENT| × BUS / 5000), computed at each
  conversion with the CAL held then; OVF is set when CURRENT leaves the signed 16-bit range or
  POWER the unsigned one, and the register then keeps the low 16 bits (meaningless, as the
  datasheet says). CURRENT and POWER read 0 while CAL is 0. CAL's bit 0 is not stored.
- **Flags.** CNVR is set when a conversion completes and cleared by reading POWER or by writing
  CONFIG with a converting mode (not power-down / ADC-off).
- **Resets.** Writing CONFIG with bit 15 (RST) set, or ``reset()`` (a brown-out), restores the
  power-on state: CONFIG 0x399F, every other register 0, conversions restarting.
- **I2C.** Every access is one ``transfer``: bytes written (pointer, then data most significant
  byte first), then bytes read after a repeated start (MSB first). The pointer does not
  auto-increment: a longer read repeats the register's two bytes; written data is committed per
  complete byte pair. A wrong address, or a pointer beyond 0x05, is not acknowledged and raises
  ``OSError(EREMOTEIO)``, as Linux's i2c-dev reports a NACK. The SMBus and MicroPython calls are
  thin wrappers over ``transfer``, so they have exactly the byte order real buses have: an SMBus
  word is little-endian, i.e. its first wire byte — the chip's MSB — is the word's low byte.

Assumptions beyond the datasheet, each chosen to be the plausible silicon behaviour: ADC rounding
is to nearest (half up); the division truncates towards zero for negative currents; POWER is the
unsigned magnitude on reverse current (the register has no sign bit); the load is sampled once per
conversion rather than averaged over it.
"""

from __future__ import annotations

import errno
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

Load = Callable[[int], tuple[float, float]]  # t_ns -> (shunt_voltage_v, bus_voltage_v)

EREMOTEIO = getattr(errno, "EREMOTEIO", 121)  # Linux's NACK errno; macOS has no name for it
EBADF = errno.EBADF

_POR_CONFIG = 0x399F
_REGISTERS = 6
# datasheet conversion times, µs: index = ADC code bits 1-0 (no averaging) or bits 2-0 (averaging)
_CONV_US_SINGLE = (84, 148, 276, 532)
_CONV_US_AVERAGED = (532, 1060, 2130, 4260, 8510, 17020, 34050, 68100)
_PGA_FULL_SCALE = (4000, 8000, 16000, 32000)  # shunt counts (10 µV) at ±40/80/160/320 mV
_BUS_FULL_SCALE = (4000, 8000)  # bus counts (4 mV) at 16 / 32 V


def _nack() -> OSError:
    return OSError(EREMOTEIO, "Remote I/O error")


def _round(x: float) -> int:
    return math.floor(x + 0.5)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // b
    return q if a >= 0 else -q


def _conversion_ns(code: int) -> int:
    us = _CONV_US_AVERAGED[code & 0b111] if code & 0b1000 else _CONV_US_SINGLE[code & 0b11]
    return us * 1000


class I2CTransfer(NamedTuple):
    """One I2C transaction as it went over the wire."""

    addr: int
    reg: int  # the pointer byte
    wrote: bytes  # data bytes after the pointer, in wire order
    read: bytes  # bytes read after the repeated start, in wire order

    @property
    def op(self) -> str:
        return "write" if self.wrote else "read" if self.read else "pointer"


class _Transport:
    """The bus calls a driver makes — smbus2's and MicroPython ``machine.I2C``'s — built on one
    byte-level ``transfer``."""

    def transfer(self, addr: int, write: bytes, nread: int = 0) -> bytes:
        raise NotImplementedError

    # smbus2.SMBus
    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """SMBus read word: the first byte on the wire becomes the word's *low* byte."""
        data = self.transfer(i2c_addr, bytes([register]), 2)
        return data[0] | data[1] << 8

    def write_word_data(self, i2c_addr: int, register: int, value: int, force: bool | None = None) -> None:
        """SMBus write word: the word's low byte goes on the wire first."""
        self.transfer(i2c_addr, bytes([register, value & 0xFF, (value >> 8) & 0xFF]))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force: bool | None = None) -> list[int]:
        return list(self.transfer(i2c_addr, bytes([register]), length))

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Iterable[int], force: bool | None = None) -> None:
        self.transfer(i2c_addr, bytes([register, *data]))

    # MicroPython machine.I2C
    def readfrom_mem(self, addr: int, memaddr: int, nbytes: int, *, addrsize: int = 8) -> bytes:
        return self.transfer(addr, bytes([memaddr]), nbytes)

    def readfrom_mem_into(self, addr: int, memaddr: int, buf: bytearray, *, addrsize: int = 8) -> None:
        buf[:] = self.transfer(addr, bytes([memaddr]), len(buf))

    def writeto_mem(self, addr: int, memaddr: int, buf: bytes, *, addrsize: int = 8) -> None:
        self.transfer(addr, bytes([memaddr]) + bytes(buf))


class INA219Chip(_Transport):
    """One INA219 at ``address``; ``load(t_ns)`` gives the shunt and bus voltages at a time on
    ``clock_ns``'s scale (pass a fake clock to step time by hand)."""

    def __init__(self, address: int = 0x40, shunt_ohms: float = 0.1, clock_ns: Callable[[], int] = time.monotonic_ns,
                 load: Load | None = None) -> None:
        self.address = address
        self.shunt_ohms = shunt_ohms  # only for set_current: the load is given as voltages
        self.load: Load = load or (lambda _t: (0.0, 0.0))
        self.log: list[I2CTransfer] = []
        self.conversions = 0  # results latched since construction, resets included
        self.resets = 0  # brown-outs and RST writes since construction
        self._clock = clock_ns
        self._lock = threading.RLock()
        self._pointer = 0
        self._power_on_reset()

    # --- the physical side -----------------------------------------------------------------
    def set_load(self, shunt_v: float, bus_v: float) -> None:
        """A constant load: ``shunt_v`` across the shunt (negative: reverse flow), ``bus_v`` on IN-."""
        self.load = lambda _t: (shunt_v, bus_v)

    def set_current(self, amps: float, bus_v: float) -> None:
        """A constant load given as current through this chip's shunt."""
        self.set_load(amps * self.shunt_ohms, bus_v)

    def reset(self) -> None:
        """A brown-out: every register back to its power-on value."""
        with self._lock:
            self.resets += 1
            self._power_on_reset()

    def peek(self, reg: int) -> int:
        """A register's value as a read would return it, without the read's side effects (CNVR) and
        without a log entry: for tests that check the chip, not the driver."""
        with self._lock:
            self._advance(self._clock())
            return self._value(reg)

    # --- the wire ----------------------------------------------------------------------------
    def transfer(self, addr: int, write: bytes, nread: int = 0) -> bytes:
        """One transaction: ``write`` = pointer then data (MSB first); then ``nread`` bytes read."""
        if addr != self.address:
            raise _nack()
        with self._lock:
            if write:
                if write[0] >= _REGISTERS:
                    raise _nack()
                self._pointer = write[0]
                payload = bytes(write[1:])
                for i in range(0, len(payload) - 1, 2):  # a register is committed on its LSB
                    self._write(self._pointer, payload[i] << 8 | payload[i + 1])
            else:
                payload = b""
            data = b""
            if nread:
                value = self._read(self._pointer)
                pair = bytes([value >> 8 & 0xFF, value & 0xFF])
                data = (pair * (nread // 2 + 1))[:nread]
            self.log.append(I2CTransfer(addr, self._pointer, payload, data))
            return data

    def scan(self) -> list[int]:
        return [self.address]

    # --- the silicon -------------------------------------------------------------------------
    def _power_on_reset(self) -> None:
        self._config = _POR_CONFIG
        self._shunt = self._bus = self._current = self._power = self._cal = 0
        self._cnvr = self._ovf = False
        self._restart(self._clock())

    def _restart(self, now: int) -> None:
        self._t0 = now
        self._latched = 0  # conversions latched since _t0

    def _period_ns(self) -> int:
        mode = self._config & 0b111
        period = 0
        if mode & 0b001:
            period += _conversion_ns(self._config >> 3 & 0b1111)
        if mode & 0b010:
            period += _conversion_ns(self._config >> 7 & 0b1111)
        return period

    def _advance(self, now: int) -> None:
        """Latch the latest conversion completed by ``now``, if it is newer than the last one."""
        period = self._period_ns()
        if not period or now - self._t0 < period:
            return
        continuous = bool(self._config & 0b100)
        k = (now - self._t0) // period if continuous else 1
        if k > self._latched:
            self._latched = k
            self._latch(self._t0 + k * period)

    def _latch(self, t_ns: int) -> None:
        shunt_v, bus_v = self.load(t_ns)
        mode = self._config & 0b111
        if mode & 0b001:
            full = _PGA_FULL_SCALE[self._config >> 11 & 0b11]
            self._shunt = max(-full, min(full, _round(shunt_v / 10e-6)))
        if mode & 0b010:
            full = _BUS_FULL_SCALE[self._config >> 13 & 1]
            self._bus = max(0, min(full, _round(bus_v / 0.004)))
        self._compute()
        self._cnvr = True
        self.conversions += 1

    def _compute(self) -> None:
        if not self._cal:
            self._current = self._power = 0
            self._ovf = False
            return
        current = _trunc_div(self._shunt * self._cal, 4096)
        ovf = not -0x8000 <= current <= 0x7FFF
        self._current = current & 0xFFFF
        register = self._current - 0x10000 if self._current & 0x8000 else self._current
        power = abs(register) * self._bus // 5000
        self._ovf = ovf or power > 0xFFFF
        self._power = power & 0xFFFF

    def _value(self, reg: int) -> int:
        if reg == 0:
            return self._config
        if reg == 1:
            return self._shunt & 0xFFFF
        if reg == 2:
            return self._bus << 3 | self._cnvr << 1 | self._ovf
        if reg == 3:
            return self._power if self._cal else 0
        if reg == 4:
            return self._current if self._cal else 0
        return self._cal

    def _read(self, reg: int) -> int:
        self._advance(self._clock())
        value = self._value(reg)
        if reg == 3:
            self._cnvr = False
        return value

    def _write(self, reg: int, value: int) -> None:
        now = self._clock()
        self._advance(now)
        if reg == 0:
            if value & 0x8000:
                self.resets += 1
                self._power_on_reset()
                return
            self._config = value & 0x3FFF  # bit 15 self-clears, bit 14 is not implemented
            if value & 0b111 not in (0b000, 0b100):  # power-down / ADC off keep CNVR
                self._cnvr = False
            self._restart(now)
        elif reg == 5:
            self._cal = value & 0xFFFE
        # 0x01..0x04 are read-only: the chip acknowledges and ignores the data


class EmulatedSMBus(_Transport):
    """One I2C bus with chips at distinct addresses, used where a driver takes an ``smbus2.SMBus``;
    an address nobody answers raises ``OSError(EREMOTEIO)`` as i2c-dev does."""

    def __init__(self, *chips: INA219Chip, bus: int = 1) -> None:
        self.bus = bus
        self.chips: dict[int, INA219Chip] = {}
        self.closed = False
        for chip in chips:
            if chip.address in self.chips:
                raise ValueError(f"two chips at 0x{chip.address:02x} on one bus")
            self.chips[chip.address] = chip

    def transfer(self, addr: int, write: bytes, nread: int = 0) -> bytes:
        if self.closed:
            raise OSError(EBADF, "I2C bus closed")
        chip = self.chips.get(addr)
        if chip is None:
            raise _nack()
        return chip.transfer(addr, write, nread)

    def scan(self) -> list[int]:
        return sorted(self.chips)

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> EmulatedSMBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
