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
- ``shell:CMD`` and ``exec:CMD``: not ``/bin/sh`` on the host but a small interpreter of the parts of
  Android's mksh (R59c, ``external/mksh``) and toybox a bridge uses, each from its source:
  words with '…', "…" and \\ quoting; ``$?`` and ``$EPOCHREALTIME`` (also as ``${…}``; var.c: the
  host's gettimeofday as ``%u.%06u``); lists joined by ``;``, ``&``, ``&&``, ``||`` and newlines;
  ``! CMD``; ``while LIST; do LIST; done`` and ``until`` (exec.c TWHILE: status 0 when the body never
  ran, else the body's last), with redirections after ``done`` applying to the whole loop;
  redirections ``>``, ``>>``, ``N>`` and ``N>&M`` applied in order (exec.c iosetup; a failed one prints
  ``/system/bin/sh: can't create PATH: strerror`` and fails the command with status 1). Parsing follows
  syn.c: a -c string runs line by line, each line parsed whole first; syntax errors are yyerror's
  ``/system/bin/sh: syntax error: unexpected 'TOKEN'`` / ``unexpected EOF`` / ``unmatched 'while'`` and
  ``no closing quote`` (status 1, the shell stops).
  ``CMD &`` runs CMD in a child shell on a thread of its own (a forked subshell on the phone) with a
  copy of the file descriptors and ``$?``; ``$?`` is then 0 and the shell goes on. ``wait`` (no
  operands) waits for this shell's jobs, status 0. A job keeps the adb stream open until it ends
  (adbd reads its end until every writer has closed it) unless it is a simple command whose own
  redirections move both 1 and 2 off the stream — a loop keeps a saved copy of what it redirects
  (exec.c savefd). When the stream is lost (``unplug()``), adbd SIGHUPs the shell alone: the foreground
  shell ends at its next command, ``sleep`` tick or ``wait`` tick; a background job goes on (an
  unplugged phone keeps running) and ends at its next write to the lost stream, as SIGPIPE would end
  it. ``AdbDevice.stop()`` (the phone switched off) ends every shell and job at its next command, loop
  pass or sleep tick, and returns once they have. (Background jobs outliving the stream follow a
  ``shell_v2`` session; under the legacy PTY this emulator's protocol selects, the kernel's hangup
  would SIGHUP the whole process group, which is not modelled.)
  Builtins: ``echo``, ``true``, ``:``, ``false``, ``exit``, ``wait``, ``sleep`` (mksh's, built with
  HAVE_SELECT: ``SECONDS[.FRACTION]``, else ``sleep: syntax error``), and ``test`` / ``[`` (funcs.c
  c_test: POSIX's rules for up to four operands, then test_parse; ``-e -f -d -s -r -w -x -n -z``,
  ``= == != -eq -ne -lt -le -gt -ge``, ``!``, ``-a``, ``-o``, ``( )``; an error is
  ``/system/bin/sh: [: OPERAND: MESSAGE`` with status 2; another operator, or an arithmetic operand
  that is not a plain number, is "not supported"). Programs: ``getprop`` (all properties as
  ``[key]: [value]``, or one value), ``cat``, ``ls``, ``mkdir``, ``rm``, ``chmod`` and ``sha256sum``
  (toybox md5sum.c: ``HASH  PATH`` per file), with toybox's "NAME: PATH: strerror" errors. A command
  that is not found prints mksh's ``/system/bin/sh: NAME: inaccessible or not found`` (``exec.c``,
  ``sh.h`` Tinacc_not_found) with status 127. Pipes, ``if``/``for``/``case``, variables and other
  parameters, other mksh builtins and anything else unsupported print an ``adb emulator: … not
  supported`` line with status 2, so a test sees it instead of a silent wrong answer.
- The shell user's permissions, checked from the modes (the host may run the tests as root, which
  ignores them): under ``/sys`` and ``/proc`` a file's *other* bits (sysfs nodes belong to root or
  system), elsewhere its *owner* bits (``/data/local/tmp`` belongs to the shell user). A ``>``/``>>``
  to a file not writable so (or a new file in a folder not writable so) fails with ``can't create
  PATH: Permission denied``; ``cat``/``sha256sum`` of a file not readable so with ``NAME: PATH:
  Permission denied``; ``test -r/-w/-x`` answer the same way.
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

Nothing here was captured from a real phone: every reply is built from the sources above. On Android
``cat`` without options is mksh's builtin (funcs.c ``!cat``, LOW_BI), so its errors read
``/system/bin/sh: cat: PATH: strerror``, not toybox's ``cat: PATH: strerror``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import re
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
# mksh's reserved words (syn.c tokentab): recognised only where a command starts, and only unquoted
_RESERVED = frozenset(
    ["if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do", "done", "in",
     "function", "time", "{", "}", "!", "[["]
)
# mksh builtins (funcs.c mkshbuiltins) the emulator does not model: "not supported", never "not found"
_UNMODELLED_BUILTINS = frozenset(
    [".", "alias", "break", "builtin", "cd", "chdir", "command", "continue", "eval", "exec", "export", "fc",
     "getopts", "jobs", "kill", "let", "print", "pwd", "read", "readonly", "realpath", "rename", "return", "set",
     "shift", "source", "suspend", "times", "trap", "typeset", "ulimit", "umask", "unalias", "unset", "whence",
     "bg", "fg", "bind", "printf"]
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")


class _Unsupported(Exception):
    pass


class _ShSyntaxError(Exception):
    """What mksh's yyerror prints after "/system/bin/sh: "; the shell then exits with status 1."""


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _Stopped(Exception):
    """``AdbDevice.stop()``: the phone is off, so every shell and background job ends at once."""


class _Word:
    """A shell word: its parts as (text, how), how being "plain" (unquoted), "dq" ("...") or "lit" ('...', \\x)."""

    def __init__(self, parts: list[tuple[str, str]], raw: str) -> None:
        self.parts, self.raw = parts, raw

    @property
    def plain(self) -> str | None:
        """The word's text if it is one unquoted run (a reserved word can only be such a word)."""
        return self.parts[0][0] if len(self.parts) == 1 and self.parts[0][1] == "plain" else None


def _tokenize(text: str) -> list[tuple[str, object]]:
    """Words, operators (";", "\\n", "&", "&&", "||", "|", ...) and redirections, as mksh's lexer splits a
    command line. A lexical error becomes an ("error", exception) token, so the lines before it still run."""
    tokens: list[tuple[str, object]] = []
    parts: list[tuple[str, str]] = []
    in_word = False
    start = 0
    i, n = 0, len(text)

    def end_word(at: int) -> None:
        nonlocal parts, in_word
        if in_word:
            tokens.append(("word", _Word(parts, text[start:at])))
        parts, in_word = [], False

    def begin_word() -> None:
        nonlocal in_word, start
        if not in_word:
            in_word, start = True, i

    try:
        while i < n:
            c = text[i]
            if c in " \t":
                end_word(i)
                i += 1
            elif c == "#" and not in_word:
                while i < n and text[i] != "\n":
                    i += 1
            elif c == "\n":
                end_word(i)
                tokens.append(("op", "\n"))
                i += 1
            elif c in ";&|()":
                end_word(i)
                two = text[i : i + 2]
                if c == "&" and text[i + 1 : i + 2] == ">":
                    raise _Unsupported("redirection &>")
                if two in ("&&", "||", ";;", ";&", ";|", "|&"):
                    tokens.append(("op", two))
                    i += 2
                else:
                    tokens.append(("op", c))
                    i += 1
            elif c in "<>":
                # a redirection; a lone unquoted digit word just before it is its file descriptor
                fd = None
                if in_word and len(parts) == 1 and parts[0][1] == "plain" and len(parts[0][0]) == 1 and parts[0][0].isdigit():
                    fd = int(parts[0][0])
                    parts, in_word = [], False
                end_word(i)
                if c == "<":
                    raise _Unsupported("input redirection")
                op = ">>" if text[i : i + 2] == ">>" else ">"
                if text[i : i + 2] == ">|":
                    raise _Unsupported("redirection >|")
                i += len(op)
                unit = 1 if fd is None else fd
                if text[i : i + 1] == "&":
                    j = i + 1
                    while j < n and text[j].isdigit():
                        j += 1
                    if j == i + 1:
                        raise _Unsupported("redirection >& other than >&N")
                    tokens.append(("dup", (unit, int(text[i + 1 : j]), text[i - len(op) : j])))
                    i = j
                else:
                    tokens.append(("redir", (unit, op, op if fd is None else f"{fd}{op}")))
            elif c == "'":
                begin_word()
                j = text.find("'", i + 1)
                if j < 0:
                    raise _ShSyntaxError("no closing quote")
                parts.append((text[i + 1 : j], "lit"))
                i = j + 1
            elif c == '"':
                begin_word()
                i += 1
                buf: list[str] = []
                while True:
                    if i >= n:
                        raise _ShSyntaxError("no closing quote")
                    d = text[i]
                    if d == '"':
                        i += 1
                        break
                    if d == "\\" and i + 1 < n and text[i + 1] in '$`"\\\n':
                        if buf:
                            parts.append(("".join(buf), "dq"))
                            buf = []
                        if text[i + 1] != "\n":
                            parts.append((text[i + 1], "lit"))
                        i += 2
                        continue
                    if d == "`" or text.startswith("$(", i):
                        raise _Unsupported("command substitution")
                    buf.append(d)
                    i += 1
                parts.append(("".join(buf), "dq"))
            elif c == "\\":
                if text[i + 1 : i + 2] == "\n":  # a line continuation
                    i += 2
                    continue
                begin_word()
                if i + 1 < n:
                    parts.append((text[i + 1], "lit"))
                i += 2
            elif c == "`" or text.startswith("$(", i):
                raise _Unsupported("command substitution")
            else:
                begin_word()
                j = i
                while j < n and text[j] not in " \t\n;&|()<>'\"\\`" and not text.startswith("$(", j):
                    j += 1
                parts.append((text[i:j], "plain"))
                i = j
        end_word(i)
    except (_Unsupported, _ShSyntaxError) as exc:
        tokens.append(("error", exc))
    return tokens


def _epochrealtime() -> str:
    """var.c V_EPOCHREALTIME: gettimeofday() as "%u.%06u"."""
    usec = time.time_ns() // 1000
    return f"{usec // 1_000_000}.{usec % 1_000_000:06d}"


def _expand(word: _Word, status: int) -> str:
    """The word's text with $? / ${?} and $EPOCHREALTIME / ${EPOCHREALTIME} substituted (no field
    splitting needed: neither value holds a blank). Any other parameter is not modelled."""
    out = []
    for text, how in word.parts:
        if how == "lit" or "$" not in text:
            out.append(text)
            continue
        k = 0
        while k < len(text):
            ch = text[k]
            if ch != "$" or k + 1 >= len(text):
                out.append(ch)
                k += 1
                continue
            rest = text[k + 1 :]
            if rest.startswith("{"):
                close = rest.find("}")
                name = rest[1:close] if close > 0 else ""
                length = close + 1
            elif rest[0] == "?":
                name, length = "?", 1
            else:
                m = _NAME.match(rest)
                name, length = (m.group(0), len(m.group(0))) if m else (rest[0], 1)
            if name == "?":
                out.append(str(status))
            elif name == "EPOCHREALTIME":
                out.append(_epochrealtime())
            else:
                raise _Unsupported("parameter expansion other than $? and $EPOCHREALTIME")
            k += 1 + length
    return "".join(out)


# the syntax tree: a list is [(and_or, runs_in_background)], an and_or is [(joiner, command)]
class _Simple:
    def __init__(self, words: list[_Word], redirs: list[tuple]) -> None:
        self.words, self.redirs = words, redirs


class _Loop:
    def __init__(self, until: bool, cond: list, body: list, redirs: list[tuple]) -> None:
        self.until, self.cond, self.body, self.redirs = until, cond, body, redirs


class _Bang:
    def __init__(self, command: object) -> None:
        self.command = command


class _AndOr:
    def __init__(self, items: list[tuple[str, object]]) -> None:
        self.items = items


class _Parser:
    """syn.c's recursive descent (c_list, andor, pipeline, get_command, dogroup) over the parts modelled."""

    def __init__(self, tokens: list[tuple[str, object]]) -> None:
        self.tokens, self.i = tokens, 0
        self.nesting: str | None = None  # the reserved word that opened the construct being read

    def peek(self) -> tuple[str, object]:
        if self.i >= len(self.tokens):
            return ("eof", None)
        kind, value = self.tokens[self.i]
        if kind == "error":
            raise value  # type: ignore[misc]
        return kind, value

    def is_op(self, *ops: str) -> bool:
        kind, value = self.peek()
        return kind == "op" and value in ops

    def keyword(self) -> str | None:
        kind, value = self.peek()
        if kind == "word" and value.plain in _RESERVED:  # type: ignore[union-attr]
            return value.plain  # type: ignore[union-attr]
        return None

    def syntax_error(self) -> None:
        """syntaxerr(NULL): "syntax error: unexpected 'TOKEN'"; at the end "unmatched 'while'" or "unexpected EOF"."""
        kind, value = self.peek()
        if kind == "eof":
            if self.nesting:
                raise _ShSyntaxError(f"syntax error: unmatched '{self.nesting}'")
            raise _ShSyntaxError("syntax error: unexpected EOF")
        if kind == "word":
            shown = value.raw  # type: ignore[union-attr]
        elif kind in ("redir", "dup"):
            shown = value[-1]  # type: ignore[index]
        else:
            shown = value
        raise _ShSyntaxError(f"syntax error: unexpected '{shown}'")

    def line(self) -> list | None:
        """One top-level line (yyparse with a -c string): its list, [] for a blank one, None at the end."""
        if self.peek()[0] == "eof":
            return None
        items = self.c_list(multi=False)
        if self.is_op("\n"):
            self.i += 1
        elif self.peek()[0] != "eof":
            self.syntax_error()
        return items or []

    def c_list(self, multi: bool) -> list:
        items: list = []
        while True:
            p = self.and_or()
            if multi and self.is_op("\n"):
                self.i += 1
                if p is not None:
                    items.append((p, False))
                continue
            if p is None:
                break
            if self.is_op("&", ";"):
                items.append((p, self.peek()[1] == "&"))
                self.i += 1
                continue
            if self.is_op("|&"):
                raise _Unsupported("co-processes (|&)")
            items.append((p, False))
            break
        return items

    def and_or(self) -> object | None:
        first = self.pipeline()
        if first is None:
            return None
        items: list[tuple[str, object]] = [("", first)]
        while self.is_op("&&", "||"):
            joiner = str(self.peek()[1])
            self.i += 1
            while self.is_op("\n"):  # CONTIN: a newline may follow && and ||
                self.i += 1
            p = self.pipeline()
            if p is None:
                self.syntax_error()
            items.append((joiner, p))
        return first if len(items) == 1 else _AndOr(items)

    def pipeline(self) -> object | None:
        t = self.command()
        if t is not None and self.is_op("|"):
            raise _Unsupported("pipes (|)")
        return t

    def command(self) -> object | None:
        word = self.keyword()
        if word is not None:
            if word in ("while", "until"):
                self.i += 1
                return self.loop(word)
            if word == "!":
                self.i += 1
                t = self.pipeline()
                if t is None:
                    self.syntax_error()
                return _Bang(t)
            if word in ("do", "done", "then", "else", "elif", "fi", "esac", "}", "in"):
                return None  # ends the list being read; its reader says what is wrong
            raise _Unsupported(f"'{word}'")
        if self.is_op("("):
            raise _Unsupported("subshells ( )")
        words: list[_Word] = []
        redirs: list[tuple] = []
        while True:
            kind, value = self.peek()
            if kind == "word":
                if not words and value.parts[0][1] == "plain" and _ASSIGNMENT.match(value.parts[0][0]):  # type: ignore[union-attr]
                    raise _Unsupported("variable assignments")
                words.append(value)  # type: ignore[arg-type]
                self.i += 1
            elif kind in ("redir", "dup"):
                redirs.append(self.redirection())
            elif kind == "op" and value == "(":
                raise _Unsupported("function definitions")
            else:
                break
        if not words and not redirs:
            return None
        return _Simple(words, redirs)

    def redirection(self) -> tuple:
        kind, value = self.peek()
        self.i += 1
        if kind == "dup":
            unit, target, _ = value  # type: ignore[misc]
            return ("dup", unit, target)
        unit, op, _ = value  # type: ignore[misc]
        if self.peek()[0] != "word":
            self.syntax_error()
        target = self.peek()[1]
        self.i += 1
        return ("file", unit, op, target)

    def loop(self, word: str) -> _Loop:
        outer, self.nesting = self.nesting, word
        cond = self.c_list(multi=True)
        if self.keyword() != "do":
            self.syntax_error()
        self.i += 1
        body = self.c_list(multi=True)
        if self.keyword() != "done":
            self.syntax_error()
        self.i += 1
        self.nesting = outer
        redirs = []
        while self.peek()[0] in ("redir", "dup"):
            redirs.append(self.redirection())
        if not cond or not body:
            raise _Unsupported(f"an empty {word} list")
        return _Loop(word == "until", cond, body, redirs)


class _RedirectFailed(Exception):
    pass


class _Shell:
    """One mksh: ``run`` a -c string in the foreground; ``&`` starts a child shell (a forked subshell on the
    phone) on a thread of its own. ``fds`` maps 1 and 2 to writers (the stream, a file, /dev/null)."""

    def __init__(self, device: AdbDevice, fds: dict[int, Callable[[bytes], None]], stream_write: Callable[[bytes], None],
                 hangup: Callable[[], bool] | None = None, status: int = 0) -> None:
        self.device, self.fds, self.stream_write, self.hangup = device, fds, stream_write, hangup
        self.status = status
        self.jobs: list[threading.Thread] = []
        self.holding: list[threading.Thread] = []  # jobs that keep the adb stream open

    # the whole -c string
    def run(self, text: str) -> None:
        parser = _Parser(_tokenize(text))
        try:
            while True:
                try:
                    items = parser.line()
                except _ShSyntaxError as exc:
                    self.fds[2](f"{SH}: {exc}\n".encode())
                    self.status = 1
                    return
                except _Unsupported as exc:
                    self.fds[2](f"adb emulator: {exc} is not supported\n".encode())
                    self.status = 2
                    return
                if items is None:
                    return
                if items:
                    self._list(items, self.fds)
        except _Exit as stop:
            self.status = stop.status

    def check(self) -> None:
        """Between commands and while sleeping: the phone switched off, or (foreground only) adbd's SIGHUP
        for a stream that is gone."""
        if self.device._stop.is_set():
            raise _Stopped
        if self.hangup is not None and self.hangup():
            raise _Closed

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.device._stop.wait(min(left, 0.05))

    def _list(self, items: list, fds: dict) -> int:
        for node, background in items:
            if background:
                self._spawn(node, fds)
                self.status = 0  # exchild() with XBGND returns 0
            else:
                self.status = self._node(node, fds)
        return self.status

    def _node(self, node: object, fds: dict) -> int:
        self.check()
        if isinstance(node, _Simple):
            rv = self._simple(node, fds)
        elif isinstance(node, _Loop):
            rv = self._loop(node, fds)
        elif isinstance(node, _Bang):
            rv = 0 if self._node(node.command, fds) else 1
        else:
            assert isinstance(node, _AndOr)
            rv = 0
            for joiner, part in node.items:
                # exec.c TAND/TOR: the right side runs if (rv == 0) == (it is &&)
                if not joiner or (rv == 0) == (joiner == "&&"):
                    rv = self._node(part, fds)
        self.status = rv
        return rv

    def _loop(self, node: _Loop, fds: dict) -> int:
        """exec.c TWHILE/TUNTIL: rv = 0; while ((execute(cond) == 0) == (type == TWHILE)) rv = execute(body)."""
        try:
            inner, handles = self._redirect(node.redirs, fds)
        except _Unsupported as exc:
            fds[2](f"adb emulator: {exc} is not supported\n".encode())
            return 2
        except _RedirectFailed:
            return 1
        try:
            rv = 0
            while True:
                self.check()
                if (self._list(node.cond, inner) == 0) == node.until:
                    break
                rv = self._list(node.body, inner)
            return rv
        finally:
            for handle in handles:
                handle.close()

    def _spawn(self, node: object, fds: dict) -> None:
        """``node &``: a child shell with a copy of this one's file descriptors and $?, on its own thread.
        It keeps the adb stream open (adbd reads its socket until every writer has closed it) unless it is
        a simple command whose own redirections move both 1 and 2 off it; a compound command keeps a saved
        copy of the descriptors it redirects (exec.c iosetup → savefd) for as long as it runs."""
        child = _Shell(self.device, dict(fds), self.stream_write, hangup=None, status=self.status)
        after = dict(fds)
        if isinstance(node, _Simple):
            for redir in node.redirs:
                if redir[0] == "dup":
                    after[redir[1]] = after.get(redir[2])
                else:
                    after[redir[1]] = None
        holds = any(sink == self.stream_write for sink in after.values())

        def job() -> None:
            try:
                child._node(node, child.fds)
                child._wait_all()
            except (_Closed, _Stopped, _Exit):
                pass  # a write to a stream that is gone is SIGPIPE; stop() is the phone switched off

        thread = threading.Thread(target=job, name=f"adb-emulator-job {self.device.serial}", daemon=True)
        self.device._add_job(thread)
        self.jobs.append(thread)
        if holds:
            self.holding.append(thread)
        thread.start()

    def _wait_all(self) -> None:
        for thread in self.jobs:
            while thread.is_alive():
                self.check()
                thread.join(0.05)
        self.jobs = []

    def _redirect(self, redirs: list[tuple], fds: dict) -> tuple[dict, list]:
        """The redirections in order (exec.c iosetup); a failed one prints mksh's "can't create" on the
        standard error as set up so far and fails the command with status 1."""
        table, handles = dict(fds), []
        try:
            for redir in redirs:
                if redir[0] == "dup":
                    _, unit, target = redir
                    if unit not in (1, 2) or target not in (1, 2):
                        raise _Unsupported(f"redirection of file descriptor {target if unit in (1, 2) else unit}")
                    table[unit] = table[target]
                    continue
                _, unit, op, word = redir
                if unit not in (1, 2):
                    raise _Unsupported(f"redirection of file descriptor {unit}")
                path = _expand(word, self.status)
                if path == "/dev/null":
                    table[unit] = _discard
                    continue
                try:
                    host = self.device._writable(path)
                    handle = open(host, "ab" if op == ">>" else "wb", buffering=0)  # noqa: SIM115
                except OSError as exc:
                    table[2](f"{SH}: can't create {path}: {exc.strerror}\n".encode())
                    raise _RedirectFailed from None
                handles.append(handle)
                table[unit] = handle.write
        except BaseException:
            for handle in handles:
                handle.close()
            raise
        return table, handles

    def _simple(self, node: _Simple, fds: dict) -> int:
        try:
            argv = [_expand(word, self.status) for word in node.words]
            table, handles = self._redirect(node.redirs, fds)
        except _Unsupported as exc:
            fds[2](f"adb emulator: {exc} is not supported\n".encode())
            return 2
        except _RedirectFailed:
            return 1
        try:
            if not argv:
                return 0
            try:
                return self._exec(argv, table[1], table[2])
            except _Unsupported as exc:
                table[2](f"adb emulator: {exc} is not supported\n".encode())
                return 2
        finally:
            for handle in handles:
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
        if name in ("[", "test"):
            return _Test(argv, self).run(err)
        if name == "wait":
            if len(argv) > 1:
                raise _Unsupported("wait with arguments")
            self._wait_all()
            return 0  # c_wait: rv = sig, 0 once no job is left
        if name in _UNMODELLED_BUILTINS:
            raise _Unsupported(f"the command '{name}'")
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
            return program(argv, self, out, err)
        output, status = program(argv, device)
        out(output)
        return int(status)


def _discard(data: bytes) -> None:
    """/dev/null."""


class _TestError(Exception):
    pass


# funcs.c u_ops / b_ops: every operator mksh knows; the emulator evaluates only some of them
_TEST_UNARY = frozenset(
    ["-a", "-b", "-c", "-d", "-e", "-f", "-G", "-g", "-H", "-h", "-k", "-L", "-n", "-O", "-o", "-p", "-r", "-S", "-s",
     "-t", "-u", "-v", "-w", "-x", "-z"]
)
_TEST_BINARY = frozenset(["=", "==", "!=", "<", ">", "-eq", "-ne", "-gt", "-ge", "-lt", "-le", "-ef", "-nt", "-ot"])


class _Test:
    """mksh's ``test`` / ``[`` (funcs.c c_test, test_eval, test_parse, ptest_*): POSIX's special cases for
    up to four arguments, then the recursive parser; an error is "NAME: [OPERAND: ]MESSAGE", status 2."""

    def __init__(self, argv: list[str], shell: _Shell) -> None:
        self.name, self.w, self.shell = argv[0], argv[1:], shell
        self.pos = 0

    def run(self, err: Callable[[bytes], None]) -> int:
        if self.name == "[":
            if not self.w or self.w[-1] != "]":
                err(f"{SH}: [: missing ]\n".encode())
                return 2
            self.w = self.w[:-1]
        try:
            return self._posix()
        except _TestError as exc:
            err(f"{SH}: {self.name}: {exc}\n".encode())
            return 2

    @staticmethod
    def _out(rv: bool, invert: int) -> int:
        return int(rv) if invert & 1 else int(not rv)

    def _one(self, p: int, invert: int) -> int:
        return self._out(self._eval("-n", self.w[p], None, True), invert)

    def _two(self, p: int, invert: int) -> int | None:
        if self.w[p] == "!":
            return self._one(p + 1, invert + 1)
        if self.w[p] in _TEST_UNARY:
            return self._out(self._eval(self.w[p], self.w[p + 1], None, True), invert)
        return None

    def _three(self, p: int, invert: int) -> int | None:
        lhs, op, rhs = self.w[p : p + 3]
        if op in _TEST_BINARY:
            return self._out(self._eval(op, lhs, rhs, True), invert)
        if op in ("-a", "-o"):
            a, b = self._eval("-n", lhs, None, True), self._eval("-n", rhs, None, True)
            return self._out(a and b if op == "-a" else a or b, invert)
        if lhs == "!":
            return self._two(p + 1, invert + 1)
        if lhs == "(" and rhs == ")":
            return self._one(p + 1, invert)
        return None

    def _posix(self) -> int:
        w, n = self.w, len(self.w)
        rv: int | None = None
        if n == 0:
            return 1
        if n == 1:
            return self._one(0, 0)
        if n == 2:
            rv = self._two(0, 0)
        elif n == 3:
            rv = self._three(0, 0)
        elif n == 4:
            if w[0] == "!":
                rv = self._three(1, 1)
            elif w[0] == "(" and w[3] == ")":
                rv = self._two(1, 0)
        if rv is not None:
            return rv
        # "The results are unspecified." mksh parses the whole expression
        self.pos = 0
        result = self._oexpr(True)
        if self.pos < len(w):
            self._fail(0, "unexpected operator/operand")
        return 0 if result else 1

    def _isa(self, token: str) -> bool:
        if self.pos < len(self.w) and self.w[self.pos] == token:
            self.pos += 1
            return True
        return False

    def _fail(self, ofs: int, msg: str) -> None:
        at = self.pos + ofs
        raise _TestError(f"{self.w[at]}: {msg}" if 0 <= at < len(self.w) else msg)

    def _operand(self, op: str) -> str | None:
        if self.pos >= len(self.w):
            return "1" if op == "-t" else None
        self.pos += 1
        return self.w[self.pos - 1]

    def _oexpr(self, do_eval: bool) -> bool:
        rv = self._aexpr(do_eval)
        if rv:
            do_eval = False
        if self._isa("-o"):
            return self._oexpr(do_eval) or rv
        return rv

    def _aexpr(self, do_eval: bool) -> bool:
        rv = self._nexpr(do_eval)
        if not rv:
            do_eval = False
        if self._isa("-a"):
            return self._aexpr(do_eval) and rv
        return rv

    def _nexpr(self, do_eval: bool) -> bool:
        if self._isa("!"):
            return not self._nexpr(do_eval)
        return self._primary(do_eval)

    def _primary(self, do_eval: bool) -> bool:
        if self._isa("("):
            rv = self._oexpr(do_eval)
            if not self._isa(")"):
                self._fail(0, "missing )")
            return rv
        w = self.w
        if self.pos + 1 < len(w) and w[self.pos + 1] not in _TEST_BINARY and self.pos < len(w) and w[self.pos] in _TEST_UNARY:
            op = w[self.pos]
            self.pos += 1
            operand = self._operand(op)
            if operand is None:
                self._fail(-1, "missing argument")
            return self._eval(op, str(operand), None, do_eval)
        lhs = self._operand("")
        if lhs is None:
            self._fail(0, "expression expected")
        if self.pos < len(w) and w[self.pos] in _TEST_BINARY:
            op = w[self.pos]
            self.pos += 1
            rhs = self._operand(op)
            if rhs is None:
                self._fail(-1, "missing second argument")
            return self._eval(op, str(lhs), rhs, do_eval)
        return self._eval("-n", str(lhs), None, do_eval)

    def _eval(self, op: str, a: str, b: str | None, do_eval: bool) -> bool:
        if not do_eval:
            return False
        if op == "-n":
            return a != ""
        if op == "-z":
            return a == ""
        if op in ("=", "=="):
            return a == b
        if op == "!=":
            return a != b
        if op in ("-eq", "-ne", "-lt", "-le", "-gt", "-ge"):
            x, y = _test_int(a, op), _test_int(str(b), op)
            return {"-eq": x == y, "-ne": x != y, "-lt": x < y, "-le": x <= y, "-gt": x > y, "-ge": x >= y}[op]
        if op in ("-e", "-f", "-d", "-s", "-r", "-w", "-x"):
            device = self.shell.device
            try:
                st = os.stat(device.host_path(a)) if a else None
            except OSError:
                st = None
            if st is None:
                return False
            if op == "-e":
                return True
            if op == "-f":
                return stat.S_ISREG(st.st_mode)
            if op == "-d":
                return stat.S_ISDIR(st.st_mode)
            if op == "-s":
                return st.st_size > 0
            return device._allowed(a, st, op[1])  # access(2) as the shell user
        raise _Unsupported(f"the test operator {op}")


def _test_int(text: str, op: str) -> int:
    """An integer operand of -eq and co.; mksh evaluates them as arithmetic expressions (a name is a
    variable, "1+1" is 2), which is not modelled beyond plain decimal numbers. mksh_ari_t is 32 bits."""
    if not re.fullmatch(r"\s*[-+]?\d+\s*", text):
        raise _Unsupported(f"the arithmetic operand '{text}' of test {op}")
    return (int(text) + 2**31) % 2**32 - 2**31


def _toy_error(err: Callable[[bytes], None], argv0: str, path: str, exc: OSError) -> None:
    err(f"{argv0}: {path}: {exc.strerror}\n".encode())


def _getprop(argv, sh, out, err) -> int:
    device = sh.device
    if len(argv) > 1:
        out((device.props.get(argv[1], argv[2] if len(argv) > 2 else "") + "\n").encode())
    else:
        out("".join(f"[{k}]: [{v}]\n" for k, v in sorted(device.props.items())).encode())
    return 0


def _cat(argv, sh, out, err) -> int:
    status = 0
    for path in argv[1:]:
        try:
            with open(sh.device._readable(path), "rb") as handle:
                out(handle.read())
        except OSError as exc:  # mksh's builtin cat (funcs.c c_cat): bi_errorf, so the shell's name first
            err(f"{SH}: cat: {path}: {exc.strerror}\n".encode())
            status = 1
    return status


def _sha256sum(argv, sh, out, err) -> int:
    """toybox md5sum.c (sha256sum is sha1sum's OLDTOY): "HASH  NAME" per file; a file that cannot be opened
    is perror_msg_raw's "sha256sum: NAME: strerror" (exit 1) and the next one goes on. A folder opens and its
    read() fails, which do_lib_hash takes as the end of the data: the hash of nothing."""
    names = argv[1:]
    if not names or any(a.startswith("-") for a in names):
        raise _Unsupported("sha256sum on its standard input or with options")
    status = 0
    for path in names:
        try:
            host = sh.device._readable(path)
            if os.path.isdir(host):
                digest = hashlib.sha256(b"").hexdigest()
            else:
                hasher = hashlib.sha256()
                with open(host, "rb") as handle:
                    while chunk := handle.read(1 << 16):
                        hasher.update(chunk)
                digest = hasher.hexdigest()
        except OSError as exc:
            _toy_error(err, "sha256sum", path, exc)
            status = 1
            continue
        out(f"{digest}  {path}\n".encode())
    return status


def _ls(argv, sh, out, err) -> int:
    device = sh.device
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


def _mkdir(argv, sh, out, err) -> int:
    parents = "-p" in argv[1:]
    status = 0
    for path in (a for a in argv[1:] if a != "-p"):
        try:
            host = sh.device.host_path(path)
            if parents:
                os.makedirs(host, exist_ok=True)
            else:
                os.mkdir(host)
        except OSError as exc:
            _toy_error(err, "mkdir", path, exc)
            status = 1
    return status


def _rm(argv, sh, out, err) -> int:
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-"))
    force, recursive = "f" in flags, bool(set(flags) & {"r", "R"})
    status = 0
    for path in (a for a in argv[1:] if not a.startswith("-")):
        try:
            host = sh.device.host_path(path)
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


def _chmod(argv, sh, out, err) -> int:
    if len(argv) < 3:
        err(b"chmod: Needs 2 arguments\n")
        return 1
    spec, status = argv[1], 0
    for path in argv[2:]:
        try:
            host = sh.device.host_path(path)
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


def _sleep(argv, sh, out, err) -> int:
    """mksh's builtin sleep (funcs.c c_sleep, built with HAVE_SELECT as Android's is): one operand,
    parse_usec's "SECONDS[.FRACTION]"; else "sleep: syntax error" (status 1)."""
    args = argv[1:]
    if args and args[0] == "--":
        args = args[1:]
    if len(args) != 1:
        err(f"{SH}: sleep: syntax error\n".encode())
        return 1
    m = re.fullmatch(r"(\d*)(?:\.(\d*))?", args[0])
    if m is None:
        err(f"{SH}: sleep: syntax error: Invalid argument '{args[0]}'\n".encode())
        return 1
    usec = int(((m.group(2) or "") + "000000")[:6])
    sh.sleep(int(m.group(1) or 0) + usec / 1e6)
    return 0


_TOYBOX = {"getprop": _getprop, "cat": _cat, "ls": _ls, "mkdir": _mkdir, "rm": _rm, "chmod": _chmod, "sleep": _sleep,
           "sha256sum": _sha256sum}


def _shell_service(stream: _Stream, command: str) -> None:
    """``shell:CMD``: mksh -c CMD with the stream as its 1 and 2. The stream ends when the shell has and
    every background job still holding it has (or when it is lost: adbd then SIGHUPs the shell alone)."""
    write = stream.write
    shell = _Shell(stream.conn.device, {1: write, 2: write}, write, hangup=lambda: stream.closed)
    try:
        shell.run(command)
        for thread in shell.holding:
            while thread.is_alive() and not stream.closed:
                shell.check()
                thread.join(0.05)
    except _Stopped:
        pass


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
        self._jobs: set[threading.Thread] = set()  # background jobs (``&``) of every shell

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

    # the shell user's permissions, checked from the modes: the host may run the tests as root
    def _allowed(self, device_path: str, st: os.stat_result, want: str) -> bool:
        """Whether the shell user may ``want`` ("r", "w" or "x") the file: under /sys and /proc by its
        *other* bits (sysfs and procfs nodes belong to root or system), elsewhere by its *owner* bits
        (what is under /data/local/tmp belongs to the shell user)."""
        norm = posixpath.normpath(posixpath.join("/", device_path))
        shift = 0 if norm in ("/sys", "/proc") or norm.startswith(("/sys/", "/proc/")) else 6
        return bool(st.st_mode & ({"r": 4, "w": 2, "x": 1}[want] << shift))

    def _readable(self, device_path: str) -> str:
        """The host path to open for reading; EACCES when the shell user may not read the file."""
        host = self.host_path(device_path)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            st = os.stat(host)
            if not stat.S_ISDIR(st.st_mode) and not self._allowed(device_path, st, "r"):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), device_path)
        return host

    def _writable(self, device_path: str) -> str:
        """The host path to open for writing (a ``>`` or ``>>``); EACCES when the shell user may not
        write the file or, for a new one, its folder. A folder is left to open()'s EISDIR."""
        host = self.host_path(device_path)
        try:
            st = os.stat(host)
            is_new = False
        except FileNotFoundError:
            folder = posixpath.dirname(posixpath.normpath(posixpath.join("/", device_path)))
            try:
                st = os.stat(self.host_path(folder))
            except OSError:
                return host  # open() says what is missing
            device_path, is_new = folder, True
        except NotADirectoryError:
            return host
        if (is_new or not stat.S_ISDIR(st.st_mode)) and not self._allowed(device_path, st, "w"):
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

    def _add_job(self, thread: threading.Thread) -> None:
        with self._lock:
            self._jobs = {t for t in self._jobs if t.is_alive()}
            self._jobs.add(thread)

    def stop(self) -> None:
        """Switch the phone off: every shell and background job ends (at its next command, loop pass or
        sleep tick), and this returns once they have."""
        self._stop.set()
        self.unplug()
        with self._lock:
            jobs, self._jobs = list(self._jobs), set()
        deadline = time.monotonic() + 5
        for thread in jobs:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> AdbDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
