"""The adb device emulator's ``sync:`` service: what ``adb push``, ``adb pull`` and the client's
STAT and LIST requests speak, inside one adb stream (``adb_device.Stream``).

Why a module of its own: it is a protocol of its own, with its own messages and failures, and it
touches the device only through its file system (``AdbDevice.host_path``); the transport that
carries it is ``adb_device``.

Modelled from AOSP's adb (``system/core/adb/``, now ``packages/modules/adb/``): ``SYNC.TXT``,
``file_sync_protocol.h``, ``daemon/file_sync_service.cpp``, v1 only (the device advertises none of
the v2 features):
STAT (lstat: mode, size, mtime; all zero when missing; a trailing ``/`` is kept, so the client's
STAT of ``link/`` follows the link as on Linux), LIST (DENT per entry, ``.`` and ``..`` included,
then DONE), SEND ("path,mode"; a regular file or link there is unlinked first; open with O_EXCL,
parents made on ENOENT; the user permission bits copied to group and other; DATA chunks of at
most 64 KiB; DONE carrying the mtime; OKAY — or FAIL "couldn't create file: …" / "secure_mkdirs
failed: …", then the DATA drained to DONE, the partial file removed and the session ended), RECV
(DATA chunks of 64 KiB - 8, then DONE; or FAIL "open failed: No such file or directory"), QUIT;
a path over 1024 bytes FAILs "path too long". A connection lost mid-SEND removes the partial file.

Nothing here was captured from a real phone: every reply is built from the sources above.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
from typing import TYPE_CHECKING

from devices.emulators.adb_closed import Closed

if TYPE_CHECKING:
    from devices.emulators.adb_device import Stream

__all__ = ["sync_service"]

# file_sync_protocol.h
SYNC_DATA_MAX = 64 * 1024
_SYNC_PATH_MAX = 1024


def _sync_id(name: bytes) -> int:
    return struct.unpack("<I", name)[0]


ID_LSTAT_V1, ID_LIST, ID_SEND, ID_RECV, ID_DENT, ID_DONE, ID_DATA, ID_OKAY, ID_FAIL, ID_QUIT = (
    _sync_id(n) for n in (b"STAT", b"LIST", b"SEND", b"RECV", b"DENT", b"DONE", b"DATA", b"OKAY", b"FAIL", b"QUIT")
)


def _sync_fail(stream: Stream, reason: str) -> None:
    msg = reason.encode()
    stream.write(struct.pack("<II", ID_FAIL, len(msg)) + msg)


def sync_service(stream: Stream) -> None:
    """``sync:``: one request after another until QUIT, a FAIL or the stream's end."""
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


def _sync_send(stream: Stream, spec: str) -> bool:
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
        except Closed:
            handle.close()
            if do_unlink:
                with contextlib.suppress(OSError):
                    os.unlink(host)
            raise
    stream.write(struct.pack("<II", ID_OKAY, 0))
    os.utime(host, (timestamp, timestamp))
    return True


def _drain_send(stream: Stream, unlink: str | None) -> bool:
    """handle_send_file's fail: read and throw away DATA until DONE, remove the file, end the session."""
    with contextlib.suppress(Closed):
        while True:
            ident, size = struct.unpack("<II", stream.read_exact(8))
            if ident != ID_DATA or size > SYNC_DATA_MAX:
                break
            stream.read_exact(size)
    if unlink is not None:
        with contextlib.suppress(OSError):
            os.unlink(unlink)
    return False


def _sync_recv(stream: Stream, path: str) -> bool:
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
