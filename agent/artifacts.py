"""Model artifacts fetched from the controller, cached by content and verified before use.

A job names its model by ``{url, sha256, size, name, archive}`` (docs/protocol.md, "Artifacts"). The sha256 is the
contract: bytes that do not hash to it are never made visible under the cache, so a runtime never
loads a half-written or substituted model and a result's ``model_sha256`` is true.

Layout under ``root``::

    <sha256>/<name>                a model file (archive None), or
    <sha256>/<name>/...            a directory extracted from a tar (archive "tar": a Core ML .mlpackage)
    <sha256>/.<name>.verified      for a directory only: JSON {archive_sha256, tree_sha256}
    .download-*, .extract-*        work in progress; renamed into place only once verified

Cache hits are re-verified every time, because an SD card can rot and a user can edit a file:

- a file is re-hashed and must still equal the job's sha256;
- a directory is hashed with ``model_file.sha256_of`` (sorted relative paths and contents) and
  must equal the ``tree_sha256`` recorded right after its archive was verified and extracted. The
  archive itself is not kept: the tree hash checks the bytes the runtime will actually load, at
  no extra disk space. A directory without its record is treated as a miss.

A hit that fails verification is deleted and fetched again (logged as a warning); if the new
download does not verify either, ``fetch`` raises and nothing is left in the cache.

One agent owns one cache directory. Within the process a lock serialises fetches; installs are
atomic renames, so a crash leaves either the old state or the new one, plus stray work files that
the next start sweeps up once they are a day old.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath
from typing import IO, Any

from agent import __version__
from agent.contract import ARTIFACT_TOKEN
from agent.errors import EdgeperfError
from agent.model_file import sha256_of
from agent.origins import SCHEMES, split_origin

log = logging.getLogger(__name__)

DEFAULT_MAX_ARTIFACT_BYTES = 2 << 30  # 2 GiB: the largest model an edge device is expected to hold
ARCHIVES = (None, "tar")
CHUNK_BYTES = 1 << 20
STALE_WORK_S = 24 * 3600.0
_SHA256 = re.compile(r"[0-9a-f]{64}")
AUTH_HEADER = "Authorization"  # as urllib.request.Request stores it (str.capitalize)
_WORK_PREFIXES = (".download-", ".extract-")
_TOKEN_HINTS = {
    401: "; the job carried no artifact token (a controller older than this agent?): update the controller",
    403: "; the artifact server refused the job's token (expired, revoked when the job ended, or the controller "
    "restarted): run the job again from the controller",
}


class ArtifactError(EdgeperfError):
    """A model artifact could not be fetched, was not what the job declared, or is unsafe to unpack."""


class _NoSchemeChangeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s) (urllib would follow one to ftp://), and keep the job's
    artifact token only while the redirect stays on the same origin.

    The token travels as an *unredirected* header, which urllib drops on every redirect; it is put
    back only when the new URL has the same scheme, host and port, so a redirect elsewhere never
    receives it.
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # urllib's own (untyped) signature
        if urllib.parse.urlsplit(newurl).scheme.lower() not in SCHEMES:
            raise urllib.error.HTTPError(newurl, code, f"redirect to a non-http URL {newurl!r} refused", headers, fp)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        auth = req.unredirected_hdrs.get(AUTH_HEADER)
        here = split_origin(req.full_url)
        if new is not None and auth and here is not None and split_origin(newurl) == here:
            new.add_unredirected_header(AUTH_HEADER, auth)
        return new


class ArtifactCache:
    """Content-addressed store of verified model artifacts under ``root``."""

    def __init__(self, root: Path | str, max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES) -> None:
        """``max_artifact_bytes`` caps both the download and, for archives, the bytes extracted."""
        self.root = Path(root).expanduser()
        self.max_artifact_bytes = max_artifact_bytes
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(_NoSchemeChangeRedirects)
        self._sweep_stale_work()

    def fetch(
        self,
        url: str,
        sha256: str,
        size: int,
        name: str,
        archive: str | None = None,
        timeout_s: float = 60.0,
        token: str | None = None,
    ) -> Path:
        """Return the verified local path of the artifact, downloading it only on a miss.

        ``sha256`` and ``size`` describe the bytes at ``url`` (for ``archive="tar"``: the tar); the
        returned path is ``root/<sha256>/<name>``, a file or, for a tar, a directory. ``token`` is
        the job's artifact token, sent as ``Authorization: Bearer`` (the controller's server wants
        one per job); it is never logged.
        """
        sha = self._checked(url, sha256, size, name, archive)
        if token is not None and not (isinstance(token, str) and ARTIFACT_TOKEN.fullmatch(token)):
            raise ArtifactError(f"artifact {name}: the job's token is not a bearer token; the controller sends the one it grants")
        dest = self.root / sha / name
        with self._lock:
            if self._verified_hit(dest, sha, archive):
                log.debug("artifact %s: cache hit %s", name, dest)
                return dest
            if self._present(dest):
                log.warning("artifact %s: cached copy at %s failed verification; fetching it again", name, dest)
                self._remove_entry(dest)
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self._download(url, sha, size, name, timeout_s, token)
            try:
                if archive is None:
                    dest.parent.mkdir(exist_ok=True)
                    os.replace(tmp, dest)
                else:
                    self._install_tar(tmp, sha, name, dest)
            finally:
                tmp.unlink(missing_ok=True)
        log.info("artifact %s: fetched %d bytes (sha256 %s…) into %s", name, size, sha[:12], dest)
        return dest

    # -- checks ----------------------------------------------------------------------------------

    def _checked(self, url: str, sha256: str, size: int, name: str, archive: str | None) -> str:
        """Refuse anything that could escape the cache or is not worth a request; return the normalised sha."""
        sha = sha256.lower() if isinstance(sha256, str) else ""
        if not _SHA256.fullmatch(sha):
            raise ArtifactError(f"artifact {name!r}: sha256 {sha256!r} is not 64 hex digits")
        if (
            not isinstance(name, str)
            or name in ("", ".", "..")
            or name.startswith(".")
            or any(c in name for c in "/\\\0")
            or len(name.encode()) > 255
        ):
            raise ArtifactError(f"artifact name {name!r} is not a plain file name; the controller must send e.g. 'int8.tflite'")
        if archive not in ARCHIVES:
            raise ArtifactError(f"artifact {name}: unknown archive kind {archive!r}; expected none or 'tar'")
        scheme = urllib.parse.urlsplit(url).scheme.lower() if isinstance(url, str) else ""
        if scheme not in SCHEMES:
            raise ArtifactError(f"artifact {name}: URL {url!r} is not http or https; the agent fetches models over HTTP only")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ArtifactError(f"artifact {name}: size {size!r} is not a byte count")
        if size > self.max_artifact_bytes:
            raise ArtifactError(
                f"artifact {name} is {size} bytes, over this agent's limit of {self.max_artifact_bytes}; "
                f"raise max_artifact_bytes or ship a smaller model"
            )
        return sha

    # -- cache hits ------------------------------------------------------------------------------

    @staticmethod
    def _record_path(dest: Path) -> Path:
        return dest.parent / f".{dest.name}.verified"

    @staticmethod
    def _present(dest: Path) -> bool:
        return dest.is_symlink() or dest.exists()

    def _verified_hit(self, dest: Path, sha: str, archive: str | None) -> bool:
        """True only if the cached entry still has exactly the content the job names."""
        if dest.is_symlink():
            return False
        try:
            if archive is None:
                return dest.is_file() and sha256_of(dest) == sha
            if not dest.is_dir():
                return False
            record = json.loads(self._record_path(dest).read_text())
            return record.get("archive_sha256") == sha and record.get("tree_sha256") == sha256_of(dest)
        except (OSError, ValueError, AttributeError):
            return False

    def _remove_entry(self, dest: Path) -> None:
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        else:
            dest.unlink(missing_ok=True)
        self._record_path(dest).unlink(missing_ok=True)

    # -- download --------------------------------------------------------------------------------

    def _download(self, url: str, sha: str, size: int, name: str, timeout_s: float, token: str | None) -> Path:
        """Stream ``url`` into a work file in ``root`` while hashing; return it only if size and hash match."""
        request = urllib.request.Request(url, headers={"User-Agent": f"edgeperf-agent/{__version__}"})
        if token:
            request.add_unredirected_header(AUTH_HEADER, f"Bearer {token}")
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".download-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                got = self._stream(request, url, size, name, timeout_s, out)
                out.flush()
                os.fsync(out.fileno())
            if got != sha:
                raise ArtifactError(
                    f"artifact hash mismatch for {name}: expected {sha[:12]}…, got {got[:12]}…; "
                    f"the controller's copy changed or the transfer was corrupted"
                )
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _stream(self, request: urllib.request.Request, url: str, size: int, name: str, timeout_s: float, out: IO[bytes]) -> str:
        digest, received = hashlib.sha256(), 0
        try:
            with self._opener.open(request, timeout=timeout_s) as response:
                declared = response.headers.get("Content-Length")
                if declared is not None and declared.strip().isdigit() and int(declared) != size:
                    raise ArtifactError(
                        f"artifact {name}: {url} sends {int(declared)} bytes but the job declares {size}; "
                        f"the controller's copy changed since the job was made"
                    )
                while chunk := response.read(CHUNK_BYTES):
                    received += len(chunk)
                    if received > size:
                        raise ArtifactError(f"artifact {name}: {url} sent more than the {size} bytes the job declares")
                    digest.update(chunk)
                    out.write(chunk)
        except urllib.error.HTTPError as exc:
            hint = _TOKEN_HINTS.get(exc.code, "")
            raise ArtifactError(f"cannot fetch artifact {name} from {url}: HTTP {exc.code} {exc.reason}{hint}") from None
        except urllib.error.URLError as exc:
            raise ArtifactError(f"cannot fetch artifact {name} from {url}: {_reason(exc.reason)}") from None
        except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, truncated bodies
            raise ArtifactError(f"cannot fetch artifact {name} from {url}: {_reason(exc)}") from None
        if received != size:
            raise ArtifactError(f"artifact {name}: {url} sent {received} bytes but the job declares {size}")
        return digest.hexdigest()

    # -- archives --------------------------------------------------------------------------------

    def _install_tar(self, tar_path: Path, sha: str, name: str, dest: Path) -> None:
        """Extract a verified tar into a work directory, record its tree hash, then rename it into place."""
        work = Path(tempfile.mkdtemp(dir=self.root, prefix=".extract-"))
        try:
            tree = work / name
            tree.mkdir()
            try:
                with tarfile.open(tar_path, mode="r:") as tar:
                    members = tar.getmembers()
                    self._check_members(members, name)
                    if hasattr(tarfile, "data_filter"):
                        tar.extractall(tree, members=members, filter="data")
                    else:  # Python without PEP 706; _check_members already refused everything unsafe
                        tar.extractall(tree, members=members)
            except tarfile.TarError as exc:
                raise ArtifactError(f"artifact {name}: not a usable tar archive ({exc}); re-add it on the controller") from None
            except OSError as exc:
                raise ArtifactError(f"artifact {name}: cannot extract into {self.root}: {_reason(exc)}") from None
            record = work / "record.json"
            record.write_text(json.dumps({"archive_sha256": sha, "tree_sha256": sha256_of(tree)}))
            dest.parent.mkdir(exist_ok=True)
            os.replace(record, self._record_path(dest))
            os.rename(tree, dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _check_members(self, members: list[tarfile.TarInfo], name: str) -> None:
        """Refuse the whole archive if any member could land outside it or is not a plain file or directory."""
        total = 0
        for member in members:
            path = PurePosixPath(member.name)
            if member.name.startswith(("/", "\\")) or path.is_absolute() or re.match(r"[A-Za-z]:", member.name):
                raise ArtifactError(f"artifact {name}: archive member {member.name!r} has an absolute path; refusing to extract")
            if ".." in path.parts or "\\" in member.name:
                raise ArtifactError(f"artifact {name}: archive member {member.name!r} leads outside the package; refusing it")
            if not (member.isdir() or (member.isreg() and not member.issparse())):
                raise ArtifactError(
                    f"artifact {name}: archive member {member.name!r} is a {_kind(member)}; "
                    f"model packages may hold only files and directories"
                )
            total += member.size
            if total > self.max_artifact_bytes:
                raise ArtifactError(f"artifact {name}: archive expands past {self.max_artifact_bytes} bytes; refusing to extract")

    # -- housekeeping ----------------------------------------------------------------------------

    def _sweep_stale_work(self) -> None:
        """Remove work files a crashed fetch left behind (a day old, so a live fetch is never touched)."""
        if not self.root.is_dir():
            return
        cutoff = time.time() - STALE_WORK_S
        for entry in self.root.iterdir():
            if entry.name.startswith(_WORK_PREFIXES):
                with contextlib.suppress(OSError):
                    if entry.lstat().st_mtime >= cutoff:
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()


def _reason(exc: Any) -> str:
    """A short reason for a one-line message: the strerror of an OSError, else its text."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.isdev():
        return "device or fifo"
    if member.issparse():
        return "sparse file"
    return f"tar entry of type {member.type!r}"
