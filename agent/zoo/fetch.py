"""``edgeperf-agent zoo fetch``: download a zoo model's remote files into the cache, resumably and verified.

Each remote file is streamed into ``<cache>/<sha256>/<file>.part`` while it is hashed, and renamed onto
``<cache>/<sha256>/<file>`` only once its size and sha256 equal the manifest's pin, so a half-written
or substituted file is never visible under its name (``agent.zoo.cache`` describes the layout).

- An interrupted transfer (network drop, Ctrl-C, full disk) leaves its ``.part``; the next fetch asks for
  the rest with an HTTP ``Range`` request. A server that answers 200 instead of 206 sends the whole file
  again, and the part is restarted from that answer.
- Bytes that do not hash to the pin are deleted (``.part`` and all): the URL serves another file, and
  resuming from it would never verify. Whatever was already cached stays as it was.
- A file whose published URL fails (an HTTP error, unreachable, wrong bytes) is tried at the manifest's
  ``mirrors`` in order (GitHub's LFS links of the ONNX model zoo stopped serving in 2025; the same
  bytes are on Hugging Face): the pinned sha256 decides what is accepted, wherever it comes from.
- ``url_base`` fetches from a mirror instead of the published URL: ``<url_base>/<sha256>/<file>``, the
  cache's own layout, so a static web server started in any machine's cache is a mirror.

Only the standard library is used: the agent stays installable on a bare device.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

from agent import __version__, zoo
from agent.errors import EXIT_UNREACHABLE, EdgeperfError, ModelError, SettingsError
from agent.zoo import cache

CHUNK_BYTES = 256 * 1024
DEFAULT_TIMEOUT_S = 60.0

Progress = Callable[[zoo.ZooEntry, int, int], None]  # (file, bytes so far, bytes in all)


class FetchError(EdgeperfError):
    """A download arrived wrong or could not be stored (bad hash or size, HTTP error status, full disk): exit 1."""

    exit_code = 1


class FetchUnreachable(FetchError):
    """The server could not be reached or stopped answering (refused, timed out, cut off): exit 3."""

    exit_code = EXIT_UNREACHABLE


@dataclass(frozen=True)
class Fetched:
    """What ``fetch`` did for one file: ``committed``, ``cached`` (already there), ``downloaded`` or ``resumed``."""

    entry: zoo.ZooEntry
    path: Path
    action: str
    received: int  # bytes transferred by this call


def targets(names: Sequence[str]) -> list[zoo.ZooEntry]:
    """The files named by ``model``, ``model/file`` or ``zoo:model/file`` each; every unknown name in one line."""
    known = zoo.entries()
    chosen: list[zoo.ZooEntry] = []
    unknown = []
    for raw in names:
        name = raw.removeprefix(zoo.PREFIX)
        hits = [e for e in known if name in (e.name, e.model.name)]
        if not hits:
            unknown.append(raw)
        chosen += [hit for hit in hits if hit not in chosen]
    if unknown:
        raise ModelError(f"no zoo model named {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(m.name for m in zoo.models())} (or MODEL/FILE; list them with `edgeperf-agent zoo`)")
    return chosen


def fetch(model_or_file: str, progress: Progress | None = None, url_base: str | None = None,
          timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Fetched]:
    """Make every file of a model (or the one file ``model/file``) present and verified; raise on the first failure."""
    return [fetch_entry(entry, progress, url_base, timeout_s) for entry in targets([model_or_file])]


def check_url_base(url_base: str | None) -> None:
    """Refuse a mirror that is not an http(s) URL, before anything is downloaded."""
    if url_base is not None and not url_base.startswith(("http://", "https://")):
        raise SettingsError(f"--url-base {url_base!r} is not an http(s) URL; give e.g. http://mirror.lab:8000")


def source_url(entry: zoo.ZooEntry, url_base: str | None = None) -> str:
    """Where to download ``entry`` from: its published URL, or ``<url_base>/<sha256>/<file>`` on a mirror."""
    if url_base is None:
        return str(entry.url)
    check_url_base(url_base)
    return f"{url_base.rstrip('/')}/{entry.sha256}/{entry.file}"


def fetch_entry(entry: zoo.ZooEntry, progress: Progress | None = None, url_base: str | None = None,
                timeout_s: float = DEFAULT_TIMEOUT_S) -> Fetched:
    """Make one file present and verified: check a committed or cached one, else download it."""
    if not entry.remote:
        from agent.model_file import sha256_of

        if not entry.path.exists() or sha256_of(entry.path) != entry.sha256:
            raise FetchError(f"committed file {entry.path} is missing or does not match the manifest's sha256; "
                             "reinstall edgeperf (or restore it from git)")
        return Fetched(entry, entry.path, "committed", 0)
    urls = [source_url(entry, url_base)] if url_base is not None else [str(entry.url), *entry.mirrors]
    if cache.is_verified(entry.path, entry.sha256, entry.size_bytes):
        return Fetched(entry, entry.path, "cached", 0)
    try:
        entry.path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create the zoo cache {entry.path.parent} ({_reason(exc)}); set "
                         f"{cache.CACHE_ENV} to a folder you can write") from None
    failures: list[FetchError] = []
    for url in urls:  # the published URL, then the manifest's mirrors: the pinned sha256 decides what is accepted
        try:
            return _Download(entry, url, progress or (lambda *_: None), timeout_s).run()
        except FetchError as exc:
            failures.append(exc)
    if len(failures) == 1:
        raise failures[0]
    raise type(failures[0])(f"{failures[0]}; its mirror{'s' if len(failures) > 2 else ''} failed too: "
                            + "; ".join(str(f) for f in failures[1:]))


class _Download:
    """One file's transfer into its ``.part``, resumed where an earlier one stopped, then verified and installed."""

    def __init__(self, entry: zoo.ZooEntry, url: str, progress: Progress, timeout_s: float) -> None:
        self.entry, self.url, self.progress, self.timeout_s = entry, url, progress, timeout_s
        self.part = cache.part_path(entry.path)
        self.size = entry.size_bytes
        self.digest = hashlib.sha256()
        self.done = 0  # bytes in the part
        self.received = 0  # bytes this call transferred
        self.resumed = False  # whether the part an earlier transfer left was kept and continued

    def run(self) -> Fetched:
        try:
            out = open(self.part, "ab")  # noqa: SIM115 - held across the transfer, closed below
        except OSError as exc:
            raise self._disk_error(exc) from None
        with out:
            _lock(out, self.part)
            self._hash_part(out)
            if self.done < self.size:
                self._transfer(out)
            self._sync(out)
        got = self.digest.hexdigest()
        if self.done != self.size or got != self.entry.sha256:
            self.part.unlink(missing_ok=True)
            why = ("it resumed an earlier part, so run the same command once more to download it whole" if self.resumed
                   else "that URL serves another file (fix the manifest's url or pin, or the mirror)")
            raise FetchError(f"sha256 mismatch for {zoo.PREFIX}{self.entry.name} from {self.url}: expected "
                             f"{self.entry.sha256}, got {got}; nothing was cached and the download was deleted: {why}")
        os.replace(self.part, self.entry.path)
        cache.record_verified(self.entry.path, self.entry.sha256)
        return Fetched(self.entry, self.entry.path, "resumed" if self.resumed else "downloaded", self.received)

    def _hash_part(self, out: IO[bytes]) -> None:
        """Hash what an earlier transfer left in the part (restarting a part longer than the file)."""
        have = os.fstat(out.fileno()).st_size
        if have > self.size:
            out.truncate(0)
            have = 0
        if have:
            with self.part.open("rb") as f:
                while chunk := f.read(cache.CHUNK_BYTES):
                    self.digest.update(chunk)
        self.done, self.resumed = have, have > 0

    def _restart(self, out: IO[bytes]) -> None:
        """Throw the part away: the server sends the file from its first byte."""
        out.truncate(0)
        out.seek(0)
        self.digest, self.done, self.resumed = hashlib.sha256(), 0, False

    def _transfer(self, out: IO[bytes]) -> None:
        headers = {"User-Agent": f"edgeperf-agent/{__version__}"}
        if self.done:
            headers["Range"] = f"bytes={self.done}-"
        try:
            response = urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=self.timeout_s)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and self.done:  # the part does not fit the server's file: start over
                self._restart(out)
                return self._transfer(out)
            raise FetchError(f"{self.url} answered HTTP {exc.code} {exc.reason} for {zoo.PREFIX}{self.entry.name}; "
                             "the file moved or the mirror lacks it (check the manifest's url or --url-base)") from None
        except urllib.error.URLError as exc:
            raise self._unreachable(exc.reason) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from None
        with response:
            resumes = not self.done or self._resumes(response)
            self._check_length(response, self.done if resumes else 0)
            if not resumes:
                self._restart(out)  # a 200 to a Range request: the whole file is coming, take it from here
            self.progress(self.entry, self.done, self.size)
            self._stream(response, out)

    def _resumes(self, response: Any) -> bool:
        """Whether the answer is the rest of the file from the part's end (206 with a matching Content-Range)."""
        content_range = response.headers.get("Content-Range", "")
        return response.status == 206 and content_range.startswith(f"bytes {self.done}-")

    def _check_length(self, response: Any, start: int) -> None:
        """Refuse an answer whose length already says it is not the pinned file (before the part is touched)."""
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) != self.size - start:
            raise FetchError(f"{self.url} sends {int(declared) + start} bytes of {zoo.PREFIX}{self.entry.name} but the "
                             f"manifest pins {self.size}; that URL serves another file (fix the manifest's url or pin)")

    def _stream(self, response: Any, out: IO[bytes]) -> None:
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as exc:  # reset, timeout, body cut short
                raise self._unreachable(exc, stopped=True) from None
            if not chunk:
                break
            if self.done + len(chunk) > self.size:
                self.part.unlink(missing_ok=True)
                raise FetchError(f"{self.url} sent more than the {self.size} bytes the manifest pins for "
                                 f"{zoo.PREFIX}{self.entry.name}; nothing was cached (fix the manifest's url or pin)")
            self._write(out, chunk)
            self.progress(self.entry, self.done, self.size)
        if self.done < self.size:
            self._sync(out)
            raise self._unreachable("the server closed the connection", stopped=True)

    def _write(self, out: IO[bytes], chunk: bytes) -> None:
        try:
            out.write(chunk)
        except OSError as exc:
            raise self._disk_error(exc) from None
        self.digest.update(chunk)
        self.done += len(chunk)
        self.received += len(chunk)

    def _sync(self, out: IO[bytes]) -> None:
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            raise self._disk_error(exc) from None

    def _disk_error(self, exc: OSError) -> FetchError:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return FetchError(f"cannot write {self.part} ({_reason(exc)}); set {cache.CACHE_ENV} to a folder you can write")
        try:
            free = f"{zoo.size_text(shutil.disk_usage(self.part.parent).free)} free there"
        except OSError:
            free = "free space unknown"
        return FetchError(f"disk full writing {self.part}: {zoo.PREFIX}{self.entry.name} needs "
                          f"{zoo.size_text(self.size - self.done)} more ({free}); free space or set {cache.CACHE_ENV} to a "
                          "bigger disk, then run the same command to resume (the part is kept)")

    def _unreachable(self, reason: object, stopped: bool = False) -> FetchUnreachable:
        text = f"timed out after {self.timeout_s:g} s" if isinstance(reason, TimeoutError) else _reason(reason)
        if stopped:
            return FetchUnreachable(f"the transfer from {self.url} stopped after {self.done} of {self.size} bytes ({text}); "
                                    "run the same command to resume (the part is kept)")
        return FetchUnreachable(f"cannot reach {self.url} ({text}); fetching needs internet, or a mirror given with --url-base")


def _lock(out: IO[bytes], part: Path) -> None:
    """Refuse a second fetch of the same file at the same time: both would append to one part."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; a clash ends in a hash mismatch, which deletes the part
        return
    try:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise FetchError(f"another fetch is writing {part}; wait for it to finish") from None


def _reason(exc: object) -> str:
    """A short reason for a one-line message: an OSError's strerror, else the first line of its text."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ProgressPrinter:
    """Progress on a stream, throttled: redrawn in place on a terminal, a line every few seconds in a log."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = 0.2 if self.tty else 5.0
        self.last = 0.0
        self.open_line = False  # a terminal line being redrawn, not yet ended

    def end_line(self) -> None:
        """End a line left open on a terminal, so an error message starts on its own line."""
        if self.open_line:
            self.stream.write("\n")
            self.open_line = False

    def __call__(self, entry: zoo.ZooEntry, done: int, total: int) -> None:
        now = time.monotonic()
        final = done >= total
        if not final and now - self.last < self.every_s:
            return
        self.last = now
        pct = 100 * done / total if total else 100
        line = f"{zoo.PREFIX}{entry.name}: {zoo.size_text(done)} of {zoo.size_text(total)} ({pct:.0f}%)"
        self.stream.write(f"\r{line}\033[K" + ("\n" if final else "") if self.tty else line + "\n")
        self.stream.flush()
        self.open_line = self.tty and not final
