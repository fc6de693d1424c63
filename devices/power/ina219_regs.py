"""TI INA219 register map and arithmetic, as pure functions that also run on MicroPython.

The host driver (``devices.power.ina219``) imports this module, and the power-monitor firmware
copies the same file onto an RP2040/ESP32 (``mpremote cp``), so the register facts and the
calibration arithmetic exist once. That is why the file keeps to the subset both interpreters
share: no ``__future__`` imports, no dataclasses or ``typing``, no f-strings, annotations with
builtins only, plain module constants and functions, no imports at all.

Raw register words are kept apart from scaled values: every decoder takes the raw 16-bit word
as the chip sends it (most significant byte first, i.e. already byte-swapped from an SMBus word)
and says which LSB it applies. Facts are from the INA219 datasheet (TI SBOS448G):
configuration register 0x00, shunt 0x01, bus 0x02, power 0x03, current 0x04, calibration 0x05.
"""

# --- register addresses (the pointer byte of an I2C transfer) ---------------------------------
REG_CONFIG = 0x00
REG_SHUNT_VOLTAGE = 0x01
REG_BUS_VOLTAGE = 0x02
REG_POWER = 0x03
REG_CURRENT = 0x04
REG_CALIBRATION = 0x05

ADDRESS_MIN = 0x40  # A0/A1 strapping gives 16 addresses, 0x40..0x4F
ADDRESS_MAX = 0x4F

# --- configuration register fields ------------------------------------------------------------
CONFIG_RESET_VALUE = 0x399F  # power-on value: 32 V, 320 mV, 12-bit/12-bit, continuous shunt+bus
CONFIG_RST = 1 << 15  # write 1: power-on reset of every register; self-clearing
CONFIG_BRNG_SHIFT = 13  # bus range: 0 = 16 V, 1 = 32 V
CONFIG_PG_SHIFT = 11  # PGA, bits 12-11: 0..3 = +-40/80/160/320 mV
CONFIG_PG_MASK = 0b11
CONFIG_BADC_SHIFT = 7  # bus ADC, bits 10-7
CONFIG_SADC_SHIFT = 3  # shunt ADC, bits 6-3
CONFIG_ADC_MASK = 0b1111
CONFIG_MODE_MASK = 0b111  # bits 2-0

BUS_RANGES_V = (16, 32)  # index = BRNG bit
PGA_RANGES_MV = (40, 80, 160, 320)  # index = PG code

# ADC codes (BADC / SADC). Without averaging bit 3 is 0 and bit 2 is "don't care": 0bX0nn.
ADC_9BIT = 0b0000
ADC_10BIT = 0b0001
ADC_11BIT = 0b0010
ADC_12BIT = 0b0011  # 0b1000 is also 12-bit, single sample
ADC_12BIT_2S = 0b1001  # 12-bit, averaging 2 samples
ADC_12BIT_4S = 0b1010
ADC_12BIT_8S = 0b1011
ADC_12BIT_16S = 0b1100
ADC_12BIT_32S = 0b1101
ADC_12BIT_64S = 0b1110
ADC_12BIT_128S = 0b1111

# operating modes (MODE bits 2-0)
MODE_POWER_DOWN = 0b000
MODE_SHUNT_TRIGGERED = 0b001
MODE_BUS_TRIGGERED = 0b010
MODE_SHUNT_BUS_TRIGGERED = 0b011
MODE_ADC_OFF = 0b100
MODE_SHUNT_CONTINUOUS = 0b101
MODE_BUS_CONTINUOUS = 0b110
MODE_SHUNT_BUS_CONTINUOUS = 0b111

# conversion time of one result, in microseconds (datasheet, electrical characteristics)
CONVERSION_US_BY_BITS = {9: 84, 10: 148, 11: 276, 12: 532}
CONVERSION_US_BY_SAMPLES = {1: 532, 2: 1060, 4: 2130, 8: 4260, 16: 8510, 32: 17020, 64: 34050, 128: 68100}

# --- data register scaling --------------------------------------------------------------------
SHUNT_LSB_V = 10e-6  # shunt register: signed two's complement, 10 uV per bit at every PGA setting
SHUNT_COUNTS_PER_MV = 100  # so the PGA full scale in counts is pga_mv * 100 (320 mV -> 32000)
BUS_LSB_V = 0.004  # bus register bits 15-3, 4 mV per bit
BUS_SHIFT = 3
BUS_CNVR = 1 << 1  # conversion ready: set when a result lands, cleared by reading POWER
BUS_OVF = 1 << 0  # math overflow: the current or power calculation is out of range
POWER_LSB_FACTOR = 20  # Power_LSB = 20 x Current_LSB
CURRENT_DIVISOR = 4096  # CURRENT = SHUNT x CAL / 4096
POWER_DIVISOR = 5000  # POWER = CURRENT x BUS / 5000

# --- calibration ------------------------------------------------------------------------------
CAL_SCALE = 0.04096  # datasheet equation 1: Cal = trunc(0.04096 / (Current_LSB x R_shunt))
CAL_MAX = 0xFFFE  # bit 0 of the calibration register is not implemented
CURRENT_STEPS = 32768  # 2^15: the current register is signed 16-bit
_TRUNC_GUARD = 1e-9  # a quotient that is an integer in exact arithmetic must not truncate to n - 1


def calibration(shunt_ohms: float, max_current_a: float):
    """Calibration word for a shunt and the largest current to measure: returns ``(cal, current_lsb_a)``.

    Derived step by step from the datasheet's procedure:

    1. Current_LSB = I_max / 2^15, the finest LSB whose signed 16-bit range still reaches I_max.
    2. Cal = trunc(0.04096 / (Current_LSB x R_shunt)) (equation 1).
    3. Cal is clamped to 0xFFFE and its bit 0 cleared, because the chip does not store bit 0.
    4. The chip then computes with the Cal it holds, so the LSB that really applies to the current
       register is 0.04096 / (Cal x R_shunt): this *effective* LSB is what is returned, which makes
       decoded amps exact instead of off by the truncation in step 2 (up to 1 part in Cal).
    """
    if shunt_ohms <= 0 or max_current_a <= 0:
        raise ValueError("shunt_ohms and max_current_a must be positive")
    nominal_lsb = max_current_a / CURRENT_STEPS  # step 1
    cal = int(CAL_SCALE / (nominal_lsb * shunt_ohms) + _TRUNC_GUARD)  # step 2
    cal = min(cal, CAL_MAX) & CAL_MAX  # step 3
    if cal < 2:
        raise ValueError("shunt " + str(shunt_ohms) + " ohm at " + str(max_current_a) + " A needs a calibration below 2")
    return cal, CAL_SCALE / (cal * shunt_ohms)  # step 4


def pga_for(shunt_ohms: float, max_current_a: float) -> int:
    """The smallest PGA range (mV) that holds I_max x R_shunt: the smallest range gives the finest
    shunt resolution; raises ``ValueError`` above 320 mV, where the shunt must get smaller."""
    needed_mv = max_current_a * shunt_ohms * 1000.0
    for pga_mv in PGA_RANGES_MV:
        if needed_mv <= pga_mv * (1 + _TRUNC_GUARD):  # 0.1 ohm x 3.2 A is 320.00000000000006 mV in floats
            return pga_mv
    raise ValueError("shunt " + str(shunt_ohms) + " ohm x " + str(max_current_a) + " A = " + str(round(needed_mv, 1))
                     + " mV exceeds the INA219's 320 mV shunt range; use a smaller shunt")


def adc_code(bits: int = 12, samples: int = 1) -> int:
    """BADC/SADC code for a resolution or, with ``samples`` > 1, for 12-bit averaging (the chip
    averages only at 12 bits)."""
    if samples == 1:
        codes = {9: ADC_9BIT, 10: ADC_10BIT, 11: ADC_11BIT, 12: ADC_12BIT}
        if bits not in codes:
            raise ValueError("ADC resolution must be 9, 10, 11 or 12 bits, not " + str(bits))
        return codes[bits]
    if bits != 12:
        raise ValueError("the INA219 averages only at 12 bits; use adc=12 with samples=" + str(samples))
    step = 0
    while (1 << step) < samples:
        step += 1
    if (1 << step) != samples or samples > 128:
        raise ValueError("samples must be 1, 2, 4, 8, 16, 32, 64 or 128, not " + str(samples))
    return 0b1000 | step


def conversion_time_us(adc: int) -> int:
    """Conversion time of one result for a BADC/SADC code, in microseconds."""
    adc &= CONFIG_ADC_MASK
    if adc & 0b1000:
        samples = 1 << (adc & 0b0111)  # 0b1000 is 12-bit single, 0b1001.. average 2..128
        return CONVERSION_US_BY_SAMPLES[samples]
    return CONVERSION_US_BY_BITS[9 + (adc & 0b0011)]


def conversion_period_us(bus_adc: int, shunt_adc: int, mode: int = MODE_SHUNT_BUS_CONTINUOUS) -> int:
    """Time between fresh results in a mode: shunt then bus conversion in the shunt+bus modes, one
    of them in the single-channel modes, 0 when the ADC is off."""
    mode &= CONFIG_MODE_MASK
    period = 0
    if mode & 0b001:
        period += conversion_time_us(shunt_adc)
    if mode & 0b010:
        period += conversion_time_us(bus_adc)
    return period


def config_word(bus_range_v: int, pga_mv: int, bus_adc: int, shunt_adc: int, mode: int = MODE_SHUNT_BUS_CONTINUOUS) -> int:
    """Configuration register value from its fields (RST left 0)."""
    if bus_range_v not in BUS_RANGES_V:
        raise ValueError("bus range must be 16 or 32 V, not " + str(bus_range_v))
    if pga_mv not in PGA_RANGES_MV:
        raise ValueError("PGA range must be 40, 80, 160 or 320 mV, not " + str(pga_mv))
    for code in (bus_adc, shunt_adc):
        if not 0 <= code <= CONFIG_ADC_MASK:
            raise ValueError("ADC code must be 0..15, not " + str(code))
    if not 0 <= mode <= CONFIG_MODE_MASK:
        raise ValueError("mode must be 0..7, not " + str(mode))
    return (BUS_RANGES_V.index(bus_range_v) << CONFIG_BRNG_SHIFT
            | PGA_RANGES_MV.index(pga_mv) << CONFIG_PG_SHIFT
            | bus_adc << CONFIG_BADC_SHIFT
            | shunt_adc << CONFIG_SADC_SHIFT
            | mode)


def config_fields(word: int):
    """``(bus_range_v, pga_mv, bus_adc, shunt_adc, mode)`` of a configuration register value."""
    return (BUS_RANGES_V[(word >> CONFIG_BRNG_SHIFT) & 1],
            PGA_RANGES_MV[(word >> CONFIG_PG_SHIFT) & CONFIG_PG_MASK],
            (word >> CONFIG_BADC_SHIFT) & CONFIG_ADC_MASK,
            (word >> CONFIG_SADC_SHIFT) & CONFIG_ADC_MASK,
            word & CONFIG_MODE_MASK)


# --- decoders: raw register word in, SI unit out ----------------------------------------------
def swap16(word: int) -> int:
    """Swap the two bytes of a 16-bit word: SMBus words are little-endian, INA219 registers are sent
    most significant byte first, so every SMBus word read or written must pass through this."""
    return ((word & 0xFF) << 8) | ((word >> 8) & 0xFF)


def signed16(raw: int) -> int:
    """Two's-complement value of a 16-bit word (shunt and current registers are signed)."""
    raw &= 0xFFFF
    return raw - 0x10000 if raw & 0x8000 else raw


def shunt_voltage_v(raw: int) -> float:
    """Shunt register -> volts (signed, 10 uV per bit)."""
    return signed16(raw) * SHUNT_LSB_V


def shunt_full_scale(pga_mv: int) -> int:
    """Shunt register counts at the PGA's full scale (40 mV -> 4000)."""
    return pga_mv * SHUNT_COUNTS_PER_MV


def shunt_saturated(raw: int, pga_mv: int) -> bool:
    """True when the shunt reading sits at (or beyond) the PGA's full scale: the ADC clips there, so
    such a reading cannot be told from a larger voltage and is not to be trusted. The chip's OVF
    bit covers only the current/power arithmetic, not this."""
    return abs(signed16(raw)) >= shunt_full_scale(pga_mv)


def bus_voltage_v(raw: int) -> float:
    """Bus register -> volts (bits 15-3, 4 mV per bit; the flag bits 1-0 are dropped)."""
    return ((raw & 0xFFFF) >> BUS_SHIFT) * BUS_LSB_V


def conversion_ready(raw: int) -> bool:
    """CNVR (bus register bit 1): a result landed since POWER was last read."""
    return bool(raw & BUS_CNVR)


def overflow(raw: int) -> bool:
    """OVF (bus register bit 0): current or power arithmetic overflowed; that data is meaningless."""
    return bool(raw & BUS_OVF)


def current_a(raw: int, current_lsb: float) -> float:
    """Current register -> amps (signed; LSB from ``calibration``)."""
    return signed16(raw) * current_lsb


def power_w(raw: int, current_lsb: float) -> float:
    """Power register -> watts (unsigned; Power_LSB = 20 x Current_LSB)."""
    return (raw & 0xFFFF) * POWER_LSB_FACTOR * current_lsb
