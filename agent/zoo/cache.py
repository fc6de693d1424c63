"""Where fetched zoo files live on this machine, and how a cached copy is known to be the pinned bytes.

Layout, content-addressed so a file is found by the manifest's sha256 alone (the same layout as the
agent's artifact cache, ``agent.artifacts``)::

    <cache>/<sha256>/<file>              a verified file, e.g. .../64ab…/fp32.onnx
    <cache>/<sha256>/<file>.part         an unfinished download, resumed by the next fetch
    <cache>/<sha256>/.<file>.verified    {"sha256", "size", "mtime_ns"} of the file when it was last hashed

``<cache>`` is ``$EDGEPERF_ZOO_CACHE``, else ``$XDG_CACHE_HOME/edgeperf/zoo``, else
``~/.cache/edgeperf/zoo``. Because the layout is ``<sha256>/<file>``, any static web server started in a
cache (``python -m http.server -d ~/.cache/edgeperf/zoo``) is a mirror that ``zoo fetch --url-base`` reads.

Checking a cached copy: its size must equal the pin, and its sha256 is computed once, when it is
downloaded (or the first time it is seen without a record), then recorded with the file's mtime. Later
checks compare size and mtime with the record and hash again only when either changed, so listing the
zoo or loading a campaign does not re-read gigabytes; a file edited in place changes its mtime and is
hashed again. File times are coarse (a clock tick of milliseconds), so, as git does for its index, a
record is trusted only if it was written after the file's last change, never in the same tick. (A copy
rotting on disk without an mtime change is caught by the result's model sha256, which
``agent.model_file`` computes from the bytes the runtime loads.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

CACHE_ENV = "EDGEPERF_ZOO_CACHE"
CHUNK_BYTES = 1 << 20


def cache_dir() -> Path:
    """The zoo cache of this user: ``$EDGEPERF_ZOO_CACHE`` or ``$XDG_CACHE_HOME/edgeperf/zoo``."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "edgeperf" / "zoo"


def cached_path(sha256: str, file: str) -> Path:
    """Where the file pinned to ``sha256`` is (or will be, once fetched)."""
    return cache_dir() / sha256 / file


def part_path(dest: Path) -> Path:
    """The unfinished download of ``dest``, kept between runs so a fetch resumes where it stopped."""
    return dest.with_name(dest.name + ".part")


def _record_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.verified")


def sha256_file(path: Path) -> str:
    """The sha256 of one file, read in chunks (files are up to gigabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def record_verified(dest: Path, sha256: str) -> None:
    """Note that ``dest`` hashed to ``sha256`` as it is now; a read-only cache simply keeps no record."""
    st = dest.stat()
    with contextlib.suppress(OSError):  # a shared, read-only cache: every check hashes again, slower but still right
        _record_path(dest).write_text(json.dumps({"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))


def is_verified(dest: Path, sha256: str, size: int) -> bool:
    """Whether ``dest`` is a regular file with the pinned size and sha256 (hashed only if changed since last time)."""
    try:
        st = dest.stat()
    except OSError:
        return False
    if not dest.is_file() or st.st_size != size:
        return False
    record_path = _record_path(dest)
    try:
        record = json.loads(record_path.read_text())
        # "racy" as in git: a file changed in the same clock tick as the record was written shows the recorded mtime
        trusted = record_path.stat().st_mtime_ns > st.st_mtime_ns
    except (OSError, ValueError):
        record, trusted = None, False
    if trusted and record == {"sha256": sha256, "size": size, "mtime_ns": st.st_mtime_ns}:
        return True
    try:
        if sha256_file(dest) != sha256:
            return False
    except OSError:
        return False
    record_verified(dest, sha256)
    return True
