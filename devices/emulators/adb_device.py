"""An Android phone's adbd over TCP, without the phone: for tests that drive a device with the
real ``adb`` client (``adb connect 127.0.0.1:PORT``, then ``shell``, ``push``, ``pull``,
``get-state``).

What is modelled, and from which AOSP sources (``system/core/adb/``, now
``packages/modules/adb/``):

- The transport (``protocol.txt``, ``adb.h``, ``adb.cpp`` handle_packet, ``transport.cpp``):
  messages of a 24-byte header of six little-endian uint32 (command, arg0, arg1, data_length,
  data_check, magic = command ^ 0xffffffff) and a payload. A bad magic or an oversized payload
  closes the connection. The host's CNXN is answered with CNXN(version, max_payload, banner):
  version is the lower of the host's and ``A_VERSION`` 0x01000001, max_payload the lower of the
  host's and ``MAX_PAYLOAD`` (1 MiB). Until a version is agreed (the transport starts at
  ``A_VERSION_MIN``) payloads carry their byte sum — adb 29's own CNXN does — and a wrong one closes
  the connection; from 0x01000001 on (``A_VERSION_SKIP_CHECKSUM``) the device sends 0 and checks
  nothing. Messages before CNXN are ignored. No AUTH is asked (an ``ro.adb.secure=0`` build).
- The banner (``adb.cpp`` get_connection_string): ``device::ro.product.name=…;ro.product.model=…;
  ro.product.device=…;features=…``. The features advertised are only ``fixed_push_mkdir`` (a SEND
  creates missing parent folders, as ``secure_mkdirs`` does) — none of ``shell_v2``, ``stat_v2``,
  ``ls_v2``, ``sendrecv_v2``, so the client uses the legacy raw ``shell:`` service (stdout and
  stderr in one byte stream, ended by the stream's close, no exit status) and sync v1.
- Streams (``protocol.txt`` OPEN/OKAY/WRTE/CLSE, ``sockets.cpp``): OPEN(host-id, 0, "service\\0")
  gets OKAY(device-id, host-id), which also lets the device write at once; after every WRTE the
  writer waits for the peer's OKAY; every WRTE received is acknowledged with OKAY; an unknown
  service is refused with CLSE(0, host-id).
- ``sync:`` (``SYNC.TXT``, ``file_sync_protocol.h``, ``daemon/file_sync_service.cpp``), v1 only:
  STAT (lstat: mode, size, mtime; all zero when missing; a trailing ``/`` is kept, so the client's
  STAT of ``link/`` follows the link as on Linux), LIST (DENT per entry, ``.`` and ``..`` included,
  then DONE), SEND ("path,mode"; a regular file or link there is unlinked first; open with O_EXCL,
  parents made on ENOENT; the user permission bits copied to group and other; DATA chunks of at
  most 64 KiB; DONE carrying the mtime; OKAY — or FAIL "couldn't create file: …" / "secure_mkdirs
  failed: …", then the DATA drained to DONE, the partial file removed and the session ended), RECV
  (DATA chunks of 64 KiB - 8, then DONE; or FAIL "open failed: No such file or directory"), QUIT;
  a path over 1024 bytes FAILs "path too long". A connection lost mid-SEND removes the partial file.
- ``shell:CMD`` and ``exec:CMD``: not ``/bin/sh`` on the host but a small interpreter with the
  parts of Android's mksh and toybox a bridge uses: words with '…', "…" and \\ quoting; ``$?``;
  lists joined by ``;``, ``&&``, ``||`` and newlines; redirections ``>``, ``>>``, ``2>`` and
  ``N>&M``; the builtins ``echo``, ``true``, ``false``, ``exit``; the programs ``getprop`` (all
  properties as ``[key]: [value]``, or one value), ``cat``, ``ls``, ``mkdir``, ``rm``, ``chmod``
  and ``sleep``, with toybox's "NAME: PATH: strerror" errors. A command that is not found prints
  mksh's ``/system/bin/sh: NAME: inaccessible or not found`` (``exec.c``, ``sh.h``
  Tinacc_not_found) with status 127. Pipes, ``&`` and anything else unsupported print an
  ``adb emulator: … not supported`` line with status 2, so a test sees it instead of a silent
  wrong answer.
- Extra on-device programs (``commands``): Python callables ``(argv, device) -> (stdout, status)``
  registered by name (found on the PATH, as ``/system/bin`` programs are) or by absolute path. One
  called by path runs only if that path is a file under ``root`` with an execute bit, else
  mksh's 127 "inaccessible or not found" or 126 "can't execute: Permission denied" — so a binary
  missing from the phone, or pushed without ``chmod``, fails as it would. An executable file
  with no callable registered fails with 126 "can't execute: Exec format error".

The device's file system is the folder ``root``: ``/data/local/tmp/x`` is ``root/data/local/tmp/x``.
A path that would leave ``root`` (through a symlink) fails with "Permission denied".

``unplug()`` drops every connection at once and refuses new ones (the listening socket is closed)
until ``replug()``, which listens on the same port again. What adb 29 then does is its own: the
transport shows ``offline``, a running ``adb shell`` ends (exit status 0, output cut short), the
server retries the device by itself only later (it stayed offline for the 10 s a test waited),
and ``adb connect`` answers "already connected" until ``adb disconnect``.

Nothing here was captured from a real phone: every reply is built from the sources above.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import selectors
import shutil
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["AdbDevice", "Program"]

# adb.h
A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_AUTH = 0x48545541
A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001
A_VERSION = 0x01000001
MAX_PAYLOAD_V1 = 4 * 1024
MAX_PAYLOAD = 1024 * 1024
_COMMANDS = {A_SYNC, A_CNXN, A_OPEN, A_OKAY, A_CLSE, A_WRTE, A_AUTH}
_HEADER = struct.Struct("<6I")

# file_sync_protocol.h
SYNC_DATA_MAX = 64 * 1024
_SYNC_PATH_MAX = 1024
FEATURES = ("fixed_push_mkdir",)

Program = Callable[[list[str], "AdbDevice"], tuple[bytes, int]]


def _sync_id(name: bytes) -> int:
    return struct.unpack("<I", name)[0]


ID_LSTAT_V1, ID_LIST, ID_SEND, ID_RECV, ID_DENT, ID_DONE, ID_DATA, ID_OKAY, ID_FAIL, ID_QUIT = (
    _sync_id(n) for n in (b"STAT", b"LIST", b"SEND", b"RECV", b"DENT", b"DONE", b"DATA", b"OKAY", b"FAIL", b"QUIT")
)


class _Closed(Exception):
    """The stream or the whole connection is gone."""


class _Stream:
    """One adb stream on the device's side: bytes in from WRTE, bytes out as WRTE, one at a time."""

    def __init__(self, conn: _Connection, local_id: int, remote_id: int) -> None:
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id
        self._cond = threading.Condition()
        self._inbox = bytearray()
        self._can_write = True  # "An OPEN message also implies a READY message sent at the same time."
        self.closed = False

    # called from the connection's reader thread
    def feed(self, data: bytes) -> None:
        with self._cond:
            self._inbox += data
            self._cond.notify_all()

    def ready(self) -> None:
        with self._cond:
            self._can_write = True
            self._cond.notify_all()

    def drop(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    # called from the service's thread
    def read_exact(self, n: int) -> bytes:
        with self._cond:
            while len(self._inbox) < n:
                if self.closed:
                    raise _Closed
                self._cond.wait(0.5)
            out = bytes(self._inbox[:n])
            del self._inbox[:n]
            return out

    def write(self, data: bytes) -> None:
        for start in range(0, len(data), self.conn.max_payload):
            chunk = data[start : start + self.conn.max_payload]
            with self._cond:
                while not self._can_write:
                    if self.closed:
                        raise _Closed
                    self._cond.wait(0.5)
                if self.closed:
                    raise _Closed
                self._can_write = False
            self.conn.send(A_WRTE, self.local_id, self.remote_id, chunk)

    def close(self) -> None:
        with self._cond:
            was_closed, self.closed = self.closed, True
            self._cond.notify_all()
        self.conn.forget(self.local_id)
        if not was_closed:
            with contextlib.suppress(_Closed):
                self.conn.send(A_CLSE, self.local_id, self.remote_id, b"")


class _Connection:
    """One TCP connection from an adb server: the transport's packet loop and its streams."""

    def __init__(self, device: AdbDevice, sock: socket.socket) -> None:
        self.device, self.sock = device, sock
        self.version = A_VERSION_MIN
        self.max_payload = MAX_PAYLOAD_V1
        self.online = False
        self._send_lock = threading.Lock()
        self._streams: dict[int, _Stream] = {}
        self._streams_lock = threading.Lock()
        self._next_id = 1
        self.dead = False

    def send(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        check = 0 if self.version >= A_VERSION_SKIP_CHECKSUM else sum(data) & 0xFFFFFFFF
        header = _HEADER.pack(command, arg0, arg1, len(data), check, command ^ 0xFFFFFFFF)
        with self._send_lock:
            if self.dead:
                raise _Closed
            try:
                self.sock.sendall(header + data)
            except OSError as exc:
                raise _Closed from exc

    def forget(self, local_id: int) -> None:
        with self._streams_lock:
            self._streams.pop(local_id, None)

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise _Closed
            buf += chunk
        return bytes(buf)

    def kill(self) -> None:
        self.dead = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        with self._streams_lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.drop()

    def run(self) -> None:
        try:
            while True:
                command, arg0, arg1, length, check, magic = _HEADER.unpack(self._recv_exact(_HEADER.size))
                if magic != command ^ 0xFFFFFFFF or command not in _COMMANDS or length > MAX_PAYLOAD:
                    return  # "Receipt of an invalid message header ... MUST result in the closing"
                data = self._recv_exact(length) if length else b""
                # the host's own CNXN goes out before any version is agreed, so it carries the sum
                if self.version < A_VERSION_SKIP_CHECKSUM and check != sum(data) & 0xFFFFFFFF:
                    return  # a corrupt payload closes the connection too
                self._handle(command, arg0, arg1, data)
        except (_Closed, OSError):
            return
        finally:
            self.kill()
            self.device._forget(self)

    def _handle(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == A_CNXN:
            if arg0 < A_VERSION_MIN:
                raise _Closed
            self.version = min(arg0, A_VERSION)
            self.max_payload = min(arg1, MAX_PAYLOAD)
            self.online = True
            self.send(A_CNXN, self.version, self.max_payload, self.device.banner().encode())
            return
        if not self.online:
            return  # "Any messages received before a CONNECT message MUST be ignored."
        if command == A_OPEN:
            self._open(arg0, data.split(b"\0", 1)[0].decode("utf-8", "replace"))
            return
        with self._streams_lock:
            stream = self._streams.get(arg1)
        if stream is None:
            return  # a message for a stream that is gone is ignored
        if command == A_OKAY:
            stream.ready()
        elif command == A_WRTE:
            stream.feed(data)
            self.send(A_OKAY, stream.local_id, stream.remote_id, b"")
        elif command == A_CLSE:
            self.forget(stream.local_id)
            stream.drop()

    def _open(self, remote_id: int, service: str) -> None:
        if remote_id == 0:
            return
        if service.startswith(("shell:", "exec:")) and service.split(":", 1)[1].strip():
            target: Callable[[_Stream], None] = lambda s: _shell_service(s, service.split(":", 1)[1])  # noqa: E731
        elif service == "sync:":
            target = _sync_service
        else:
            # an interactive shell (a pty), shell_v2, reverse, root... are not modelled: refused
            self.send(A_CLSE, 0, remote_id, b"")
            return
        with self._streams_lock:
            local_id = self._next_id
            self._next_id += 1
            stream = _Stream(self, local_id, remote_id)
            self._streams[local_id] = stream
        self.send(A_OKAY, local_id, remote_id, b"")

        def serve() -> None:
            try:
                target(stream)
            except (_Closed, OSError):
                pass
            finally:
                stream.close()

        threading.Thread(target=serve, name=f"adb-emulator-{service[:20]}", daemon=True).start()


# --- sync: -------------------------------------------------------------------------------------


def _sync_fail(stream: _Stream, reason: str) -> None:
    msg = reason.encode()
    stream.write(struct.pack("<II", ID_FAIL, len(msg)) + msg)


def _sync_service(stream: _Stream) -> None:
    device = stream.conn.device
    while True:
        ident, length = struct.unpack("<II", stream.read_exact(8))
        if length > _SYNC_PATH_MAX:
            _sync_fail(stream, "path too long")
            return
        name = stream.read_exact(length).decode("utf-8", "surrogateescape")
        if ident == ID_LSTAT_V1:
            mode = size = mtime = 0
            with contextlib.suppress(OSError):
                st = os.lstat(device.host_path(name))
                mode, size, mtime = st.st_mode, st.st_size, int(st.st_mtime)
            stream.write(struct.pack("<IIII", ID_LSTAT_V1, mode, size & 0xFFFFFFFF, mtime & 0xFFFFFFFF))
        elif ident == ID_LIST:
            out = bytearray()
            with contextlib.suppress(OSError):
                host = device.host_path(name)
                for entry in [".", "..", *os.listdir(host)]:
                    try:
                        st = os.lstat(os.path.join(host, entry))
                    except OSError:
                        continue
                    raw = entry.encode("utf-8", "surrogateescape")
                    out += struct.pack("<IIIII", ID_DENT, st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(raw))
                    out += raw
            out += struct.pack("<IIIII", ID_DONE, 0, 0, 0, 0)
            stream.write(bytes(out))
        elif ident == ID_SEND:
            if not _sync_send(stream, name):
                return
        elif ident == ID_RECV:
            if not _sync_recv(stream, name):
                return
        elif ident == ID_QUIT:
            return
        else:
            _sync_fail(stream, f"unknown command {ident:08x}")
            return


def _sync_send(stream: _Stream, spec: str) -> bool:
    """do_send_v1 → send_impl → handle_send_file(_uncompressed), in their order."""
    device = stream.conn.device
    path, comma, mode_text = spec.rpartition(",")
    if not comma:
        _sync_fail(stream, "missing , in ID_SEND_V1")
        return False
    try:
        mode = int(mode_text, 0)
    except ValueError:
        _sync_fail(stream, "bad mode")
        return False
    if stat.S_ISLNK(mode):
        _sync_fail(stream, "adb emulator: pushing a symlink is not supported")
        return False
    # "Copy user permission bits to "group" and "other" permissions."
    mode &= 0o777
    mode |= (mode >> 3) & 0o070
    mode |= (mode >> 3) & 0o007
    try:
        host = device.host_path(path)
    except OSError as exc:
        _sync_fail(stream, f"couldn't create file: {exc.strerror}")
        return _drain_send(stream, None)
    try:
        st = os.lstat(host)
        do_unlink = stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)
    except OSError:
        do_unlink = True
    if do_unlink:
        with contextlib.suppress(OSError):
            os.unlink(host)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        try:
            fd = os.open(host, flags, mode)
        except FileNotFoundError:
            try:
                os.makedirs(os.path.dirname(host), exist_ok=True)
            except OSError as exc:
                _sync_fail(stream, f"secure_mkdirs failed: {exc.strerror}")
                return _drain_send(stream, host if do_unlink else None)
            fd = os.open(host, flags, mode)
        except FileExistsError:
            fd = os.open(host, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        _sync_fail(stream, f"couldn't create file: {exc.strerror}")
        return _drain_send(stream, host if do_unlink else None)
    os.fchmod(fd, mode | 0o600)  # the host's owner keeps rw so the test can clean up
    with os.fdopen(fd, "wb") as handle:
        try:
            while True:
                ident, size = struct.unpack("<II", stream.read_exact(8))
                if ident == ID_DONE:
                    timestamp = size
                    break
                if ident != ID_DATA:
                    _sync_fail(stream, "invalid data message")
                    return _drain_send(stream, host if do_unlink else None)
                if size > SYNC_DATA_MAX:
                    _sync_fail(stream, "oversize data message")
                    return _drain_send(stream, host if do_unlink else None)
                handle.write(stream.read_exact(size))
        except _Closed:
            handle.close()
            if do_unlink:
                with contextlib.suppress(OSError):
                    os.unlink(host)
            raise
    stream.write(struct.pack("<II", ID_OKAY, 0))
    os.utime(host, (timestamp, timestamp))
    return True


def _drain_send(stream: _Stream, unlink: str | None) -> bool:
    """handle_send_file's fail: read and throw away DATA until DONE, remove the file, end the session."""
    with contextlib.suppress(_Closed):
        while True:
            ident, size = struct.unpack("<II", stream.read_exact(8))
            if ident != ID_DATA or size > SYNC_DATA_MAX:
                break
            stream.read_exact(size)
    if unlink is not None:
        with contextlib.suppress(OSError):
            os.unlink(unlink)
    return False


def _sync_recv(stream: _Stream, path: str) -> bool:
    device = stream.conn.device
    try:
        handle = open(device.host_path(path), "rb")  # noqa: SIM115
    except OSError as exc:
        _sync_fail(stream, f"open failed: {exc.strerror}")
        return False
    with handle:
        while True:
            try:
                chunk = handle.read(SYNC_DATA_MAX - 8)
            except OSError as exc:
                _sync_fail(stream, f"read failed: {exc.strerror}")
                return False
            if not chunk:
                break
            stream.write(struct.pack("<II", ID_DATA, len(chunk)) + chunk)
    stream.write(struct.pack("<II", ID_DONE, 0))
    return True


# --- shell: ------------------------------------------------------------------------------------

SH = "/system/bin/sh"


class _Unsupported(Exception):
    pass


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def _tokenize(text: str) -> list[tuple[str, object]]:
    """Words (lists of (text, expands) parts) and operators, as mksh splits a command line."""
    tokens: list[tuple[str, object]] = []
    parts: list[tuple[str, bool]] = []
    in_word = False
    i, n = 0, len(text)

    def end_word() -> None:
        nonlocal parts, in_word
        if in_word:
            tokens.append(("word", parts))
        parts, in_word = [], False

    while i < n:
        c = text[i]
        if c in " \t":
            end_word()
            i += 1
        elif c == "#" and not in_word:
            while i < n and text[i] != "\n":
                i += 1
        elif c == "\n" or c == ";":
            end_word()
            tokens.append(("op", ";"))
            i += 1
        elif c in "&|":
            end_word()
            if text[i : i + 2] in ("&&", "||"):
                tokens.append(("op", text[i : i + 2]))
                i += 2
            else:
                tokens.append(("op", c))
                i += 1
        elif c in "<>":
            # a redirection; a lone digit word just before it is its file descriptor
            fd = None
            if in_word and len(parts) == 1 and parts[0][1] and parts[0][0].isdigit() and len(parts[0][0]) == 1:
                fd = int(parts[0][0])
                parts, in_word = [], False
            end_word()
            if c == "<":
                raise _Unsupported("input redirection")
            op = ">>" if text[i : i + 2] == ">>" else ">"
            i += len(op)
            if text[i : i + 1] == "&":
                j = i + 1
                while j < n and text[j].isdigit():
                    j += 1
                if j == i + 1:
                    raise _Unsupported("redirection >&")
                tokens.append(("dup", (1 if fd is None else fd, int(text[i + 1 : j]))))
                i = j
            else:
                tokens.append(("redir", (1 if fd is None else fd, op)))
        elif c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise SyntaxError("unterminated quoted string")
            parts.append((text[i + 1 : j], False))
            in_word = True
            i = j + 1
        elif c == '"':
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise SyntaxError("unterminated quoted string")
                d = text[i]
                if d == '"':
                    i += 1
                    break
                if d == "\\" and i + 1 < n and text[i + 1] in '$`"\\\n':
                    if buf:
                        parts.append(("".join(buf), True))
                        buf = []
                    parts.append((text[i + 1], False))
                    i += 2
                    continue
                if d == "`":
                    raise _Unsupported("command substitution")
                buf.append(d)
                i += 1
            parts.append(("".join(buf), True))
            in_word = True
        elif c == "\\":
            if i + 1 < n:
                parts.append((text[i + 1], False))
            i += 2
            in_word = True
        elif c == "`" or text.startswith("$(", i):
            raise _Unsupported("command substitution")
        else:
            j = i
            while j < n and text[j] not in " \t\n;&|<>'\"\\`#" and not text.startswith("$(", j):
                j += 1
            parts.append((text[i:j], True))
            in_word = True
            i = j
    end_word()
    return tokens


def _expand(parts: list[tuple[str, bool]], status: int) -> str:
    out = []
    for text, expands in parts:
        if expands and "$" in text:
            if "${" in text or any(text[k + 1 : k + 2] not in ("?", "") for k, ch in enumerate(text) if ch == "$"):
                raise _Unsupported("parameter expansion other than $?")
            text = text.replace("$?", str(status))
        out.append(text)
    return "".join(out)


class _Shell:
    def __init__(self, device: AdbDevice, emit: Callable[[bytes], None]) -> None:
        self.device, self.emit = device, emit
        self.status = 0

    def run(self, text: str) -> None:
        try:
            tokens = _tokenize(text)
        except SyntaxError as exc:
            self.emit(f"{SH}: syntax error: {exc}\n".encode())
            self.status = 1
            return
        except _Unsupported as exc:
            self.emit(f"adb emulator: {exc} is not supported\n".encode())
            self.status = 2
            return
        # split into simple commands joined by ; && ||
        commands: list[tuple[str, list]] = []
        joiner, current = ";", []
        for kind, value in tokens:
            if kind == "op" and value in (";", "&&", "||"):
                if current:
                    commands.append((joiner, current))
                elif value != ";":
                    self.emit(f"{SH}: syntax error: '{value}' unexpected\n".encode())
                    self.status = 1
                    return
                joiner, current = value, []
            elif kind == "op":
                self.emit(f"adb emulator: '{value}' is not supported\n".encode())
                self.status = 2
                return
            else:
                current.append((kind, value))
        if current:
            commands.append((joiner, current))
        try:
            for op, command in commands:
                if (op == "&&" and self.status != 0) or (op == "||" and self.status == 0):
                    continue
                self.status = self._simple(command)
        except _Exit as stop:
            self.status = stop.status

    def _simple(self, command: list) -> int:
        argv: list[str] = []
        sinks: dict[int, tuple[str, str] | int] = {}  # fd -> (path, mode) or another fd
        i = 0
        try:
            while i < len(command):
                kind, value = command[i]
                if kind == "word":
                    argv.append(_expand(value, self.status))
                elif kind == "dup":
                    sinks[value[0]] = value[1]
                else:  # redir: the next word is its target
                    if i + 1 >= len(command) or command[i + 1][0] != "word":
                        self.emit(f"{SH}: syntax error: newline unexpected\n".encode())
                        return 1
                    sinks[value[0]] = (_expand(command[i + 1][1], self.status), value[1])
                    i += 1
                i += 1
        except _Unsupported as exc:
            self.emit(f"adb emulator: {exc} is not supported\n".encode())
            return 2
        files: dict[int, object] = {}
        try:
            for fd, sink in sinks.items():
                if isinstance(sink, tuple):
                    path, mode = sink
                    if path == "/dev/null":
                        files[fd] = None
                        continue
                    try:
                        files[fd] = open(self.device.host_path(path), "ab" if mode == ">>" else "wb")  # noqa: SIM115
                    except OSError as exc:
                        self.emit(f"{SH}: can't create {path}: {exc.strerror}\n".encode())
                        return 1

            def writer(fd: int) -> Callable[[bytes], None]:
                seen = set()
                while fd in sinks and isinstance(sinks[fd], int) and fd not in seen:
                    seen.add(fd)
                    fd = sinks[fd]
                if fd in files:
                    handle = files[fd]
                    return (lambda data: None) if handle is None else handle.write
                return self.emit

            if not argv:
                return 0
            return self._exec(argv, writer(1), writer(2))
        finally:
            for handle in files.values():
                if handle is not None:
                    handle.close()

    def _exec(self, argv: list[str], out: Callable[[bytes], None], err: Callable[[bytes], None]) -> int:
        name = argv[0]
        device = self.device
        if name == "exit":
            raise _Exit(int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else self.status)
        if name in ("true", ":"):
            return 0
        if name == "false":
            return 1
        if name == "echo":
            args, newline = argv[1:], True
            if args and args[0] == "-n":
                args, newline = args[1:], False
            out((" ".join(args) + ("\n" if newline else "")).encode())
            return 0
        if "/" in name:
            try:
                host = device.host_path(name)
            except OSError:
                host = None
            if host is None or not os.path.isfile(host):
                err(f"{SH}: {name}: inaccessible or not found\n".encode())
                return 127
            if not os.stat(host).st_mode & 0o111:
                err(f"{SH}: {name}: can't execute: Permission denied\n".encode())
                return 126
            program = device.commands.get(posixpath.normpath(posixpath.join("/", name)))
            if program is None:
                err(f"{SH}: {name}: can't execute: Exec format error\n".encode())
                return 126
        else:
            program = device.commands.get(name) or _TOYBOX.get(name)
            if program is None:
                err(f"{SH}: {name}: inaccessible or not found\n".encode())
                return 127
        if program in _TOYBOX.values():
            return program(argv, device, out, err)
        output, status = program(argv, device)
        out(output)
        return int(status)


def _toy_error(err: Callable[[bytes], None], argv0: str, path: str, exc: OSError) -> None:
    err(f"{argv0}: {path}: {exc.strerror}\n".encode())


def _getprop(argv, device, out, err) -> int:
    if len(argv) > 1:
        out((device.props.get(argv[1], argv[2] if len(argv) > 2 else "") + "\n").encode())
    else:
        out("".join(f"[{k}]: [{v}]\n" for k, v in sorted(device.props.items())).encode())
    return 0


def _cat(argv, device, out, err) -> int:
    status = 0
    for path in argv[1:]:
        try:
            with open(device.host_path(path), "rb") as handle:
                out(handle.read())
        except OSError as exc:
            _toy_error(err, "cat", path, exc)
            status = 1
    return status


def _ls(argv, device, out, err) -> int:
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-") and len(a) > 1)
    paths = [a for a in argv[1:] if not (a.startswith("-") and len(a) > 1)] or ["."]
    if set(flags) - {"a", "1"}:
        err(b"adb emulator: ls options other than -a and -1 are not supported\n")
        return 2
    status = 0
    for path in paths:
        try:
            host = device.host_path(path if path != "." else "/")
            if os.path.isdir(host):
                names = sorted(os.listdir(host))
                names = sorted([".", "..", *names]) if "a" in flags else [n for n in names if not n.startswith(".")]
                out("".join(f"{name}\n" for name in names).encode())
            else:
                os.lstat(host)
                out(f"{path}\n".encode())
        except OSError as exc:
            _toy_error(err, "ls", path, exc)
            status = 1
    return status


def _mkdir(argv, device, out, err) -> int:
    parents = "-p" in argv[1:]
    status = 0
    for path in (a for a in argv[1:] if a != "-p"):
        try:
            host = device.host_path(path)
            if parents:
                os.makedirs(host, exist_ok=True)
            else:
                os.mkdir(host)
        except OSError as exc:
            _toy_error(err, "mkdir", path, exc)
            status = 1
    return status


def _rm(argv, device, out, err) -> int:
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-"))
    force, recursive = "f" in flags, bool(set(flags) & {"r", "R"})
    status = 0
    for path in (a for a in argv[1:] if not a.startswith("-")):
        try:
            host = device.host_path(path)
            if os.path.isdir(host) and not os.path.islink(host):
                if not recursive:
                    raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
                shutil.rmtree(host)
            else:
                os.unlink(host)
        except OSError as exc:
            if not (force and exc.errno == errno.ENOENT):
                _toy_error(err, "rm", path, exc)
                status = 1
    return status


def _chmod(argv, device, out, err) -> int:
    if len(argv) < 3:
        err(b"chmod: Needs 2 arguments\n")
        return 1
    spec, status = argv[1], 0
    for path in argv[2:]:
        try:
            host = device.host_path(path)
            current = stat.S_IMODE(os.stat(host).st_mode)
            mode = _chmod_mode(spec, current)
            if mode is None:
                err(f"chmod: bad mode '{spec}'\n".encode())
                return 1
            os.chmod(host, mode | 0o600)  # the host owner keeps rw so the test can clean up
        except OSError as exc:
            _toy_error(err, "chmod", path, exc)
            status = 1
    return status


def _chmod_mode(spec: str, current: int) -> int | None:
    if spec and all(c in "01234567" for c in spec):
        return int(spec, 8)
    mode = current
    for clause in spec.split(","):
        who = ""
        while clause and clause[0] in "ugoa":
            who, clause = who + clause[0], clause[1:]
        if not clause or clause[0] not in "+-=" or set(clause[1:]) - set("rwx"):
            return None
        op, perms = clause[0], clause[1:]
        mask = 0
        for w in who or "a":
            shifts = {"u": [6], "g": [3], "o": [0], "a": [6, 3, 0]}[w]
            for s in shifts:
                mask |= sum({"r": 4, "w": 2, "x": 1}[p] for p in perms) << s
                if op == "=":
                    mode &= ~(7 << s)
        mode = mode & ~mask if op == "-" else mode | mask
    return mode


def _sleep(argv, device, out, err) -> int:
    try:
        time.sleep(float(argv[1]))
    except (IndexError, ValueError):
        err(b"sleep: Needs 1 argument\n")
        return 1
    return 0


_TOYBOX = {"getprop": _getprop, "cat": _cat, "ls": _ls, "mkdir": _mkdir, "rm": _rm, "chmod": _chmod, "sleep": _sleep}


def _shell_service(stream: _Stream, command: str) -> None:
    _Shell(stream.conn.device, stream.write).run(command)


# --- the device ---------------------------------------------------------------------------------


class AdbDevice:
    """adbd on 127.0.0.1:``port`` (0: a free one), its file system the folder ``root``."""

    def __init__(self, root: Path, props: dict[str, str], commands: dict[str, Program] | None = None, port: int = 0) -> None:
        self.root = Path(root).resolve()
        self.props = dict(props)
        self.commands: dict[str, Program] = {(posixpath.normpath(k) if "/" in k else k): v for k, v in (commands or {}).items()}
        self.port = port
        self._listener: socket.socket | None = None
        self._connections: set[_Connection] = set()
        self._lock = threading.Lock()
        self._accepting: threading.Thread | None = None
        self._stop = threading.Event()
        self.plugged = threading.Event()

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def banner(self) -> str:
        names = ("ro.product.name", "ro.product.model", "ro.product.device")
        fields = [f"{name}={self.props.get(name, '')}" for name in names] + [f"features={','.join(FEATURES)}"]
        return "device::" + ";".join(fields)

    def host_path(self, device_path: str) -> str:
        """Where a device path lives under ``root``; OSError(EACCES) if it would leave it."""
        norm = posixpath.normpath(posixpath.join("/", device_path))
        host = os.path.join(self.root, norm.lstrip("/"))
        real = os.path.realpath(host)
        if device_path.endswith("/") and norm != "/":
            host += "/"  # lstat("link/") follows the link, as the client's STAT of "path/" expects
        if real != str(self.root) and not real.startswith(str(self.root) + os.sep):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), device_path)
        return host

    # lifecycle
    def start(self) -> AdbDevice:
        self._stop.clear()
        self._listen()
        return self

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self.plugged.set()
        self._accepting = threading.Thread(target=self._accept, args=(listener,), name="adb-emulator-accept", daemon=True)
        self._accepting.start()

    def _accept(self, listener: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            while self.plugged.is_set() and not self._stop.is_set():
                if not selector.select(0.1):
                    continue
                try:
                    sock, _ = listener.accept()
                except OSError:
                    return
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn = _Connection(self, sock)
                with self._lock:
                    if not self.plugged.is_set():
                        sock.close()
                        return
                    self._connections.add(conn)
                threading.Thread(target=conn.run, name="adb-emulator-transport", daemon=True).start()

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    def unplug(self) -> None:
        """Drop every connection at once; refuse new ones until ``replug()``."""
        with self._lock:
            self.plugged.clear()
            listener, self._listener = self._listener, None
            connections, self._connections = list(self._connections), set()
        if listener is not None:
            listener.close()
        for conn in connections:
            conn.kill()
        if self._accepting is not None:
            self._accepting.join(2)

    def replug(self) -> None:
        """Listen again on the same port."""
        if not self.plugged.is_set():
            self._listen()

    def stop(self) -> None:
        self._stop.set()
        self.unplug()

    def __enter__(self) -> AdbDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
