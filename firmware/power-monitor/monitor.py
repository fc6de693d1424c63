"""The power monitor's protocol core: commands in, SAMPLE frames out, one step at a time.

Runs on the board (``main.py`` gives it the INA219 driver, the USB serial port and
``time.ticks_us``) and under CPython in the tests, which drive it over a pseudo-terminal against
the real host driver; so it keeps to the subset both share (see ``frames.py``) and imports
``frames`` and ``ina219_regs`` as top-level modules, which is how they sit on the board.

Design:

- ``poll()`` does one step: read what input is waiting, handle complete command frames, take and
  send a sample if one is due, and return how long the caller may sleep. ``run()`` loops it. No
  threads, no interrupts: a MicroPython timer callback cannot do I2C, and a step function is
  what a test can drive.
- Samples are due every 1/rate s on the device clock. A late step samples late (the timestamp
  says so); a step more than a period late skips the missed samples instead of bursting, because
  the chip has only one fresh conversion to give.
- The device clock is ``ticks_us`` extended past its wrap (2^30 us, about 18 min, on most
  ports) by summing ``ticks_diff`` steps; frames carry it modulo 2^32, and the host unwraps it.
- The sequence number restarts at 0 on START and counts SAMPLE frames sent, so every gap the
  host sees is a frame lost on the way, not a sample the firmware chose to skip.
- Nothing a host sends can stop the loop: bad frames are dropped by the parser (and a partial
  frame left by a host that died mid-write is given up after STALE_POLLS quiet steps), bad commands
  answered with an ACK status or an ERROR frame, sensor failures reported (at most once a second)
  and retried on the next sample.
- A Ctrl-C byte (0x03) outside any frame ends ``run()``: ``main.py`` turns the keyboard interrupt
  off so that binary frames can pass, and this is how ``mpremote`` (which sends ``\\r\\x03``) and a
  person at a terminal still get the REPL back. A 0x03 inside a frame (STOP's type byte, a CRC
  byte) is part of that frame and does not count.
"""

import json

import frames

FIRMWARE_VERSION = "1.0.0"
DEFAULT_RATE_HZ = 1000
MAX_RATE_HZ = 2000  # three I2C transfers at 400 kHz and the framing take ~0.5 ms on an RP2040
MAX_SLEEP_US = 200  # latency of command handling; it bounds the PING timing error too
ERROR_INTERVAL_US = 1000000  # at most one ERROR frame a second
MAX_INPUT_PER_POLL = 64  # bytes handled per step, so a flood of input cannot starve sampling
STALE_POLLS = 50  # steps without input after which a partial frame is given up (frames.Parser.flush)
BOARD_NAME_MAX = 32
CTRL_C = 0x03


def _dumps(obj) -> str:
    try:
        return json.dumps(obj, separators=(",", ":"))
    except TypeError:  # MicroPython before separators= support
        return json.dumps(obj)


class Monitor:
    """One power monitor: ``sensor`` is an ``ina219_mp.INA219`` (anything with ``set_rate``,
    ``read(stamp)`` and ``info()``), ``port`` anything with ``read(n)`` (non-blocking: returns
    b"" or None when nothing waits) and ``write(data)``.

    ``clock_us`` sets the device clock's starting value (default: the current ticks); tests start
    it just below 2^32 so that the host sees the 32-bit wrap within seconds.
    """

    def __init__(self, sensor, port, ticks_us, ticks_diff, sleep_us, board: str = "unknown",
                 rate_hz: int = DEFAULT_RATE_HZ, clock_us: int = -1) -> None:
        self.sensor = sensor
        self.port = port
        self._ticks_us = ticks_us
        self._ticks_diff = ticks_diff
        self._sleep_us = sleep_us
        self.board = board[:BOARD_NAME_MAX]
        self.parser = frames.Parser()
        self._last_ticks = ticks_us()
        self._clock = self._last_ticks if clock_us < 0 else clock_us
        self.rate_hz = rate_hz
        self.period_us = 1000000 // rate_hz
        self.started = False
        self.running = False
        self.interrupted = False
        self._quiet_polls = 0
        self.seq = 0
        self.next_due = 0
        self.samples_sent = 0
        self.errors = 0
        self.write_errors = 0
        self.sensor_error = ""
        self._last_error_us = -ERROR_INTERVAL_US
        self._setup_sensor()

    # --- clock --------------------------------------------------------------------------------
    def now_us(self) -> int:
        """The device clock in microseconds, extended past the ticks counter's wrap."""
        t = self._ticks_us()
        self._clock += self._ticks_diff(t, self._last_ticks)
        self._last_ticks = t
        return self._clock

    # --- output -------------------------------------------------------------------------------
    def send(self, frame: bytes) -> None:
        try:
            self.port.write(frame)
        except OSError:  # nobody listening: the frame is lost, the loop goes on
            self.write_errors += 1

    def ack(self, command: int, status: int = frames.ACK_OK) -> None:
        self.send(frames.ack_frame(command, status))

    def report(self, text: str) -> None:
        """An ERROR frame, at most one per ERROR_INTERVAL_US (a failing sensor fails every sample)."""
        self.errors += 1
        now = self.now_us()
        if now - self._last_error_us >= ERROR_INTERVAL_US:
            self._last_error_us = now
            self.send(frames.text_frame(frames.ERROR, text))

    # --- sensor -------------------------------------------------------------------------------
    def _describe(self, exc) -> str:
        if isinstance(exc, OSError):
            return "INA219 I2C error (" + str(exc) + "): check SDA/SCL, 3V3, GND and the address"
        return "INA219: " + str(exc)

    def _setup_sensor(self) -> None:
        try:
            self.sensor.set_rate(self.rate_hz)
            self.sensor_error = ""
        except Exception as exc:
            self.sensor_error = self._describe(exc)

    def info_json(self) -> str:
        """The INFO reply; kept under the 255-byte payload limit by dropping the board name if needed."""
        info = {"fw": FIRMWARE_VERSION, "protocol": frames.PROTOCOL_VERSION, "board": self.board,
                "rate_hz": self.rate_hz, "max_rate_hz": MAX_RATE_HZ, "sensor_ok": not self.sensor_error}
        info.update(self.sensor.info())
        text = _dumps(info)
        if len(text.encode("utf-8")) > frames.MAX_PAYLOAD:
            info["board"] = ""
            text = _dumps(info)
        return text

    def sample(self) -> None:
        try:
            t_us, bus_mv, current_ua, power_uw, flags = self.sensor.read(self.now_us)
        except Exception as exc:
            self.sensor_error = self._describe(exc)
            self.report(self.sensor_error)
            return
        self.sensor_error = ""
        self.send(frames.sample_frame(self.seq, t_us, bus_mv, current_ua, power_uw, flags))
        self.seq = (self.seq + 1) & frames.U32_MASK
        self.samples_sent += 1

    # --- commands -----------------------------------------------------------------------------
    def handle(self, ftype: int, payload: bytes) -> None:
        if ftype == frames.PING:
            token = frames.unpack_ping(payload)
            if token is None:
                self.report("PING needs a 4-byte token, got " + str(len(payload)) + " bytes")
                return
            self.send(frames.pong_frame(token, self.now_us()))
        elif ftype == frames.INFO:
            self.send(frames.text_frame(frames.INFO_REPLY, self.info_json()))
        elif ftype == frames.START:
            if self.sensor_error:
                self._setup_sensor()
            if self.sensor_error:
                self.ack(ftype, frames.ACK_SENSOR_ERROR)
                self.report(self.sensor_error)
                return
            self.seq = 0
            self.started = True
            self.next_due = self.now_us()
            self.ack(ftype)
        elif ftype == frames.STOP:
            self.started = False
            self.ack(ftype)
        elif ftype == frames.RATE:
            rate = frames.unpack_rate(payload)
            if rate is None:
                self.ack(ftype, frames.ACK_BAD_LENGTH)
            elif not 1 <= rate <= MAX_RATE_HZ:
                self.ack(ftype, frames.ACK_BAD_VALUE)
            else:
                self.rate_hz = rate
                self.period_us = 1000000 // rate
                self._setup_sensor()
                if self.sensor_error:
                    self.report(self.sensor_error)  # before the ACK, so the host has the reason when it reads it
                    self.ack(ftype, frames.ACK_SENSOR_ERROR)
                else:
                    self.ack(ftype)
        elif ftype < 0x80:
            self.report("unknown command " + hex(ftype))
        # frames of the device's own types coming back (a loopback, an echoing terminal): ignored

    # --- the loop -----------------------------------------------------------------------------
    def poll(self) -> int:
        """One step; returns how many microseconds the caller may sleep, or -1 after a Ctrl-C."""
        count = 0
        while count < MAX_INPUT_PER_POLL:
            data = self.port.read(1)
            if not data:
                break
            count += 1
            got = self.parser.feed(data)
            if not got and data[0] == CTRL_C and self.parser.pending() == 0:
                self.started = False
                self.interrupted = True
                return -1
            for ftype, payload in got:
                self.handle(ftype, payload)
        if count or not self.parser.pending():
            self._quiet_polls = 0
        else:
            self._quiet_polls += 1
            if self._quiet_polls >= STALE_POLLS:  # a partial frame that will never be completed
                self._quiet_polls = 0
                for ftype, payload in self.parser.flush():
                    self.handle(ftype, payload)
        if not self.started:
            return MAX_SLEEP_US
        now = self.now_us()
        if now < self.next_due:
            return min(self.next_due - now, MAX_SLEEP_US)
        self.sample()
        self.next_due += self.period_us
        now = self.now_us()
        if self.next_due <= now:  # more than a period late: skip, do not burst
            self.next_due = now + self.period_us
        return 0

    def run(self) -> None:
        """Poll until a Ctrl-C arrives (or, in tests, until ``running`` is cleared)."""
        self.running = True
        while self.running:
            wait = self.poll()
            if wait < 0:
                break
            if wait > 0:
                self._sleep_us(wait)
        self.running = False
