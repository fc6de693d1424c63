"""The power monitor's wire protocol: binary frames over a serial link, shared by firmware and host.

The host driver (``devices.power.serial_monitor``) imports this module, and the power-monitor
firmware copies the very same file onto the RP2040/ESP32 (``mpremote cp``), so the two ends
cannot disagree about a byte. That is why the file keeps to the subset MicroPython and CPython
share: no ``__future__`` imports, no dataclasses, ``typing`` or ``enum``, no f-strings,
annotations with builtins only, and ``struct`` as the only import. MicroPython's ``struct`` does
not range-check (it truncates), so every packer clamps first: both ends then behave alike.

A frame is::

    SYNC (A5 5A) | TYPE (1) | LEN (1) | PAYLOAD (LEN <= 255) | CRC16 (2, big-endian)

with CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF, no reflection, no final XOR) over
TYPE, LEN and PAYLOAD. Multi-byte fields are big-endian. Why binary and not CSV lines: a 1 kHz
stream is 25 bytes a sample instead of ~40, a damaged sample is detected (CRC) instead of parsed
into a plausible wrong number, and a lost one is counted (sequence number) instead of silently
closing the gap. The sync word lets a reader that starts mid-stream, or after line noise, find
the next frame; the CRC tells a real frame from a sync pattern that happens to sit in a payload.

Host -> device commands have types below 0x80, device -> host frames 0x80 and above:

- INFO -> INFO_REPLY: UTF-8 JSON (firmware version, protocol version, board, sensor config, rate).
- START, STOP -> ACK(command type u8, status u8). START resets the sequence number to 0.
- RATE (u16 Hz) -> ACK.
- PING (host token u32) -> PONG (token u32, device time us u32): the clock-sync exchange.
- SAMPLE (device -> host, unsolicited while started): seq u32, device time us u32 (wraps after
  2^32 us, 71.6 min), bus mV u16, current uA i32, power uW i32 (signed like the current: reverse
  flow is negative), flags u8 (bit 0 overflow, bit 1 recalibrated).
- ERROR (device -> host, unsolicited): UTF-8 text, e.g. an I2C failure or an unknown command.
"""

import struct

PROTOCOL_VERSION = 1

SYNC = b"\xa5\x5a"
SYNC0 = 0xA5
HEADER_SIZE = 4  # SYNC, TYPE, LEN
CRC_SIZE = 2
MAX_PAYLOAD = 255
OVERHEAD = HEADER_SIZE + CRC_SIZE

# --- frame types: host -> device (below 0x80) -------------------------------------------------
INFO = 0x01
START = 0x02
STOP = 0x03
RATE = 0x04
PING = 0x05
# --- device -> host (0x80 and above) ----------------------------------------------------------
SAMPLE = 0x80
INFO_REPLY = 0x81
ACK = 0x82
PONG = 0x85
ERROR = 0x8F

SAMPLE_FORMAT = ">IIHiiB"
SAMPLE_SIZE = 19
SAMPLE_FRAME_SIZE = SAMPLE_SIZE + OVERHEAD  # 25 bytes: 25 kB/s at 1 kHz

# payload length by type; -1: any (UTF-8 text)
LENGTHS = {INFO: 0, START: 0, STOP: 0, RATE: 2, PING: 4, SAMPLE: SAMPLE_SIZE, INFO_REPLY: -1, ACK: 2, PONG: 8, ERROR: -1}
NAMES = {INFO: "INFO", START: "START", STOP: "STOP", RATE: "RATE", PING: "PING", SAMPLE: "SAMPLE",
         INFO_REPLY: "INFO_REPLY", ACK: "ACK", PONG: "PONG", ERROR: "ERROR"}

# ACK status byte
ACK_OK = 0
ACK_BAD_LENGTH = 1  # the command's payload has the wrong size
ACK_BAD_VALUE = 2  # e.g. a RATE outside what the firmware can sample
ACK_SENSOR_ERROR = 3  # the sensor did not answer or did not keep its configuration

# SAMPLE flags
FLAG_OVERFLOW = 1  # OVF, or the shunt reading at the PGA's full scale: not to be trusted
FLAG_RECALIBRATED = 2  # the chip had reset (brown-out); this reading predates the re-written calibration

U16_MAX = 0xFFFF
U32_MASK = 0xFFFFFFFF
I32_MIN = -0x80000000
I32_MAX = 0x7FFFFFFF


def _crc_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()  # one lookup a byte: a bitwise loop is 8x slower on a microcontroller


def crc16(data: bytes, start: int = 0, end: int = -1) -> int:
    """CRC-16/CCITT-FALSE of ``data[start:end]`` (``end`` -1: to the end), without slicing."""
    if end < 0:
        end = len(data)
    crc = 0xFFFF
    table = _CRC_TABLE
    for i in range(start, end):
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ data[i]) & 0xFF]
    return crc


def encode(ftype: int, payload: bytes = b"") -> bytes:
    """One complete frame; raises ``ValueError`` for a type outside a byte or a payload over 255 bytes."""
    if not 0 <= ftype <= 0xFF:
        raise ValueError("frame type must be 0..255, not " + str(ftype))
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("frame payload is " + str(len(payload)) + " bytes; at most 255 fit")
    body = bytes([ftype, len(payload)]) + bytes(payload)
    crc = crc16(body)
    return SYNC + body + bytes([crc >> 8, crc & 0xFF])


def _clamp(value: int, low: int, high: int) -> int:
    return low if value < low else high if value > high else value


# --- payloads -----------------------------------------------------------------------------------
def pack_sample(seq: int, t_us: int, bus_mv: int, current_ua: int, power_uw: int, flags: int = 0) -> bytes:
    """SAMPLE payload. ``seq`` and ``t_us`` wrap at 2^32; readings are clamped to their fields."""
    return struct.pack(SAMPLE_FORMAT, seq & U32_MASK, t_us & U32_MASK, _clamp(bus_mv, 0, U16_MAX),
                       _clamp(current_ua, I32_MIN, I32_MAX), _clamp(power_uw, I32_MIN, I32_MAX), flags & 0xFF)


def unpack_sample(payload: bytes):
    """``(seq, t_us, bus_mv, current_ua, power_uw, flags)``, or None for a payload of the wrong size."""
    if len(payload) != SAMPLE_SIZE:
        return None
    return struct.unpack(SAMPLE_FORMAT, payload)


def sample_frame(seq: int, t_us: int, bus_mv: int, current_ua: int, power_uw: int, flags: int = 0) -> bytes:
    """A complete SAMPLE frame."""
    return encode(SAMPLE, pack_sample(seq, t_us, bus_mv, current_ua, power_uw, flags))


def rate_command(rate_hz: int) -> bytes:
    """A RATE frame; the firmware answers ACK_BAD_VALUE for a rate it cannot sample."""
    return encode(RATE, struct.pack(">H", _clamp(rate_hz, 0, U16_MAX)))


def unpack_rate(payload: bytes):
    """The rate in Hz, or None for a payload of the wrong size."""
    if len(payload) != 2:
        return None
    return struct.unpack(">H", payload)[0]


def ping_command(token: int) -> bytes:
    """A PING frame carrying the host's token (echoed in the PONG, so replies cannot be mismatched)."""
    return encode(PING, struct.pack(">I", token & U32_MASK))


def unpack_ping(payload: bytes):
    """The token, or None for a payload of the wrong size."""
    if len(payload) != 4:
        return None
    return struct.unpack(">I", payload)[0]


def pong_frame(token: int, t_us: int) -> bytes:
    """A PONG frame: the PING's token and the device clock (us, u32) when the PING was handled."""
    return encode(PONG, struct.pack(">II", token & U32_MASK, t_us & U32_MASK))


def unpack_pong(payload: bytes):
    """``(token, t_us)``, or None for a payload of the wrong size."""
    if len(payload) != 8:
        return None
    return struct.unpack(">II", payload)


def ack_frame(command: int, status: int = ACK_OK) -> bytes:
    """An ACK frame for ``command`` with a status byte (ACK_OK, ACK_BAD_LENGTH, ...)."""
    return encode(ACK, bytes([command & 0xFF, status & 0xFF]))


def unpack_ack(payload: bytes):
    """``(command, status)``, or None for a payload of the wrong size."""
    if len(payload) != 2:
        return None
    return payload[0], payload[1]


def text_frame(ftype: int, text: str) -> bytes:
    """An INFO_REPLY or ERROR frame: UTF-8 text cut to the 255-byte payload limit."""
    data = text.encode("utf-8")
    if len(data) > MAX_PAYLOAD:
        data = data[:MAX_PAYLOAD]
    return encode(ftype, data)


# --- the stream reader --------------------------------------------------------------------------
class Parser:
    """Frames out of a byte stream fed in arbitrary pieces; never raises on bad input.

    ``feed(data)`` returns the complete frames as ``(type, payload)`` pairs. Bytes before a sync
    word are skipped. A header is only believed when its TYPE is one of the protocol's and its
    LEN fits that type (fixed for every type but the two text replies), so most sync patterns
    that noise or a payload happen to contain are rejected at once instead of making the parser
    wait for up to 255 bytes. A frame whose CRC does not match is counted in ``bad_crc`` and the
    search resumes one byte after its sync word, not after its claimed length, so a corrupted LEN
    cannot swallow the good frames behind it; a false header found inside an already-counted bad
    frame does not count again (``bad_crc`` counts damaged stretches: one hit of line noise, one
    count). ``skipped_bytes`` counts every byte that was not part of a good frame. A false text
    header can still hold the parser waiting; when the link has gone quiet, ``flush()`` gives it up.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._bad_end = 0  # buffer index up to which bytes belong to an already-counted bad frame
        self.frames = 0
        self.bad_crc = 0
        self.skipped_bytes = 0

    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame (0 when between frames)."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget a partial frame (counted as skipped), e.g. when the link is reopened."""
        self.skipped_bytes += len(self._buf)
        self._buf = b""
        self._bad_end = 0

    def flush(self) -> list:
        """Give up waiting for the rest of the frame in progress (its LEN may be noise): skip its
        first byte and parse what follows it. Call when no byte has come for a while."""
        if not self._buf:
            return []
        rest = self._buf[1:]
        self._buf = b""
        self._bad_end = 0
        self.skipped_bytes += 1
        return self.feed(rest)

    def feed(self, data: bytes) -> list:
        buf = self._buf + bytes(data) if self._buf else bytes(data)
        out = []
        n = len(buf)
        i = 0
        while i < n:
            j = buf.find(SYNC, i)
            if j < 0:
                keep = n - 1 if buf[n - 1] == SYNC0 else n  # a lone A5 may be the first half of a sync
                self.skipped_bytes += keep - i
                i = keep
                break
            self.skipped_bytes += j - i
            i = j
            if n - i < HEADER_SIZE:
                break
            want = LENGTHS.get(buf[i + 2], -2)
            if want == -2 or (want >= 0 and buf[i + 3] != want):  # not a header: a sync pattern in noise
                self.skipped_bytes += 1
                i += 1
                continue
            end = i + HEADER_SIZE + buf[i + 3] + CRC_SIZE
            if end > n:
                break
            if crc16(buf, i + 2, end - CRC_SIZE) == (buf[end - 2] << 8 | buf[end - 1]):
                out.append((buf[i + 2], buf[i + HEADER_SIZE:end - CRC_SIZE]))
                self.frames += 1
                i = end
            else:
                if i >= self._bad_end:
                    self.bad_crc += 1
                if end > self._bad_end:
                    self._bad_end = end
                self.skipped_bytes += 1
                i += 1
        self._buf = buf[i:]
        self._bad_end = self._bad_end - i if self._bad_end > i else 0
        return out
