"""INA219 driver for MicroPython (``machine.I2C``), built on the shared ``ina219_regs`` arithmetic.

On the board ``ina219_regs.py`` sits next to this file (copied from ``devices/power/``), so the
register map and calibration exist once for the host driver and the firmware. This file keeps to
the subset CPython shares (no f-strings, no ``typing``), so the tests run it against the
register-level INA219 emulator.

Why it reads the way it does:

- Registers go MSB first on the wire; ``readfrom_mem_into`` into a preallocated buffer avoids an
  allocation per transfer (the garbage collector is the enemy of a 1 kHz loop).
- Reading faster than the conversion time returns repeats, so a read waits for the
  conversion-ready bit (CNVR) and is timestamped when it is seen, then reads CURRENT and POWER;
  POWER last, because reading it clears CNVR for the next read.
- The ADC setting follows the sample rate: the finest resolution, then the most averaging, whose
  shunt+bus conversion fits in 90 % of the sample period (11-bit at 1 kHz, 12-bit x8 at 100 Hz),
  so every sample is a fresh conversion and slow rates get averaging as an anti-alias filter.
- A brown-out resets the chip: CALIBRATION goes to 0, and with it CURRENT and POWER read 0. So
  CALIBRATION is checked only when both read 0 (one I2C transfer instead of one every sample);
  after a reset CONFIG and CALIBRATION are re-written and that reading is flagged.
- The timestamp is only as good as the reads around it: a pause (garbage collection, an
  interrupt) between seeing CNVR and stamping, or before CURRENT and POWER are read (the chip
  may have converted again by then), would pair a value with the wrong time. So the CNVR read is
  stamped before and after, the data reads are timed too, and a reading whose reads took longer
  than a conversion period (at least MIN_SKEW_US) is dropped for the next conversion — up to
  MAX_RETRIES times, so that a slow bus cannot starve the stream.
- Shunt saturation is judged from CURRENT (= trunc(SHUNT x CAL / 4096)) instead of reading the
  shunt register too; at the very top count this may flag a reading one LSB below full scale,
  which errs on the side of not trusting it.
"""

import ina219_regs as regs

FLAG_OVERFLOW = 1  # the SAMPLE flag bits (frames.FLAG_*), repeated so the driver stands alone
FLAG_RECALIBRATED = 2
READY_POLL_US = 50
READY_SLACK_US = 1000
MIN_SKEW_US = 1000  # how long the reads around a sample's timestamp may take (at least a conversion period)
MAX_RETRIES = 3  # disturbed reads in a row after which a reading is taken anyway

# best first: averaging (12-bit, most samples first), then single 12/11/10/9-bit conversions
_ADC_CHOICES = ((12, 128), (12, 64), (12, 32), (12, 16), (12, 8), (12, 4), (12, 2), (12, 1), (11, 1), (10, 1), (9, 1))


class INA219Error(Exception):
    """The chip answers but misbehaves: settings that do not stick, no conversion in time."""


def adc_for_rate(rate_hz: int):
    """``(bits, samples)``: the finest ADC setting whose conversion fits 90 % of the sample period."""
    budget_us = 900000 // max(1, rate_hz)
    for bits, samples in _ADC_CHOICES:
        code = regs.adc_code(bits, samples)
        if regs.conversion_period_us(code, code) <= budget_us:
            return bits, samples
    return 9, 1


class INA219:
    """An INA219 at ``address`` on a ``machine.I2C``-like bus, continuous shunt+bus conversions.

    Nothing touches the bus until ``configure`` (the firmware boots, and says so in INFO, even
    with the sensor unplugged). ``ticks_us``/``ticks_diff``/``sleep_us`` are ``time``'s on the
    board and a consistent fake clock in tests.
    """

    def __init__(self, i2c, ticks_us, ticks_diff, sleep_us, address: int = 0x40, shunt_ohms: float = 0.1,
                 max_current_a: float = 3.2, bus_range_v: int = 32) -> None:
        self.i2c = i2c
        self.address = address
        self.shunt_ohms = shunt_ohms
        self.max_current_a = max_current_a
        self.bus_range_v = bus_range_v
        self.pga_mv = regs.pga_for(shunt_ohms, max_current_a)
        self.cal, self.current_lsb_a = regs.calibration(shunt_ohms, max_current_a)
        self.current_lsb_ua = self.current_lsb_a * 1e6
        self.saturated_counts = regs.shunt_full_scale(self.pga_mv) * self.cal // regs.CURRENT_DIVISOR
        self._bus_mv_per_count = round(regs.BUS_LSB_V * 1000)
        self._ticks_us = ticks_us
        self._ticks_diff = ticks_diff
        self._sleep_us = sleep_us
        self._buf = bytearray(2)
        self.adc_bits = 12
        self.adc_samples = 1
        self.config = 0
        self.conversion_us = 0
        self.configured = False
        self.recalibrations = 0
        self.disturbed = 0  # readings dropped because their reads were interrupted
        self._set_adc(12, 1)

    def _set_adc(self, bits: int, samples: int) -> None:
        code = regs.adc_code(bits, samples)
        self.adc_bits = bits
        self.adc_samples = samples
        self.config = regs.config_word(self.bus_range_v, self.pga_mv, code, code, regs.MODE_SHUNT_BUS_CONTINUOUS)
        self.conversion_us = regs.conversion_period_us(code, code)

    # --- the one I/O seam -------------------------------------------------------------------
    def _read(self, reg: int) -> int:
        buf = self._buf
        self.i2c.readfrom_mem_into(self.address, reg, buf)
        return buf[0] << 8 | buf[1]

    def _write(self, reg: int, value: int) -> None:
        self.i2c.writeto_mem(self.address, reg, bytes([(value >> 8) & 0xFF, value & 0xFF]))

    # --- configuration ------------------------------------------------------------------------
    def configure(self) -> None:
        """Write CONFIG and CALIBRATION and check they read back; raises ``OSError`` (no chip on
        the bus) or ``INA219Error`` (a chip that does not keep them)."""
        self.configured = False
        self._write(regs.REG_CONFIG, self.config)
        self._write(regs.REG_CALIBRATION, self.cal)
        config = self._read(regs.REG_CONFIG)
        cal = self._read(regs.REG_CALIBRATION)
        if config != self.config or cal != self.cal:
            raise INA219Error("device at " + hex(self.address) + " does not keep its settings (CONFIG " + hex(config)
                              + ", CALIBRATION " + hex(cal) + "): not an INA219?")
        self.configured = True

    def set_rate(self, rate_hz: int) -> None:
        """Choose the ADC setting for ``rate_hz`` (see ``adc_for_rate``) and configure the chip."""
        bits, samples = adc_for_rate(rate_hz)
        self._set_adc(bits, samples)
        self.configure()

    def info(self) -> dict:
        """The sensor's part of the INFO reply."""
        return {"chip": "INA219", "addr": self.address, "shunt_ohms": self.shunt_ohms, "max_current_a": self.max_current_a,
                "adc_bits": self.adc_bits, "adc_samples": self.adc_samples, "conversion_us": self.conversion_us}

    # --- reading ------------------------------------------------------------------------------
    def _wait_ready(self, stamp, skew_us: int):
        """``(bus register, stamp)`` once CNVR is set, the stamp taken right after that read; a CNVR
        read that took longer than ``skew_us`` (it was interrupted) is discarded, and CNVR cleared,
        unless ``skew_us`` is negative."""
        start = self._ticks_us()
        limit = 2 * self.conversion_us + READY_SLACK_US
        while True:
            before = stamp()
            bus = self._read(regs.REG_BUS_VOLTAGE)
            after = stamp()
            if bus & regs.BUS_CNVR:
                if skew_us < 0 or after - before <= skew_us:
                    return bus, after
                self._read(regs.REG_POWER)  # clears CNVR: wait for a conversion we can stamp
                start = self._ticks_us()  # the chip is converting; the pause was ours, not its
            elif self._ticks_diff(self._ticks_us(), start) > limit:
                raise INA219Error("INA219 at " + hex(self.address) + ": no conversion ready within " + str(limit) + " us")
            self._sleep_us(READY_POLL_US)

    def read(self, stamp):
        """One fresh conversion: ``(t_us, bus_mv, current_ua, power_uw, flags)``, where ``t_us`` is
        ``stamp()`` (device µs) when the conversion was seen ready. Raises ``OSError``/``INA219Error``;
        after either, the next read re-configures the chip first."""
        try:
            if not self.configured:
                self.configure()
            skew_us = max(MIN_SKEW_US, self.conversion_us)
            retries = 0
            while True:
                last_try = retries >= MAX_RETRIES
                bus, t_us = self._wait_ready(stamp, -1 if last_try else skew_us)
                current = self._read(regs.REG_CURRENT)
                power = self._read(regs.REG_POWER)  # last: clears CNVR
                if last_try or stamp() - t_us <= skew_us:
                    break
                retries += 1
                self.disturbed += 1
            flags = 0
            if current == 0 and power == 0 and self._read(regs.REG_CALIBRATION) != self.cal:
                self.recalibrations += 1
                self.configure()
                flags |= FLAG_RECALIBRATED
        except Exception:
            self.configured = False
            raise
        signed = regs.signed16(current)
        if regs.overflow(bus) or signed >= self.saturated_counts or -signed >= self.saturated_counts:
            flags |= FLAG_OVERFLOW
        current_ua = round(regs.current_a(current, self.current_lsb_ua))
        power_uw = round(regs.power_w(power, self.current_lsb_ua))
        if signed < 0:
            power_uw = -power_uw
        bus_mv = ((bus & 0xFFFF) >> regs.BUS_SHIFT) * self._bus_mv_per_count
        return t_us, bus_mv, current_ua, power_uw, flags
