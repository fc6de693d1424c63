"""An Android phone's adbd over TCP, without the phone: for tests that drive a device with the
real ``adb`` client (``adb connect 127.0.0.1:PORT``, then ``shell``, ``push``, ``pull``,
``get-state``).

This module is the device as a whole: its transport, its streams and ``AdbDevice``, the public API.
The two services a bridge opens on a stream are modules of their own, each with the sources it is
built from: ``sync:`` in ``adb_sync`` and ``shell:``/``exec:`` (the mksh and toybox interpreter) in
``adb_shell``. ``adb_closed`` holds the one exception the transport and both services share.

What is modelled here, and from which AOSP sources (``system/core/adb/``, now
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

Nothing here was captured from a real phone: every reply is built from the sources above.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import selectors
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from devices.emulators.adb_closed import Closed
from devices.emulators.adb_shell import shell_service
from devices.emulators.adb_sync import sync_service

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

# adb.cpp get_connection_string: the features the banner advertises (see the module docstring)
FEATURES = ("fixed_push_mkdir",)

Program = Callable[[list[str], "AdbDevice"], tuple[bytes, int]]


class Stream:
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
                    raise Closed
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
                        raise Closed
                    self._cond.wait(0.5)
                if self.closed:
                    raise Closed
                self._can_write = False
            self.conn.send(A_WRTE, self.local_id, self.remote_id, chunk)

    def close(self) -> None:
        with self._cond:
            was_closed, self.closed = self.closed, True
            self._cond.notify_all()
        self.conn.forget(self.local_id)
        if not was_closed:
            with contextlib.suppress(Closed):
                self.conn.send(A_CLSE, self.local_id, self.remote_id, b"")


class _Connection:
    """One TCP connection from an adb server: the transport's packet loop and its streams."""

    def __init__(self, device: AdbDevice, sock: socket.socket) -> None:
        self.device, self.sock = device, sock
        self.version = A_VERSION_MIN
        self.max_payload = MAX_PAYLOAD_V1
        self.online = False
        self._send_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._streams_lock = threading.Lock()
        self._next_id = 1
        self.dead = False

    def send(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        check = 0 if self.version >= A_VERSION_SKIP_CHECKSUM else sum(data) & 0xFFFFFFFF
        header = _HEADER.pack(command, arg0, arg1, len(data), check, command ^ 0xFFFFFFFF)
        with self._send_lock:
            if self.dead:
                raise Closed
            try:
                self.sock.sendall(header + data)
            except OSError as exc:
                raise Closed from exc

    def forget(self, local_id: int) -> None:
        with self._streams_lock:
            self._streams.pop(local_id, None)

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise Closed
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
        except (Closed, OSError):
            return
        finally:
            self.kill()
            self.device._forget(self)

    def _handle(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == A_CNXN:
            if arg0 < A_VERSION_MIN:
                raise Closed
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
            target: Callable[[Stream], None] = lambda s: shell_service(s, service.split(":", 1)[1])  # noqa: E731
        elif service == "sync:":
            target = sync_service
        else:
            # an interactive shell (a pty), shell_v2, reverse, root... are not modelled: refused
            self.send(A_CLSE, 0, remote_id, b"")
            return
        with self._streams_lock:
            local_id = self._next_id
            self._next_id += 1
            stream = Stream(self, local_id, remote_id)
            self._streams[local_id] = stream
        self.send(A_OKAY, local_id, remote_id, b"")

        def serve() -> None:
            try:
                target(stream)
            except (Closed, OSError):
                pass
            finally:
                stream.close()

        threading.Thread(target=serve, name=f"adb-emulator-{service[:20]}", daemon=True).start()


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
