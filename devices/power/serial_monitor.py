"""The ``serial`` power source: the edgeperf power-monitor firmware (``firmware/power-monitor``)
streaming INA219 samples over USB serial, read with pyserial.

What is measured is what the INA219 measures (see ``devices.power.ina219``): bus voltage times
current on the rail its shunt sits in, here sampled by a microcontroller instead of the host's
I2C bus — which is the point: any host with a USB port (a phone-class board, a Jetson without a
free I2C header, a laptop) gets a measured rail at 1 kHz.

The wire protocol is ``devices.power.frames`` (the same file runs on the board). This module:

- **Opens** the port (pyserial imported here, lazily), quiets a device left streaming (STOP),
  asks INFO until the firmware answers or ``timeout`` passes, sets the RATE, asks INFO again
  (the firmware picks the INA219's ADC setting for the rate) and syncs the clocks. Every way this
  can fail is one ``PowerSourceError`` line naming the fix.
- **Maps device time onto host time.** Samples carry the device's microsecond clock from the
  moment the conversion was seen ready; USB delivers them in bursts of several milliseconds, so
  arrival time would smear every edge. Each PING is stamped on the host just before it is written
  (t_send) and when its PONG is read (t_recv); the device stamps the PONG when it handles the PING.
  Assuming the two directions take equally long, the device time matches the host midpoint
  (t_send + t_recv) / 2, with an error of at most half the round trip, so of each burst of pings
  only the one with the smallest round trip is kept. On a host too busy to read a PONG at once,
  round trips grow to milliseconds: a burst with none near the connection's best (4 x it + 0.1 ms)
  pings on, up to 7 more, and points outside that stay out of the fit. Bursts are repeated every ``resync_s`` (and
  once more at ``stop``), and host = a + b x device is fitted by least squares over the kept points,
  each weighted by 1 / RTT^2: offset and drift. The device clock is 32-bit microseconds (it wraps
  after 71.6 minutes) and is unwrapped against the previous timestamp of the stream, which a
  PONG refreshes every second. Samples are stored with device time and mapped with the newest fit
  whenever ``samples()`` is called, so early samples profit from later sync points.
- **Counts what was lost.** ``dropped``: samples missing from the sequence (lost for any reason,
  a corrupt frame included); ``corrupt``: frames that arrived damaged (bad CRC); ``frames``:
  samples received. ``stats()`` has these, the clock offset and drift and the achieved rate; at
  ``stop`` they are recorded in ``info.detail["link"]`` with the result.
- **Survives an unplug.** A reader thread owns the port. When pyserial raises (the device went
  away), the error is recorded, the port closed, and the same path reopened a number of times:
  a board plugged back in gets the same ``/dev/ttyACM0`` once the old handle is closed, and
  ``/dev/serial/by-id/...`` never changes. A device that comes back is a new connection, with its
  own clock fit and sequence numbers; a run never dies because of it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from devices.power import frames
from devices.power.base import PowerMonitor, PowerSample, PowerSourceError, SourceInfo

log = logging.getLogger(__name__)

DEFAULT_BAUD = 115200  # irrelevant for USB CDC; a USB-UART bridge (classic ESP32) runs the REPL at it
DEFAULT_RATE_HZ = 1000
DEFAULT_RAIL = "shunt rail"
DEFAULT_TIMEOUT_S = 3.0  # a board reset by opening its port (ESP32 DevKits) boots MicroPython in ~1 s
OPTIONS = ("port", "baud", "rate", "rail", "timeout")
PORT_HINT = "serial: give the port, e.g. serial:/dev/ttyACM0"

MONITOR_VIDS = {0x2E8A: "Raspberry Pi RP2040", 0x303A: "Espressif native USB"}
BRIDGE_VIDS = {0x10C4: "Silicon Labs CP210x", 0x1A86: "WCH CH340/CH9102", 0x0403: "FTDI", 0x067B: "Prolific PL2303"}

READ_TIMEOUT_S = 0.02  # longest a pyserial read blocks; bounds how fast close() and resyncs react
WRITE_TIMEOUT_S = 1.0
REPLY_TIMEOUT_S = 1.0  # for ACKs and the second INFO, once the firmware is known to answer
INFO_RETRY_S = 0.5
PING_TIMEOUT_S = 0.25
SYNC_PINGS = 8  # at connection: the best of 8 round trips
RESYNC_PINGS = 3  # per periodic burst
EXTRA_PINGS = 7  # more, one at a time, while a burst has no round trip near the connection's best (a busy host)
FIT_RTT_FACTOR = 4  # points whose round trip is over this × the best (+ RTT_SLACK_NS) stay out of the fit
RTT_SLACK_NS = 100_000
RESYNC_S = 1.0
RTT_FLOOR_NS = 20_000  # weights 1 / (RTT + floor)^2: no point counts as infinitely precise
MIN_DRIFT_SPAN_NS = 500_000_000  # fit drift only over sync points at least this far apart
RECONNECT_ATTEMPTS = 20
RECONNECT_DELAY_S = 0.5
STALL_S = 1.0  # no sample for this long while started is reported
RAW_KEEP = 4096  # bytes kept from a connection's start, to recognise a MicroPython REPL
INBOX_MAX = 32
U32 = 1 << 32

_FLAGS = {0: (), frames.FLAG_OVERFLOW: ("overflow",), frames.FLAG_RECALIBRATED: ("recalibrated",),
          frames.FLAG_OVERFLOW | frames.FLAG_RECALIBRATED: ("overflow", "recalibrated")}


# --- clock mapping --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyncPoint:
    """One PING/PONG exchange: host monotonic ns around it, the device's (unwrapped) µs inside it."""

    device_us: int
    t_send_ns: int
    t_recv_ns: int

    @property
    def rtt_ns(self) -> int:
        return self.t_recv_ns - self.t_send_ns

    @property
    def host_mid_ns(self) -> float:
        return (self.t_send_ns + self.t_recv_ns) / 2


class ClockMap:
    """Device µs → host monotonic ns for one connection: ``unwrap`` the 32-bit device clock, ``add``
    sync bursts, ``to_host_ns`` with the offset and drift fitted to the best point of each burst."""

    def __init__(self) -> None:
        self.points: list[SyncPoint] = []
        self._best_rtt_ns: int | None = None  # the smallest round trip of the points so far
        self.version = 0  # bumped on every refit, so mapped samples know when to remap
        self._last_raw: int | None = None
        self._ext = 0
        self._x0 = 0.0
        self._y0 = 0.0
        self._a = 0.0
        self._b = 1.0

    def unwrap(self, raw_us: int) -> int:
        """The device time as an unbounded count, given timestamps in stream order (steps < 2^31 µs)."""
        if self._last_raw is None:
            self._ext = raw_us
        else:
            delta = (raw_us - self._last_raw) % U32
            self._ext += delta - U32 if delta >= U32 // 2 else delta
        self._last_raw = raw_us
        return self._ext

    def add(self, burst: Iterable[SyncPoint]) -> SyncPoint | None:
        """Keep the burst's smallest round trip and refit; returns the point kept."""
        best = min(burst, key=lambda p: p.rtt_ns, default=None)
        if best is not None:
            self.points.append(best)
            self._best_rtt_ns = min(best.rtt_ns, self._best_rtt_ns or best.rtt_ns)
            self._fit()
        return best

    def good_rtt(self, rtt_ns: int) -> bool:
        """A round trip near the connection's best: its midpoint is within about the same error. A host
        too busy to read a PONG at once makes round trips of milliseconds, and two such points alone
        would set the drift (a line through two points passes through both, whatever their weights)."""
        best = rtt_ns if self._best_rtt_ns is None else self._best_rtt_ns
        return rtt_ns <= FIT_RTT_FACTOR * best + RTT_SLACK_NS

    def _fit(self) -> None:
        points = [p for p in self.points if self.good_rtt(p.rtt_ns)]
        first = points[0]
        self._x0, self._y0 = first.device_us * 1000.0, first.host_mid_ns
        xs = [p.device_us * 1000.0 - self._x0 for p in points]
        ys = [p.host_mid_ns - self._y0 for p in points]
        ws = [1.0 / (p.rtt_ns + RTT_FLOOR_NS) ** 2 for p in points]
        total = sum(ws)
        if max(xs) - min(xs) < MIN_DRIFT_SPAN_NS:
            self._b = 1.0
            self._a = sum(w * (y - x) for w, x, y in zip(ws, xs, ys, strict=True)) / total
        else:
            xm = sum(w * x for w, x in zip(ws, xs, strict=True)) / total
            ym = sum(w * y for w, y in zip(ws, ys, strict=True)) / total
            sxx = sum(w * (x - xm) ** 2 for w, x in zip(ws, xs, strict=True))
            sxy = sum(w * (x - xm) * (y - ym) for w, x, y in zip(ws, xs, ys, strict=True))
            self._b = sxy / sxx
            self._a = ym - self._b * xm
        self.version += 1

    def to_host_ns(self, device_us: int) -> int:
        return round(self._y0 + self._a + self._b * (device_us * 1000.0 - self._x0))

    @property
    def drift_ppm(self) -> float:
        """How much faster the device clock runs than the host's, in parts per million."""
        return (1.0 / self._b - 1.0) * 1e6

    @property
    def offset_s(self) -> float | None:
        """Host monotonic time minus device time at the latest sync point."""
        if not self.points:
            return None
        last = self.points[-1].device_us
        return (self.to_host_ns(last) - last * 1000) / 1e9

    @property
    def best_rtt_us(self) -> float | None:
        return self._best_rtt_ns / 1e3 if self._best_rtt_ns is not None else None


# --- one connection -------------------------------------------------------------------------------
class _Session:
    """One opened port: its parser, clock, device info and the samples that came through it."""

    def __init__(self, number: int, port: Any) -> None:
        self.number = number
        self.port = port
        self.parser = frames.Parser()
        self.clock = ClockMap()
        self.info: dict[str, Any] = {}
        self.raw = bytearray()
        self.samples: list[tuple[int, int, int, int, int]] = []  # (device µs, mV, µA, µW, flags)
        self.next_seq = 0
        self.mapped: list[PowerSample] = []
        self.mapped_version = -1


def _close_quietly(port: Any) -> None:
    try:
        port.close()
    except Exception as exc:  # closing a port that vanished may fail; nothing is left to release
        log.debug("closing serial port: %s", exc)


class SerialPowerMonitor(PowerMonitor):
    """The power-monitor firmware on ``port``, sampling at ``rate_hz``; opening it connects,
    handshakes and syncs clocks (raising ``PowerSourceError``), then a reader thread runs until
    ``close``. ``timeout_s`` bounds the wait for the firmware's first answer; ``resync_s`` is the
    clock-sync interval; an unplugged device is looked for ``reconnect_attempts`` times,
    ``reconnect_delay_s`` apart."""

    def __init__(self, port: str, baud: int = DEFAULT_BAUD, rate_hz: int = DEFAULT_RATE_HZ, rail: str = DEFAULT_RAIL, *,
                 timeout_s: float = DEFAULT_TIMEOUT_S, resync_s: float = RESYNC_S,
                 reconnect_attempts: int = RECONNECT_ATTEMPTS, reconnect_delay_s: float = RECONNECT_DELAY_S) -> None:
        self.port = port
        self.baud = baud
        self.rate_hz = rate_hz
        self.timeout_s = timeout_s
        self.resync_s = resync_s
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_delay_s = reconnect_delay_s
        self._cond = threading.Condition(threading.RLock())
        self._write_lock = threading.Lock()
        self._closing = threading.Event()
        self._reader: threading.Thread | None = None
        self._sessions: list[_Session] = []
        self._session: _Session | None = None
        self._inbox: list[tuple[int, Any, int]] = []  # (frame type, decoded payload, host ns it arrived)
        self._token = random.getrandbits(32)
        self._started = False
        self._accepting = False
        self._accept_since_ns = 0
        self._last_sample_ns = 0
        self._stall_reported = False
        self._error: str | None = None
        self._lost_reason = ""
        self._lost_at = 0.0
        self._frames = self._dropped = self._restarts = self._malformed = 0
        self._device_errors = self._reconnects = 0
        self._last_device_error = ""
        self._connect()
        detail: dict[str, Any] = {"port": port, "baud": baud, **self._sessions[-1].info}
        warning = self._bandwidth_warning()
        if warning:
            log.warning(warning)
            detail["warning"] = warning
        self.info = SourceInfo(source="serial", rail=rail, measured=True, nominal_hz=float(rate_hz), detail=detail)
        self._reader = threading.Thread(target=self._run, name="power-serial", daemon=True)
        self._reader.start()

    # --- PowerMonitor -----------------------------------------------------------------------------
    def start(self) -> None:
        """START the stream; a failure is recorded in ``error`` (the run goes on without power)."""
        with self._cond:
            self._started = True
            session = self._session
        if session is not None:  # otherwise the reconnect handshake starts it
            try:
                self._begin_stream(session)
            except (OSError, PowerSourceError) as exc:
                self._error = f"could not start the power monitor on {self.port}: {exc}"
                log.warning(self._error)

    def stop(self) -> list[PowerSample]:
        """STOP the stream, sync the clocks once more (anchoring the drift fit at the run's end) and
        return every sample."""
        with self._cond:
            was_started, self._started = self._started, False
            session = self._session
        if was_started and session is not None:
            try:
                self._command(frames.encode(frames.STOP), frames.STOP)
                self._sync(session, RESYNC_PINGS)
            except (OSError, PowerSourceError) as exc:
                log.warning("stopping the power monitor on %s: %s", self.port, exc)
        with self._cond:
            self._accepting = False
        self.info.detail["link"] = self.stats()
        return self.samples()

    def samples(self) -> list[PowerSample]:
        with self._cond:
            out: list[PowerSample] = []
            for session in self._sessions:
                clock = session.clock
                if session.mapped_version != clock.version:
                    session.mapped, session.mapped_version = [], clock.version
                for device_us, mv, ua, uw, flags in session.samples[len(session.mapped):]:
                    session.mapped.append(PowerSample(t_ns=clock.to_host_ns(device_us), watts=uw / 1e6, volts=mv / 1e3,
                                                      amps=ua / 1e6, flags=_FLAGS[flags & 3]))
                out.extend(session.mapped)
            return out

    @property
    def error(self) -> str | None:
        return self._error

    def close(self) -> None:
        """Stop if needed, end the reader thread and close the port."""
        if self._started:
            self.stop()
        self._closing.set()
        with self._cond:
            session = self._session
            self._cond.notify_all()
        if session is not None:
            try:
                session.port.cancel_read()
            except Exception as exc:  # a port that vanished cannot be woken; the read times out instead
                log.debug("cancel_read: %s", exc)
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(5)
        with self._cond:
            session, self._session = self._session, None
        if session is not None:
            _close_quietly(session.port)

    def stats(self) -> dict[str, Any]:
        """Link statistics: samples received, dropped (sequence gaps) and corrupt (bad CRC), the
        clock fit of the current connection, reconnects and the achieved sample rate."""
        with self._cond:
            sessions = list(self._sessions)
            if self._session is not None and self._session not in sessions:
                sessions.append(self._session)
            clock = sessions[-1].clock if sessions else ClockMap()
            return {
                "port": self.port, "frames": self._frames, "dropped": self._dropped,
                "corrupt": sum(s.parser.bad_crc for s in sessions),
                "skipped_bytes": sum(s.parser.skipped_bytes for s in sessions),
                "malformed": self._malformed, "device_errors": self._device_errors,
                "last_device_error": self._last_device_error or None, "sequence_restarts": self._restarts,
                "reconnects": self._reconnects, "clock_offset_s": clock.offset_s, "clock_drift_ppm": clock.drift_ppm,
                "sync_rtt_us": clock.best_rtt_us, "sync_points": len(clock.points),
                "achieved_hz": _achieved_hz(sessions),
            }

    # --- connection -------------------------------------------------------------------------------
    def _open_port(self) -> Any:
        try:
            import serial
        except ImportError:
            raise PowerSourceError("pyserial not installed: pip install 'edgeperf[serial]'") from None
        try:
            return serial.Serial(self.port, self.baud, timeout=READ_TIMEOUT_S, write_timeout=WRITE_TIMEOUT_S, exclusive=True)
        except serial.SerialException as exc:
            raise port_error(exc, self.port) from exc
        except (OSError, ValueError) as exc:
            raise PowerSourceError(f"cannot open serial port {self.port}: {exc}") from exc

    def _connect(self) -> None:
        """Open the port and handshake; on success the connection becomes the current session."""
        port = self._open_port()
        session = _Session(len(self._sessions) + 1, port)
        with self._cond:
            self._session = session
            self._inbox.clear()
        try:
            self._handshake(session)
        except BaseException as exc:
            with self._cond:
                self._session = None
            _close_quietly(port)
            if isinstance(exc, OSError):  # the port failed mid-handshake
                raise PowerSourceError(f"serial port {self.port}: {exc}") from exc
            raise
        with self._cond:
            self._sessions.append(session)

    def _handshake(self, session: _Session) -> None:
        self._send(frames.encode(frames.STOP))  # quiet a device left streaming by an earlier host
        info = self._ask_info(self.timeout_s)
        if info is None:
            raise PowerSourceError(self._silence_reason(session))
        if info.get("protocol") != frames.PROTOCOL_VERSION:
            raise PowerSourceError(f"the power monitor on {self.port} speaks protocol {info.get('protocol')!r}, this host "
                                   f"protocol {frames.PROTOCOL_VERSION}: flash firmware/power-monitor from this edgeperf")
        status = self._command(frames.rate_command(self.rate_hz), frames.RATE)
        if status == frames.ACK_BAD_VALUE:
            raise PowerSourceError(f"the power monitor on {self.port} cannot sample at {self.rate_hz} Hz "
                                   f"(its firmware allows 1..{info.get('max_rate_hz', '?')} Hz): use serial:{self.port},rate=N")
        if status != frames.ACK_OK:
            detail = self._last_device_error or "no detail from the firmware; check the INA219's SDA/SCL, 3V3 and GND"
            raise PowerSourceError(f"the power monitor on {self.port} answers, but its sensor does not: {detail}")
        session.info = self._ask_info(REPLY_TIMEOUT_S) or info  # the ADC setting chosen for the rate
        self._sync(session, SYNC_PINGS)
        if not session.clock.points:
            raise PowerSourceError(f"the power monitor on {self.port} answers INFO but not PING: reflash firmware/power-monitor")
        if self._started:
            self._begin_stream(session)

    def _silence_reason(self, session: _Session) -> str:
        raw = bytes(session.raw)
        if any(marker in raw for marker in (b">>>", b"MicroPython", b"raw REPL")):
            with contextlib.suppress(OSError):
                self._send(b"\r\x02")  # our binary may have put the REPL into raw mode (0x01): leave it
            return (f"MicroPython answers on {self.port}, but not the power-monitor firmware: copy its files with mpremote "
                    "and reset the board (firmware/power-monitor/README.md)")
        return (f"no power monitor answers on {self.port}: is the firmware flashed? "
                f"(no INFO reply within {self.timeout_s:g} s; see firmware/power-monitor/README.md)")

    def _bandwidth_warning(self) -> str | None:
        """A USB-UART bridge carries baud/10 bytes a second; 25-byte frames at ``rate`` may not fit."""
        vid = _usb_vid(self.port)
        needed = self.rate_hz * frames.SAMPLE_FRAME_SIZE * 10
        if vid in BRIDGE_VIDS and needed > 0.9 * self.baud:
            return (f"{self.port} is a {BRIDGE_VIDS[vid]} USB-UART bridge at {self.baud} baud: {self.rate_hz} Hz needs "
                    f"{needed} baud, so samples will be dropped; use rate={int(0.9 * self.baud / 250)} "
                    "or a board with native USB")
        return None

    def _begin_stream(self, session: _Session) -> None:
        with self._cond:
            self._accepting = True
            self._accept_since_ns = time.monotonic_ns()
            self._stall_reported = False
            session.next_seq = 0
        status = self._command(frames.encode(frames.START), frames.START)
        if status != frames.ACK_OK:
            raise PowerSourceError(f"the power monitor refused START ({self._last_device_error or f'status {status}'})")

    # --- requests ---------------------------------------------------------------------------------
    def _send(self, frame: bytes) -> None:
        session = self._session
        if session is None:
            raise PowerSourceError(f"serial port {self.port} is not connected")
        with self._write_lock:
            session.port.write(frame)

    def _await(self, kind: int, match: Callable[[Any], bool] | None, timeout_s: float) -> tuple[Any, int] | None:
        """The first reply of ``kind`` that ``match``es, with the host ns it arrived; None on timeout.
        The reader thread (or ``open``, before there is one) pumps the port itself; other threads
        wait for the reader to deliver."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._cond:
                for i, (k, value, t_ns) in enumerate(self._inbox):
                    if k == kind and (match is None or match(value)):
                        del self._inbox[i]
                        return value, t_ns
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closing.is_set() or self._session is None:
                    return None
                if self._reader is not None and threading.current_thread() is not self._reader:
                    self._cond.wait(min(remaining, 0.05))
                    continue
            self._pump()

    def _ask_info(self, timeout_s: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            self._send(frames.encode(frames.INFO))
            got = self._await(frames.INFO_REPLY, None, min(INFO_RETRY_S, remaining))
            if got is None:
                continue
            try:
                info = json.loads(got[0].decode("utf-8"))
            except ValueError:
                info = None
            if not isinstance(info, dict):
                raise PowerSourceError(f"the power monitor on {self.port} sent an INFO reply that is not a JSON object: "
                                       f"{got[0][:60]!r}; reflash firmware/power-monitor")
            return info
        return None

    def _command(self, frame: bytes, command: int) -> int:
        """Send a command and return its ACK status; ``PowerSourceError`` when no ACK comes."""
        self._send(frame)
        got = self._await(frames.ACK, lambda v: v[0] == command, REPLY_TIMEOUT_S)
        if got is None:
            raise PowerSourceError(f"the power monitor on {self.port} did not acknowledge {frames.NAMES[command]} "
                                   f"within {REPLY_TIMEOUT_S:g} s")
        return got[0][1]

    def _sync(self, session: _Session, pings: int) -> None:
        """A burst of PINGs, one at a time; the one with the smallest round trip becomes a sync point.
        Where none came near the connection's best round trip, up to ``EXTRA_PINGS`` more are sent,
        stopping at the first that does: on a busy host one prompt PONG is worth the wait."""
        burst: list[SyncPoint] = []
        for sent in itertools.count(1):
            if sent > pings and (sent > pings + EXTRA_PINGS or any(session.clock.good_rtt(p.rtt_ns) for p in burst)):
                break
            with self._cond:
                self._token = (self._token + 1) % U32
                token = self._token
            t_send = time.monotonic_ns()
            self._send(frames.ping_command(token))
            got = self._await(frames.PONG, lambda v, token=token: v[0] == token, PING_TIMEOUT_S)
            if got is not None:
                burst.append(SyncPoint(got[0][1], t_send, got[1]))
        with self._cond:
            session.clock.add(burst)

    # --- the reader ---------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Read what the port has (blocking up to READ_TIMEOUT_S for the first byte) and dispatch it."""
        session = self._session
        if session is None:
            return
        data = session.port.read(session.port.in_waiting or 1)
        if data or session.parser.pending():
            self._dispatch(session, data, time.monotonic_ns())

    def _dispatch(self, session: _Session, data: bytes, t_ns: int) -> None:
        """Parse ``data`` and act on its frames; no data (the link went quiet for READ_TIMEOUT_S)
        gives up a partial frame, whose claimed length may have been noise."""
        with self._cond:
            if not session.info and len(session.raw) < RAW_KEEP:
                session.raw += data[:RAW_KEEP - len(session.raw)]
            for ftype, payload in session.parser.feed(data) if data else session.parser.flush():
                if ftype == frames.SAMPLE:
                    self._on_sample(session, payload, t_ns)
                elif ftype == frames.ERROR:
                    self._on_device_error(payload)
                else:
                    value = {frames.PONG: frames.unpack_pong, frames.ACK: frames.unpack_ack,
                             frames.INFO_REPLY: bytes}.get(ftype, lambda _p: None)(payload)
                    if value is None:
                        self._malformed += 1
                        continue
                    if ftype == frames.PONG:
                        value = (value[0], session.clock.unwrap(value[1]))
                    self._inbox.append((ftype, value, t_ns))
                    del self._inbox[:-INBOX_MAX]
            self._cond.notify_all()

    def _on_sample(self, session: _Session, payload: bytes, t_ns: int) -> None:
        fields = frames.unpack_sample(payload)
        if fields is None:
            self._malformed += 1
            return
        seq, t_us, mv, ua, uw, flags = fields
        device_us = session.clock.unwrap(t_us)  # always, so the unwrapping never misses a step
        if not self._accepting:
            return
        gap = (seq - session.next_seq) % U32
        if gap >= U32 // 2:  # the sequence went back: the firmware restarted its stream
            self._restarts += 1
        else:
            self._dropped += gap
        session.next_seq = (seq + 1) % U32
        session.samples.append((device_us, mv, ua, uw, flags))
        self._frames += 1
        self._last_sample_ns = t_ns

    def _on_device_error(self, payload: bytes) -> None:
        text = payload.decode("utf-8", "replace")
        self._device_errors += 1
        self._last_device_error = text
        log.warning("power monitor on %s: %s", self.port, text)
        if self._accepting:
            self._error = f"the power monitor on {self.port} reported: {text}"

    def _run(self) -> None:
        next_sync = time.monotonic() + self.resync_s
        while not self._closing.is_set():
            if self._session is None:
                if not self._reconnect():
                    return
                next_sync = time.monotonic() + self.resync_s
                continue
            try:
                self._pump()
                if time.monotonic() >= next_sync:
                    self._sync(self._session, RESYNC_PINGS)
                    next_sync = time.monotonic() + self.resync_s
                self._check_stall()
            except Exception as exc:  # whatever the port raised: the run goes on, the monitor reconnects
                if self._closing.is_set():
                    return
                self._lost(exc)

    def _check_stall(self) -> None:
        with self._cond:
            if not self._accepting or self._stall_reported or self._session is None:
                return
            quiet_s = (time.monotonic_ns() - max(self._last_sample_ns, self._accept_since_ns)) / 1e9
            if quiet_s > max(STALL_S, 20 / self.rate_hz):
                self._stall_reported = True
                self._error = f"no samples from the power monitor on {self.port} for {quiet_s:.1f} s while started"
                log.warning(self._error)

    def _lost(self, exc: BaseException) -> None:
        with self._cond:
            session, self._session = self._session, None
            self._lost_reason = str(exc) or type(exc).__name__
            self._lost_at = time.monotonic()
            self._error = f"serial port {self.port} lost ({self._lost_reason}); reconnecting"
            self._cond.notify_all()
        log.warning(self._error)
        if session is not None:
            _close_quietly(session.port)

    def _reconnect(self) -> bool:
        last: Exception | None = None
        for _ in range(self.reconnect_attempts):
            if self._closing.wait(self.reconnect_delay_s):
                return False
            try:
                self._connect()
            except Exception as exc:  # not there yet, busy, not answering: try again
                last = exc
                continue
            self._reconnects += 1
            self._error = (f"serial port {self.port} was lost ({self._lost_reason}) and reconnected after "
                           f"{time.monotonic() - self._lost_at:.1f} s; no power samples in between")
            log.warning(self._error)
            return True
        self._error = (f"serial port {self.port} lost ({self._lost_reason}); gave up after {self.reconnect_attempts} "
                       f"reconnect attempts (last: {last})")
        log.warning(self._error)
        return False


def _achieved_hz(sessions: list[_Session]) -> float | None:
    """Samples per second of device time, over stretches without a gap of more than 0.5 s (so the
    time between a stop and a start, or an unplug, does not count)."""
    count, span_us = 0, 0
    for session in sessions:
        times = [s[0] for s in session.samples]
        if not times:
            continue
        first = times[0]
        for a, b in itertools.pairwise(times):
            if b - a > 500_000:
                span_us += a - first
                first = b
            else:
                count += 1
        span_us += times[-1] - first
    return count / (span_us / 1e6) if span_us > 0 else None


def _usb_vid(port: str) -> int | None:
    real = os.path.realpath(port)
    return next((p.vid for p in _comports() if os.path.realpath(p.device) == real), None)


def port_error(exc: OSError, port: str) -> PowerSourceError:
    """One line naming the fix for an error opening ``port`` (pyserial puts the OS errno on it)."""
    code = exc.errno
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        others = candidates(_comports())
        hint = f"; ports that look like a power monitor: {', '.join(others)}" if others else ""
        return PowerSourceError(f"no serial port {port}: is the monitor plugged in? (ls /dev/ttyACM* /dev/ttyUSB* "
                                f"/dev/serial/by-id/){hint}")
    if code in (errno.EACCES, errno.EPERM):
        return PowerSourceError(f"permission denied on {port}: add the user to group dialout "
                                "(sudo usermod -aG dialout $USER) and log in again")
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
        return PowerSourceError(f"{port} is busy: another program has it open (mpremote, screen, a serial monitor, "
                                "ModemManager); close it first")
    return PowerSourceError(f"cannot open serial port {port}: {exc}")


# --- registry functions -------------------------------------------------------------------------------
def _comports() -> list[Any]:
    try:
        from serial.tools import list_ports
    except ImportError:
        return []
    return list(list_ports.comports())


def candidates(ports: Iterable[Any]) -> list[str]:
    """``"/dev/ttyACM0 (Raspberry Pi RP2040 2e8a:0005)"`` for each port whose USB vendor is a
    board the firmware runs on or a common USB-UART bridge; ``ports`` are pyserial ``ListPortInfo``."""
    found = []
    for p in ports:
        name = MONITOR_VIDS.get(p.vid) or BRIDGE_VIDS.get(p.vid)
        if name:
            found.append(f"{p.device} ({name} {p.vid:04x}:{(p.pid or 0):04x})")
    return found


def available() -> tuple[bool, str]:
    """Whether pyserial is installed and some port looks like a power monitor (no port is opened)."""
    try:
        from serial.tools import list_ports
    except ImportError:
        return False, "pyserial not installed: pip install 'edgeperf[serial]'"
    found = candidates(list_ports.comports())
    if not found:
        return False, ("no serial port looks like a power monitor (USB vendor 2e8a Raspberry Pi, 303a Espressif, or a "
                       "USB-UART bridge); plug it in, or name its port: serial:/dev/ttyACM0")
    return True, "candidates: " + ", ".join(found) + " (give one: serial:/dev/ttyACM0)"


def parse_options(options: dict[str, str]) -> dict[str, Any]:
    """Validate ``serial:`` options; each error names the option and what it takes."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise PowerSourceError(f"unknown serial option {unknown[0]!r}; use {', '.join(OPTIONS)} "
                               "(e.g. serial:/dev/ttyACM0,rate=1000)")
    port = options.get("port", "").strip()
    if not port:
        raise PowerSourceError(PORT_HINT)

    def number(key: str, default: str, kind: Callable[[str], Any], ok: Callable[[Any], bool], want: str) -> Any:
        raw = options.get(key, default)
        try:
            value = kind(raw)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise PowerSourceError(f"bad serial option {key}={raw!r}: {want}")
        return value

    return {
        "port": port,
        "baud": number("baud", str(DEFAULT_BAUD), int, lambda v: v > 0, "a baud rate such as 115200"),
        "rate": number("rate", str(DEFAULT_RATE_HZ), int, lambda v: 1 <= v <= 0xFFFF, "samples per second, e.g. 1000"),
        "timeout": number("timeout", str(DEFAULT_TIMEOUT_S), float, lambda v: v > 0, "seconds to wait for the firmware"),
        "rail": options.get("rail", DEFAULT_RAIL).strip() or DEFAULT_RAIL,
    }


def open(options: dict[str, str]) -> SerialPowerMonitor:
    """Open the power monitor on ``options["port"]`` (``serial:/dev/ttyACM0,rate=1000,rail=...``)."""
    s = parse_options(options)
    return SerialPowerMonitor(s["port"], baud=s["baud"], rate_hz=s["rate"], rail=s["rail"], timeout_s=s["timeout"])
