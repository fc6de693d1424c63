"""``edgeperf broker config``: a hardened mosquitto 2.0 configuration and ACLs for a lab PKI.

The protocol lets any client publish anywhere; only the broker can stop device A from posting
results as device B, reading B's jobs, or taking B's (or the controller's) client id and so
pushing it off the broker. This module writes the mosquitto settings that do it: two mutual-TLS
listeners (no plaintext one), one for the devices and one for the controller, each with its own
security settings and ACL, in which a device may use only its own topics, in the direction the
protocol gives it (``agent.contract.TOPICS``), and the controller every fleet topic.

mosquitto 2.0 semantics this relies on (mosquitto.conf(5); each checked with mosquitto 2.0.11 in
tests/test_broker_hardening.py):
- ``per_listener_settings true`` makes ``allow_anonymous``, ``acl_file``, ``password_file``,
  ``require_certificate``, ``use_identity_as_username`` and ``use_username_as_clientid`` settings
  of the listener they follow.
- With ``use_identity_as_username`` the certificate's CN is the username and no password check
  runs at all (a password file, or the dynamic-security plugin's client-id binding, never applies
  to such clients). ``use_username_as_clientid`` then replaces the client id the device sent with
  that CN *before* mosquitto looks for a connected client to take over, so a device can only ever
  take over its own session. mosquitto 2.0.11 closes a taken-over connection without an MQTT 5
  DISCONNECT (no reason code 0x8E reaches the client) and publishes its will.
- A client whose password check fails is refused (CONNACK "not authorized") before any takeover:
  a device that tries the controller listener with the controller's client id disconnects nobody.
- ``topic`` lines before the first ``user`` line apply to anonymous clients; we write none.
  ``pattern`` lines apply to every client wherever they stand; ``%u`` is the username, here the
  certificate's CN, i.e. the device id. A topic not granted is denied.
- ``read`` governs subscribing and receiving, ``write`` publishing (a will included).
- ``crlfile`` is read at start and again on SIGHUP, with the certificate, key and password file
  (measured with 2.0.11: before the signal a revoked certificate still connects, after it is refused).
  But a revoked device that is *already connected* keeps its connection through SIGHUP; only a
  restart drops it. So after ``edgeperf certs revoke``: restart mosquitto (every client reconnects
  by itself, the revoked one is refused). After ``rotate``, SIGHUP is enough: the broker serves a
  new broker certificate, refuses the old serial and takes the rotated controller password on the
  next connection.
"""

from __future__ import annotations

from pathlib import Path

from agent.contract import DEFAULT_PREFIX, MAX_PAYLOAD_BYTES, TOPICS, Topics
from agent.errors import EdgeperfError
from controller.provisioning.pki import Pki, write_atomic

# The broker checks whole MQTT packets: the payload limit plus the fixed header, the topic
# (prefix + device id + kind, a few hundred bytes at most) and MQTT 5 properties.
MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 16 * 1024
DEVICE_WRITES = tuple(kind for kind, (_, _, side) in TOPICS.items() if side == "agent")
DEVICE_READS = tuple(kind for kind, (_, _, side) in TOPICS.items() if side == "controller")


class BrokerConfigError(EdgeperfError):
    """A setting that cannot make a valid mosquitto configuration (bad port, prefix with wildcards)."""


def _check(ports: tuple[int, int], bind: str, prefix: str, max_packet_bytes: int) -> None:
    for port in ports:
        if not 1 <= port <= 65535:
            raise BrokerConfigError(f"port {port} is not a TCP port (1-65535)")
    if ports[0] == ports[1]:
        raise BrokerConfigError(f"the devices' and the controller's listeners need two ports, not {ports[0]} twice; "
                                "set --controller-port to another one")
    if not bind or any(c.isspace() for c in bind):
        raise BrokerConfigError(f"bind address {bind!r} must be one address or host name")
    if not prefix or prefix.startswith("/") or prefix.endswith("/") or any(c in prefix for c in "+#\0") or " " in prefix:
        raise BrokerConfigError(f"topic prefix {prefix!r} must be non-empty, without wildcards, spaces or a leading/trailing /")
    if max_packet_bytes < MAX_PAYLOAD_BYTES:
        raise BrokerConfigError(f"max packet size {max_packet_bytes} is below the protocol's {MAX_PAYLOAD_BYTES}-byte payloads")


def render(
    pki: Pki,
    *,
    port: int = 8883,
    controller_port: int | None = None,
    bind: str = "0.0.0.0",
    prefix: str = DEFAULT_PREFIX,
    acl_path: Path,
    controller_acl_path: Path,
    max_packet_bytes: int = MAX_PACKET_BYTES,
    user: str | None = None,
) -> tuple[str, str, str]:
    """(mosquitto.conf text, the devices' ACL, the controller's ACL) for ``pki``; the controller's listener is on
    ``controller_port``, by default the next port after the devices' one; ``user`` is the account mosquitto drops
    to when started as root."""
    controller_port = controller_port or controller_port_for(port)
    _check((port, controller_port), bind, prefix, max_packet_bytes)
    ca, crl = pki.ca_file.absolute(), pki.crl_file.absolute()
    cert, key = (p.absolute() for p in pki.broker_files)
    tls = f"""\
cafile {ca}
certfile {cert}
keyfile {key}
# Revoked certificates ('edgeperf certs revoke'/'rotate'). Read at start and on SIGHUP, but a revoked
# device that is already connected stays connected through SIGHUP: restart mosquitto after a revoke.
crlfile {crl}
# Clients without a certificate signed by the CA above fail the TLS handshake.
require_certificate true
# The minimum TLS version; 1.3 is used where both sides have it.
tls_version tlsv1.2
allow_anonymous false"""
    drop = (
        f"user {user}\n"
        if user
        else "# user mosquitto   (the default when started as root; that account must be able to read the files below)\n"
    )
    conf = f"""\
# edgeperf fleet broker, generated by 'edgeperf broker config' for the PKI in {pki.root.absolute()}
# Run with: mosquitto -c <this file>. Re-generate rather than edit: the ACLs follow the PKI and the protocol.

# Two listeners with their own security settings: the devices' and the controller's.
per_listener_settings true
# Results are never trusted to broker queues (docs/protocol.md), so nothing needs persisting.
persistence false
{drop}
# Whole MQTT packets above this are refused and the client disconnected: the protocol's payload
# limit ({MAX_PAYLOAD_BYTES} bytes) plus room for the header, topic and MQTT 5 properties.
max_packet_size {max_packet_bytes}

# ---- Devices (agents connect here). There is no plaintext listener; with listeners configured,
# mosquitto 2.0 opens no default one on 1883.
listener {port} {bind}
{tls}
# The certificate's CN (the device id) is the MQTT username the ACL sees; a password or username
# the client sends is ignored.
use_identity_as_username true
# ... and the client id: whatever id a device sends, it gets its own name, so it can take over no
# session but its own (another device's or the controller's cannot be reached from here). Two agents
# sharing one certificate (a cloned SD card) push each other off; the newer one notices and stops.
use_username_as_clientid true
# Each device reads and writes only its own topics.
acl_file {Path(acl_path).absolute()}

# ---- The controller (its commands connect here, each under its own client id).
listener {controller_port} {bind}
{tls}
# Every lab certificate passes the TLS check, a device's too; the password is what only the controller
# has: controller.password in its PKI folder, of which this file holds the hash. A client that fails it
# is refused before it can take over anyone's client id.
use_identity_as_username false
password_file {pki.broker_password_file.absolute()}
acl_file {Path(controller_acl_path).absolute()}
"""
    topics = Topics(prefix)
    header = (f"# edgeperf ACL (mosquitto 2.0), generated by 'edgeperf broker config' for {pki.root.absolute()}\n"
              "# Anything not granted here is denied. No topic lines before the first 'user' line: those would apply\n"
              "# to anonymous clients, and there are none.\n")
    acl = (
        header
        + f"# The devices' listener ({port}): usernames are certificate CNs (use_identity_as_username).\n"
        "# 'pattern' lines apply to every client; %u is the client's CN, i.e. its device id.\n"
        "# A device reads only the messages addressed to it and writes only its own reports.\n"
        + "".join(f"pattern read {_own(topics, kind)}\n" for kind in DEVICE_READS)
        + "".join(f"pattern write {_own(topics, kind)}\n" for kind in DEVICE_WRITES)
        + "# ... its own status too (a second agent under its id shows there), and the controller's announce.\n"
        f"pattern read {_own(topics, 'status')}\n"
        f"pattern read {topics.announce()}\n"
    )
    controller_acl = (
        header
        + f"# The controller's listener ({controller_port}): the user is the one in the password file.\n"
        "# The controller uses every fleet topic (it sends jobs and acks, and reads every device's reports).\n"
        f"user {pki.controller_name}\n"
        f"topic readwrite {prefix}/#\n"
    )
    return conf, acl, controller_acl


def controller_port_for(port: int) -> int:
    """The controller listener's port when only the devices' is given: the next one (8883 -> 8884). Controller
    commands that know only the agents' URL (``fleet flash``) find the controller listener the same way."""
    return port + 1


def _own(topics: Topics, kind: str) -> str:
    """A device's own topic in a ``pattern`` line; ``%u`` is no device id (``Topics.device`` refuses it),
    so it takes the place of the wildcard level in the every-device filter."""
    return topics.all_devices(kind).replace("/+/", "/%u/")


def write(
    pki: Pki,
    out: Path,
    *,
    port: int = 8883,
    controller_port: int | None = None,
    bind: str = "0.0.0.0",
    prefix: str = DEFAULT_PREFIX,
    max_packet_bytes: int = MAX_PACKET_BYTES,
    user: str | None = None,
) -> tuple[Path, Path, Path]:
    """Write the config to ``out`` and the ACLs next to it (``<stem>.acl``, ``<stem>.controller.acl``);
    returns the three paths. A full PKI folder made before the controller listener gets its controller
    password here; a broker-only copy of one must be made again."""
    out = Path(out).expanduser().absolute()
    acl_path, controller_acl_path = out.with_name(f"{out.stem}.acl"), out.with_name(f"{out.stem}.controller.acl")
    if out in (acl_path, controller_acl_path):
        raise BrokerConfigError(f"--out {out} would be overwritten by its own ACL; name the config file *.conf")
    if not pki.broker_password_file.is_file():
        if not (pki.root / "ca.key").is_file():
            raise BrokerConfigError(f"{pki.root} has no {pki.broker_password_file.name} (the controller's password hash): "
                                    "it was copied by an older edgeperf; run 'edgeperf certs broker-folder' again on the "
                                    "controller and copy the folder here")
        pki.ensure_controller_login()
    conf, acl, controller_acl = render(pki, port=port, controller_port=controller_port, bind=bind, prefix=prefix,
                                       acl_path=acl_path, controller_acl_path=controller_acl_path,
                                       max_packet_bytes=max_packet_bytes, user=user)
    if not out.parent.is_dir():
        raise BrokerConfigError(f"folder {out.parent} does not exist; create it or choose another --out")
    write_atomic(acl_path, acl.encode())
    write_atomic(controller_acl_path, controller_acl.encode())
    write_atomic(out, conf.encode())
    return out, acl_path, controller_acl_path
