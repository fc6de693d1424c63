"""The fleet key: one shared secret that signs every protocol message (HMAC-SHA256).

A broker is often shared, and a lab broker may have no TLS and no ACLs. Without a signature,
anyone who can publish there can register fake devices, send jobs, ack results away from their
owner or fill the controller's database with junk. So the controller and every agent hold the
same 32-byte key, each envelope carries ``sig`` = HMAC-SHA256(key, its version, type, device
and body bytes), and a receiver drops any message whose signature does not verify before it
decodes the body. The key proves "one of ours"; which controller owns a job is said inside the
signed body (``controller``), and topic ACLs (``edgeperf broker config``) still keep one device
off another's topics.

On one machine the controller and a local agent share the default file
(``$XDG_DATA_HOME/edgeperf/fleet.key``), created by whichever starts first. A fleet gets the
controller's key with its bundle (``edgeperf fleet bundle``) or by copying the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from agent.errors import SettingsError

KEY_BYTES = 32
SIGNATURE_HEX = 64


def default_path() -> Path:
    """``$EDGEPERF_FLEET_KEY_FILE``, else ``$XDG_DATA_HOME/edgeperf/fleet.key`` (~/.local/share/edgeperf/fleet.key),
    beside the controller's database: one variable points the controller and local agents at one key."""
    if os.environ.get("EDGEPERF_FLEET_KEY_FILE"):
        return Path(os.environ["EDGEPERF_FLEET_KEY_FILE"]).expanduser()
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "edgeperf" / "fleet.key"


def generate(path: Path) -> bytes:
    """Write a new random key to ``path`` (mode 0600) unless one is there; returns the key in the file.

    The file appears complete or not at all (written aside, then hard-linked into place), so a
    controller and an agent starting together end up with the same key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(KEY_BYTES) + "\n")
        with contextlib.suppress(FileExistsError):  # someone else's key won: use it
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return load(path)


def load(path: Path) -> bytes:
    """The key in ``path``: 64 hex digits (surrounding whitespace ignored)."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise SettingsError(f"fleet key {path} not found; copy the controller's fleet key there "
                            "(its default place is ~/.local/share/edgeperf/fleet.key on the controller)") from None
    except OSError as exc:
        raise SettingsError(f"cannot read fleet key {path}: {exc.strerror}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise SettingsError(f"fleet key {path} is not {KEY_BYTES * 2} hex digits; copy the controller's fleet key there")
    return key


def resolve(path: Path | None) -> bytes:
    """The key at ``path``, or at the default place, created there on first use."""
    return load(path_of(path))


def path_of(path: Path | None) -> Path:
    """The key file in use: ``path`` (which must exist), or the default one, created on first use."""
    if path is not None:
        load(path)  # a missing or malformed file is said here, in one line
        return path
    default = default_path()
    if not default.exists():
        generate(default)
    return default


def signature(key: bytes, version: int, kind: str, device: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of one envelope: its version, type and device, then its body's exact bytes."""
    mac = hmac.new(key, f"{version}\n{kind}\n{device}\n".encode(), hashlib.sha256)
    mac.update(body)
    return mac.hexdigest()


def verifies(key: bytes, version: int, kind: str, device: str, body: bytes, given: str) -> bool:
    """Whether ``given`` is this envelope's signature under ``key`` (compared in constant time)."""
    return hmac.compare_digest(signature(key, version, kind, device, body), given)
