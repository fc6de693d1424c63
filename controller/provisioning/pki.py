"""The lab PKI behind ``edgeperf certs``: a CA, the broker's, the controller's and each device's certificate.

A fleet on a shared network should speak mutual TLS: the broker proves who it is to every client,
and every client proves who it is to the broker with a certificate whose CN is its MQTT identity
(mosquitto's ``use_identity_as_username``), so the broker's ACL can keep device A off device B's
topics (``controller/broker_config.py``). Labs rarely run a CA, so this module is one: a folder
with EC P-256 keys and SHA-256 signatures made with ``cryptography``, an ``index.json`` of every
certificate it issued, and a CRL for the ones it revoked.

Safety rules, because these are a lab's keys:
- ``init`` never overwrites: it builds the whole PKI in a temporary sibling folder and renames it
  into place, so the folder either holds a complete PKI or is untouched.
- Every later write is atomic (temporary file + ``os.replace``) and made in an order that fails
  safe: new key and certificate first, then the CRL, then ``index.json``. A command interrupted
  half-way leaves a CRL that revokes *more* than the index says, never less.
- Private keys are 0600 and the folder 0700; mutating commands hold an exclusive lock on the folder
  so two admins adding devices at once cannot lose each other's entries.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.contract import check_device_id
from agent.errors import EdgeperfError
from controller.provisioning import controller_login

try:  # POSIX; on Windows the lock is skipped (a lab's controller runs on Linux or macOS)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

FORMAT = "edgeperf.pki/1"
CA_DAYS = 3650  # the CA outlives many leaf rotations; a leaf never outlives the CA (clipped)
# A device whose clock is behind (no RTC, NTP not yet synced: the fault suite steps agents 2 h back) still
# accepts a fresh certificate and CRL.
BACKDATE = dt.timedelta(days=1)
BROKER = "broker"
CONTROLLER_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")  # it becomes an ACL ``user`` line: no spaces
DNS_NAME = re.compile(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?")


class PkiError(EdgeperfError):
    """The PKI folder is missing, not a PKI, or asked for something it must refuse (overwrite, unknown device)."""


@dataclass(frozen=True)
class CertEntry:
    """One issued certificate as ``index.json`` records it."""

    serial: str  # hex
    kind: str  # broker | controller | device
    name: str  # CN: the device id, the controller name, or the broker's first host
    file: str  # certificate path relative to the PKI folder (the key sits next to it, .key)
    not_after: str  # ISO 8601, UTC
    revoked_at: str | None = None

    def state(self, now: dt.datetime | None = None) -> str:
        """``valid``, ``revoked`` or ``expired``."""
        if self.revoked_at:
            return "revoked"
        now = now or dt.datetime.now(dt.timezone.utc)
        return "expired" if dt.datetime.fromisoformat(self.not_after) <= now else "valid"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).isoformat()


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` so a reader (or a crash) sees the old content or the new, never half of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)  # before any byte is written: a key is never readable by others, even briefly
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _san(host: str) -> x509.GeneralName:
    """IP addresses as IP SANs (TLS clients match an IP only against those), names as DNS SANs."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _key_usage(*allowed: str) -> x509.KeyUsage:
    """A KeyUsage extension that allows only ``allowed``; the constructor wants every flag spelled out."""
    flags = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{flag: flag in allowed for flag in flags})


def _check_host(host: str) -> str:
    host = host.strip()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not DNS_NAME.fullmatch(host) or len(host) > 253:
            raise PkiError(f"broker host {host!r} is neither an IP address nor a DNS name") from None
    return host


class Pki:
    """A PKI folder: ``ca.pem``/``ca.key``, ``broker``, ``controller`` (with ``controller.password`` and the broker's
    ``broker.passwd``: ``controller_login``), ``devices/<id>``, ``crl.pem``, ``index.json``."""

    def __init__(self, root: Path, index: dict[str, Any]) -> None:
        """Use ``Pki.init`` or ``Pki.open``; this only binds a folder to its loaded index."""
        self.root, self._index = root, index
        self._ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None

    # ---- creating and opening -------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        root: Path,
        broker_hosts: Sequence[str],
        devices: Sequence[str] = (),
        controller_name: str = "edgeperf-controller",
        days: int = 825,
    ) -> Pki:
        """Create a new PKI in ``root`` (new or empty folder): CA, broker, controller and device certificates, CRL."""
        root = Path(root).expanduser().absolute()
        if (root / "ca.pem").exists() or (root / "ca.key").exists():
            raise PkiError(
                f"{root} already holds a CA; refusing to overwrite a lab's keys (use 'edgeperf certs add/rotate "
                f"--pki {root}', or choose a new folder)"
            )
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise PkiError(f"{root} exists and is not an empty folder; 'edgeperf certs init' needs a new or empty one")
        hosts = list(dict.fromkeys(_check_host(h) for h in broker_hosts if h.strip()))
        if not hosts:
            raise PkiError("give at least one --broker-host: the name or IP address clients use to reach the broker")
        if not CONTROLLER_NAME.fullmatch(controller_name) or controller_name == BROKER:
            raise PkiError(f"controller name {controller_name!r} must be 1-64 of [A-Za-z0-9._-] and not {BROKER!r}")
        if days < 1:
            raise PkiError(f"--days must be at least 1, not {days}")
        device_ids = list(dict.fromkeys(devices))
        index: dict[str, Any] = {
            "format": FORMAT,
            "controller_name": controller_name,
            "broker_hosts": hosts,
            "days": days,
            "crl_number": 0,
            "certs": [],
        }
        try:  # a read-only or virtual file system (/proc, a mount without write) is the user's to fix
            root.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.init-"))  # 0700
        except OSError as exc:
            raise PkiError(f"cannot create {root} ({exc.strerror}); give --out a folder you can write") from None
        try:
            pki = cls(staging, index)
            for device_id in device_ids:
                pki.check_new_device(device_id)
            now = _now()
            ca_key = ec.generate_private_key(ec.SECP256R1())
            ca_cert = pki._ca_certificate(ca_key, now)
            (staging / "devices").mkdir(mode=0o700)
            write_atomic(staging / "ca.key", _key_pem(ca_key), 0o600)
            write_atomic(staging / "ca.pem", _cert_pem(ca_cert))
            pki._ca = (ca_key, ca_cert)
            pki._issue("broker", hosts[0], now)
            pki._issue("controller", controller_name, now)
            pki._issue_login()
            for device_id in device_ids:
                pki._issue("device", device_id, now)
            pki._write_crl(now)
            pki._save()
            os.chmod(staging, 0o700)
            os.replace(staging, root)  # atomic; also replaces an empty folder (rename(2))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls.open(root)

    @classmethod
    def open(cls, root: Path, ca_key: bool = True) -> Pki:
        """Open an existing PKI folder made by ``init``; ``ca_key`` False also opens a broker-only folder
        (``export_broker``), which can configure a broker but issue, rotate or revoke nothing."""
        root = Path(root).expanduser().absolute()
        hint = f"create one with 'edgeperf certs init --out {root} --broker-host HOST'"
        if not root.is_dir():
            raise PkiError(f"PKI folder {root} does not exist; {hint}")
        index_file = root / "index.json"
        if not index_file.is_file() or not (root / "ca.pem").is_file():
            raise PkiError(f"{root} is not an edgeperf PKI (no index.json and ca.pem); {hint}")
        if ca_key and not (root / "ca.key").is_file():
            raise PkiError(f"{root} has no CA key (a broker-only folder?); run this on the PKI folder made by "
                           "'edgeperf certs init', which keeps it")
        try:
            index = json.loads(index_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PkiError(f"cannot read {index_file}: {exc}") from None
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise PkiError(f"{index_file} is not an {FORMAT} index; {hint}")
        return cls(root, index)

    def export_broker(self, out: Path) -> Pki:
        """What the broker needs and nothing more, in ``out``: the CA certificate (not its key), the CRL,
        the broker's certificate and key, and the hash of the controller's password (not the password).
        A broker host that is broken into then holds no key that can issue certificates or impersonate
        the controller or a device. Run again after a revoke or a broker or controller rotation: it
        replaces the folder's files."""
        out = Path(out).expanduser().absolute()
        if out == self.root:
            raise PkiError(f"{out} is the PKI folder itself; give a new folder for the broker's copy")
        if (out / "ca.key").exists():
            raise PkiError(f"{out} holds a CA key: it is a full PKI folder, not a broker-only one; choose another folder")
        self.ensure_controller_login()
        cert, key = self.broker_files
        out.mkdir(parents=True, exist_ok=True)
        os.chmod(out, 0o700)
        broker = [raw for raw in self._index["certs"] if raw["kind"] == "broker"]
        files = ((self.ca_file, 0o644), (self.crl_file, 0o644), (cert, 0o644), (key, 0o600), (self.broker_password_file, 0o600))
        for path, mode in files:
            write_atomic(out / path.relative_to(self.root), path.read_bytes(), mode)
        write_atomic(out / "index.json", (json.dumps(self._index | {"certs": broker}, indent=2) + "\n").encode())
        return Pki.open(out, ca_key=False)

    # ---- reading --------------------------------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"

    @property
    def crl_file(self) -> Path:
        return self.root / "crl.pem"

    @property
    def index_file(self) -> Path:
        return self.root / "index.json"

    @property
    def controller_password_file(self) -> Path:
        """The controller's password for the controller listener, beside its certificate (never copied to the broker)."""
        return self.root / controller_login.PASSWORD_FILE

    @property
    def broker_password_file(self) -> Path:
        """mosquitto's password file for the controller listener: the controller's name and password hash."""
        return self.root / controller_login.BROKER_FILE

    @property
    def controller_name(self) -> str:
        return self._index["controller_name"]

    @property
    def broker_hosts(self) -> list[str]:
        return list(self._index["broker_hosts"])

    @property
    def controller_files(self) -> tuple[Path, Path]:
        """(certificate, key) for the controller's ``--cert-file``/``--key-file``."""
        return self._files("controller", self.controller_name)

    @property
    def broker_files(self) -> tuple[Path, Path]:
        """(certificate, key) for mosquitto's ``certfile``/``keyfile``."""
        entry = self._current("broker", None)
        if entry is None:
            raise PkiError(f"{self.root} has no broker certificate; 'edgeperf certs rotate broker --pki {self.root}'")
        return self._files("broker", entry.name)

    def device_files(self, device_id: str) -> tuple[Path, Path]:
        """(certificate, key) to copy to the device; refused for an unknown or revoked device."""
        self._check_id(device_id)
        return self._files("device", device_id)

    def entries(self) -> list[CertEntry]:
        """Every certificate ever issued here, oldest first (revoked and rotated ones included)."""
        return [CertEntry(**raw) for raw in self._index["certs"]]

    def _current(self, kind: str, name: str | None) -> CertEntry | None:
        """The latest certificate issued for ``kind``/``name`` (``name`` None: any name of that kind)."""
        for entry in reversed(self.entries()):
            if entry.kind == kind and (name is None or entry.name == name):
                return entry
        return None

    def _files(self, kind: str, name: str) -> tuple[Path, Path]:
        entry = self._current(kind, name)
        what = f"device {name!r}" if kind == "device" else f"the {kind}"
        if entry is None and kind != "device":
            raise PkiError(f"{self.root} has no {kind} certificate; is its index.json damaged?")
        if entry is None:
            fix = f"'edgeperf certs add {name} --pki {self.root}'"
            raise PkiError(f"no certificate for {what} in {self.root}; issue one with {fix}")
        if entry.revoked_at:
            raise PkiError(
                f"the certificate of {what} was revoked at {entry.revoked_at}; issue a new one with "
                f"'edgeperf certs add {name} --pki {self.root}'"
            )
        cert = self.root / entry.file
        key = cert.with_suffix(".key")
        if not cert.is_file() or not key.is_file():
            raise PkiError(f"{cert} or its key is missing; reissue with 'edgeperf certs rotate {name} --pki {self.root}'")
        return cert, key

    # ---- changing -------------------------------------------------------------------------------

    def ensure_controller_login(self) -> None:
        """Give a PKI made before the controller listener existed its controller password and the broker's hash."""
        with self._transaction():
            if not (self.controller_password_file.is_file() and self.broker_password_file.is_file()):
                self._issue_login()

    def add_device(self, device_id: str) -> tuple[Path, Path]:
        """Issue a client certificate for a new device (or one whose certificate was revoked)."""
        with self._transaction():
            self.check_new_device(device_id)
            now = _now()
            entry = self._issue("device", device_id, now)
            self._save()
        return self.root / entry.file, (self.root / entry.file).with_suffix(".key")

    def rotate(self, name: str) -> tuple[CertEntry, CertEntry]:
        """New key and certificate for a device id, ``broker`` or the controller name; the old serial is revoked.

        Returns (old entry as revoked, new entry).
        """
        with self._transaction():
            if name == BROKER:
                kind, old = "broker", self._current("broker", None)
            elif name == self.controller_name:
                kind, old = "controller", self._current("controller", name)
            else:
                self._check_id(name)
                kind, old = "device", self._current("device", name)
            if old is None or old.revoked_at:
                state = "was revoked" if old else "has no certificate"
                raise PkiError(f"{name!r} {state} in {self.root}; issue one with 'edgeperf certs add {name} --pki {self.root}'")
            now = _now()
            new = self._issue(kind, old.name if kind != "broker" else self.broker_hosts[0], now)
            if kind == "controller":  # a stolen controller key may have left with its password
                self._issue_login()
            revoked = self._mark_revoked(old.serial, now)
            self._write_crl(now)
            self._save()
        return revoked, new

    def revoke(self, device_id: str) -> CertEntry:
        """Revoke a device's certificate and re-issue the CRL; its files stay, ``device_files`` refuses them."""
        with self._transaction():
            self._check_id(device_id)
            entry = self._current("device", device_id)
            if entry is None:
                raise PkiError(f"no certificate for device {device_id!r} in {self.root}; nothing to revoke")
            if entry.revoked_at:
                raise PkiError(f"the certificate of device {device_id!r} was already revoked at {entry.revoked_at}")
            now = _now()
            revoked = self._mark_revoked(entry.serial, now)
            self._write_crl(now)
            self._save()
        return revoked

    # ---- internals ------------------------------------------------------------------------------

    def _check_id(self, device_id: str) -> None:
        try:
            check_device_id(device_id)
        except ValueError as exc:
            raise PkiError(str(exc)) from None

    def check_new_device(self, device_id: str) -> None:
        """Raise ``PkiError`` unless ``add_device(device_id)`` would issue a certificate."""
        self._check_id(device_id)
        if device_id in (self.controller_name, BROKER):
            raise PkiError(f"device id {device_id!r} is taken by the {'controller' if device_id != BROKER else 'broker'}")
        for other in self.entries():  # on macOS "Pi-A" and "pi-a" would share (and overwrite) one key file
            same_file = other.name != device_id and other.name.casefold() == device_id.casefold()
            if other.kind == "device" and same_file and not other.revoked_at:
                raise PkiError(f"device id {device_id!r} differs from {other.name!r} only in case; pick another id")
        entry = self._current("device", device_id)
        if entry is not None and not entry.revoked_at:
            raise PkiError(
                f"device {device_id!r} already has a certificate (serial {entry.serial[:16]}, until {entry.not_after}); "
                f"replace it with 'edgeperf certs rotate {device_id} --pki {self.root}'"
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Hold the folder's lock and work on the index as it is on disk now, not as it was at ``open``."""
        lock_path = self.root / ".lock"
        with open(lock_path, "a") as lock:
            if fcntl is not None:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                self._index = Pki.open(self.root)._index
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    @property
    def _ca_pair(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        cached = self._ca
        if cached is None:
            if not (self.root / "ca.key").is_file():
                raise PkiError(f"{self.root} has no CA key (a broker-only folder); issue, rotate and revoke on the PKI "
                               "folder made by 'edgeperf certs init'")
            try:
                key = serialization.load_pem_private_key((self.root / "ca.key").read_bytes(), password=None)
                cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
            except (OSError, ValueError) as exc:
                raise PkiError(f"cannot load the CA from {self.root}: {exc}") from None
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise PkiError(f"{self.root / 'ca.key'} is not an EC key")
            cached = self._ca = (key, cert)
        return cached

    def _ca_certificate(self, key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgeperf lab"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"edgeperf lab CA {secrets.token_hex(4)}"),  # tells labs apart
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + dt.timedelta(days=max(CA_DAYS, self._index["days"])))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                # crl_sign: OpenSSL refuses a CRL signed by a CA whose key usage lacks it
                _key_usage("key_cert_sign", "crl_sign"),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )

    def _issue(self, kind: str, name: str, now: dt.datetime) -> CertEntry:
        """New key and certificate for ``kind``/``name``, written over the previous files; appended to the index."""
        ca_key, ca_cert = self._ca_pair
        key = ec.generate_private_key(ec.SECP256R1())
        not_after = min(now + dt.timedelta(days=self._index["days"]), ca_cert.not_valid_after_utc)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if kind == "broker" else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                _key_usage("digital_signature"),  # ECDSA signs the TLS handshake; nothing else
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if kind == "broker":
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_san(h) for h in self.broker_hosts]), critical=False
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        rel = {"broker": "broker.pem", "controller": "controller.pem"}.get(kind) or f"devices/{name}.pem"
        cert_path = self.root / rel
        # key first: a certificate on disk always has its key next to it
        write_atomic(cert_path.with_suffix(".key"), _key_pem(key), 0o600)
        write_atomic(cert_path, _cert_pem(cert))
        entry = CertEntry(format(cert.serial_number, "x"), kind, name, rel, _iso(not_after))
        self._index["certs"].append(entry.as_dict())
        return entry

    def _issue_login(self) -> None:
        """A new controller password beside its certificate, then the broker's hash of it. The hash is 0600
        like the broker's key: mosquitto reads both as the same account."""
        password = controller_login.new_password()
        write_atomic(self.controller_password_file, f"{password}\n".encode(), 0o600)
        line = controller_login.password_line(self.controller_name, password)
        write_atomic(self.broker_password_file, line.encode(), 0o600)

    def _mark_revoked(self, serial: str, now: dt.datetime) -> CertEntry:
        for raw in self._index["certs"]:
            if raw["serial"] == serial:
                raw["revoked_at"] = _iso(now)
                return CertEntry(**raw)
        raise PkiError(f"serial {serial} is not in {self.index_file}")  # pragma: no cover - index and caller agree

    def _write_crl(self, now: dt.datetime) -> None:
        """Sign a CRL listing every revoked serial; written before the index so it never lags behind it."""
        ca_key, ca_cert = self._ca_pair
        self._index["crl_number"] = int(self._index.get("crl_number", 0)) + 1
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - BACKDATE)
            # next_update = the CA's own expiry, not a week or a month: OpenSSL (and so mosquitto) refuses
            # every client once the CRL's next_update has passed, and nothing here re-signs the CRL on a
            # schedule. An old CRL must never silently lock the whole fleet out; revocations take effect
            # when the broker reloads this file, not when a CRL expires.
            .next_update(ca_cert.not_valid_after_utc)
            .add_extension(x509.CRLNumber(self._index["crl_number"]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        for entry in self.entries():
            if entry.revoked_at:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(int(entry.serial, 16))
                    .revocation_date(dt.datetime.fromisoformat(entry.revoked_at))
                    .build()
                )
        write_atomic(self.crl_file, builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))

    def _save(self) -> None:
        write_atomic(self.index_file, (json.dumps(self._index, indent=2) + "\n").encode())
