"""The controller's artifact server: ships model files and packages to agents over plain HTTP.

Agents fetch ``GET /artifacts/<sha256>`` and verify the hash themselves (``agent.artifacts``), so
results stay honest without TLS. Lookups are by hash in a dict of registered artifacts: a request
path never reaches the file system, so no path traversal is possible, and an unregistered file is
never served.

Every request needs ``Authorization: Bearer <token>``: a model can be private, and the server
listens on the lab network. ``grant`` gives each dispatched job its own random token, valid only
for that job's artifact and only until its TTL (the fleet revokes it when the job ends); no
header is a 401, a wrong, expired or other artifact's token a 403. Tokens are compared in
constant time and never logged.

Model files are streamed from disk (hashed once at ``add``; if the file changes afterwards the
agent's hash check refuses it). A directory (a Core ML ``.mlpackage``) is served as the bytes of
``pack_dir``, a deterministic tar, held in memory: the same package always has the same sha256,
whatever its files' mtimes, owners or listing order.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import os
import secrets
import socket
import socketserver
import stat
import tarfile
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from agent.errors import ModelError
from agent.model_file import sha256_of

log = logging.getLogger(__name__)

ROUTE = "/artifacts/"
WILDCARD_HOSTS = ("0.0.0.0", "", "::")
FILE_MODE, DIR_MODE = 0o644, 0o755
POLL_S = 0.05  # how often the serving loop checks for stop(): bounds how long stop() blocks


def pack_dir(path: Path) -> bytes:
    """A tar of a directory's contents that depends only on relative paths and file bytes.

    Entries are sorted by relative path; mtime is 0, uid/gid 0, uname/gname empty, files 0o644 and
    directories 0o755. Symbolic links and special files are refused rather than followed, so what
    is shipped is exactly what ``agent.model_file.sha256_of`` hashes.
    """
    root = Path(path)
    if not root.is_dir():
        raise ModelError(f"{root} is not a directory; pack_dir packs model packages such as .mlpackage")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
            rel = entry.relative_to(root).as_posix()
            mode = entry.lstat().st_mode
            info = tarfile.TarInfo(rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if stat.S_ISDIR(mode):
                info.type, info.mode = tarfile.DIRTYPE, DIR_MODE
                tar.addfile(info)
            elif stat.S_ISREG(mode):
                info.type, info.mode, info.size = tarfile.REGTYPE, FILE_MODE, entry.stat().st_size
                with entry.open("rb") as f:
                    tar.addfile(info, f)
            else:
                raise ModelError(
                    f"{entry} is a link or special file; a model package may hold only files and directories "
                    f"(replace it with a copy of its target)"
                )
    return buffer.getvalue()


@dataclass(frozen=True)
class _Artifact:
    source: Path
    size: int
    data: bytes | None  # packed directory; None: stream the file from ``source``


@dataclass(frozen=True)
class _Grant:
    token: bytes
    sha256: str
    expires: float  # time.monotonic()


class _Handler(BaseHTTPRequestHandler):
    """GET/HEAD ``/artifacts/<sha256>`` with a bearer token; 401 without one, 403 with one that does
    not open that hash (registered or not), 404 off the route, 405 for other methods."""

    server: _Server
    server_version = "edgeperf-artifacts"

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _refuse_method(self) -> None:
        self.server.owner._count()
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def _serve(self, body: bool) -> None:
        owner = self.server.owner
        owner._count()
        path = urlsplit(self.path).path
        if not path.startswith(ROUTE):
            self.send_error(HTTPStatus.NOT_FOUND, "no such artifact")
            return
        sha = path[len(ROUTE) :]
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():  # checked before lookup: no probing for hashes
            self._deny(HTTPStatus.UNAUTHORIZED, "this artifact server wants the job's token (Authorization: Bearer)")
            return
        if not owner._authorized(token.strip(), sha):
            self._deny(HTTPStatus.FORBIDDEN, "the token is not valid for this artifact (wrong, expired or revoked)")
            return
        artifact = owner._lookup(sha)
        if artifact is None:
            self.send_error(HTTPStatus.NOT_FOUND, "no such artifact")
            return
        try:
            if artifact.data is not None:
                self._headers(len(artifact.data))
                if body:
                    self.wfile.write(artifact.data)
                return
            with artifact.source.open("rb") as f:
                self._headers(os.fstat(f.fileno()).st_size)  # the real size: a changed file shows up as a mismatch
                if body:
                    while chunk := f.read(1 << 20):
                        self.wfile.write(chunk)
        except FileNotFoundError:
            self.send_error(HTTPStatus.GONE, "artifact file was removed from the controller")
        except (BrokenPipeError, ConnectionResetError):
            log.debug("artifact client %s went away mid-transfer", self.client_address[0])

    def _deny(self, status: HTTPStatus, reason: str) -> None:
        body = f"{reason}\n".encode()
        self.send_response(status)
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="edgeperf-artifacts"')
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _headers(self, length: int) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: ArtifactServer

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse-DNS lookup of the host, which can stall on an offline network."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Server6(_Server):
    address_family = socket.AF_INET6


class ArtifactServer:
    """Serves registered model artifacts by sha256 from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, advertise_host: str | None = None) -> None:
        """Bind now (so ``port`` and ``url`` are known before ``start``); ``advertise_host`` goes into URLs."""
        server_class = _Server6 if ":" in host else _Server
        self._httpd = server_class((host, port), _Handler)
        self._httpd.owner = self
        if advertise_host is None:
            advertise_host = socket.gethostname() if host in WILDCARD_HOSTS else host
        self.advertise_host = advertise_host
        self._artifacts: dict[str, _Artifact] = {}
        self._grants: list[_Grant] = []
        self._lock = threading.Lock()
        self._requests = 0
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL agents use, e.g. ``http://controller.local:8765``."""
        host = f"[{self.advertise_host}]" if ":" in self.advertise_host else self.advertise_host
        return f"http://{host}:{self.port}"

    @property
    def request_count(self) -> int:
        """Requests answered so far (any path, GET/HEAD and refused methods): lets tests see cache hits."""
        with self._lock:
            return self._requests

    def add(self, path: Path) -> dict:
        """Register a model file or directory; return the job's artifact block.

        ``{"url", "sha256", "size", "name", "archive"}``: for a file the sha256 and size of its
        bytes and ``archive`` None; for a directory those of its ``pack_dir`` tar and ``"tar"``.
        The block carries no token: ``grant`` gives each job its own.
        """
        path = Path(path).expanduser()
        if path.is_dir():
            data: bytes | None = pack_dir(path)
            sha, size, archive = hashlib.sha256(data).hexdigest(), len(data), "tar"
        elif path.is_file():
            data, sha, size, archive = None, sha256_of(path), path.stat().st_size, None
        else:
            raise ModelError(f"model {path} not found; check the path before adding it to the artifact server")
        with self._lock:
            self._artifacts[sha] = _Artifact(path, size, data)
        log.debug("artifact %s registered as %s (%d bytes)", path, sha, size)
        return {"url": f"{self.url}{ROUTE}{sha}", "sha256": sha, "size": size, "name": path.name, "archive": archive}

    def grant(self, block: dict, ttl_s: float) -> dict:
        """A copy of the artifact ``block`` (from ``add``) with a fresh ``token`` that opens only this
        artifact, for ``ttl_s`` seconds or until ``revoke``: one per job, so a leaked job message
        exposes one model for one job's lifetime."""
        sha = block["sha256"]
        token = secrets.token_urlsafe(32)
        with self._lock:
            if sha not in self._artifacts:
                raise KeyError(f"artifact {sha} is not registered; add() it before granting access to it")
            now = time.monotonic()
            self._grants = [g for g in self._grants if g.expires > now]  # forget what has expired
            self._grants.append(_Grant(token.encode(), sha, now + ttl_s))
        return {**block, "token": token}

    def revoke(self, token: str) -> None:
        """End a token before its TTL (the job it was granted for has ended); unknown tokens are ignored."""
        with self._lock:
            self._grants = [g for g in self._grants if not hmac.compare_digest(g.token, token.encode())]

    def _authorized(self, token: str, sha: str) -> bool:
        """Whether ``token`` opens ``sha`` now; every live grant is compared, in constant time each."""
        given = token.encode("latin-1", "replace")  # header values arrive as latin-1 text
        now, ok = time.monotonic(), False
        with self._lock:
            for grant in self._grants:
                ok |= hmac.compare_digest(grant.token, given) and grant.sha256 == sha and grant.expires > now
        return ok

    def _lookup(self, sha: str) -> _Artifact | None:
        with self._lock:
            return self._artifacts.get(sha)

    def _count(self) -> None:
        with self._lock:
            self._requests += 1

    def start(self) -> ArtifactServer:
        """Serve on a daemon thread (so a forgotten server never keeps the CLI alive)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, args=(POLL_S,), name="artifact-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; later connections are refused."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ArtifactServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
