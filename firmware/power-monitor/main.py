"""Board wiring for the power monitor; everything else is in ``monitor.py`` and ``ina219_mp.py``.

Raspberry Pi Pico (RP2040): INA219 on I2C0, SDA = GP4 (pin 6), SCL = GP5 (pin 7).
ESP32 (classic DevKit): I2C0 on SDA = GPIO21, SCL = GPIO22. ESP32-S2/S3/C3: set the pins below
(S3 DevKitC: SDA = GPIO8, SCL = GPIO9). The shunt and range below must match the breakout
(the common Adafruit/CJMCU boards carry 0.1 ohm: 3.2 A full scale at the 320 mV range).

The link is the USB serial port that also carries the REPL: frames go through
``sys.stdout.buffer`` and come in through ``sys.stdin.buffer``, polled with ``select.poll`` so
the loop never blocks on input. The keyboard interrupt is switched off while the monitor runs,
because a 0x03 byte inside a binary frame would otherwise raise KeyboardInterrupt; a 0x03 outside
a frame (Ctrl-C, or ``mpremote``) ends the monitor and gives the REPL back.
"""

import os
import select
import sys
import time

import ina219_mp
import micropython
import monitor
from machine import I2C, Pin

SHUNT_OHMS = 0.1
MAX_CURRENT_A = 3.2
ADDRESS = 0x40

try:
    BOARD = os.uname().machine  # e.g. "Raspberry Pi Pico with RP2040"
except AttributeError:
    BOARD = sys.platform

if sys.platform == "esp32":
    i2c = I2C(0, sda=Pin(21), scl=Pin(22), freq=400_000)
else:  # "rp2": Raspberry Pi Pico
    i2c = I2C(0, sda=Pin(4), scl=Pin(5), freq=400_000)


class UsbPort:
    """Non-blocking reads and raw writes on the USB serial port."""

    def __init__(self) -> None:
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)

    def read(self, n: int) -> bytes:
        return self._in.read(1) if self._poll.poll(0) else b""

    def write(self, data: bytes) -> None:
        self._out.write(data)


sensor = ina219_mp.INA219(i2c, time.ticks_us, time.ticks_diff, time.sleep_us, address=ADDRESS,
                          shunt_ohms=SHUNT_OHMS, max_current_a=MAX_CURRENT_A)
core = monitor.Monitor(sensor, UsbPort(), time.ticks_us, time.ticks_diff, time.sleep_us, board=BOARD)
micropython.kbd_intr(-1)
try:
    core.run()
finally:
    micropython.kbd_intr(3)
print("power monitor stopped (Ctrl-C); REPL")
