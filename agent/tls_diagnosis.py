"""Why a TLS connection to the broker failed, said in one line that names the file and the fix.

A refused client certificate used to surface as paho's "Unspecified error". With TLS 1.3 the
broker checks the client's certificate only after the client's side of the handshake is done:
paho has already sent CONNECT, the broker answers with an alert and closes, and whether the client
reads the alert or only a closed socket is a race (measured with mosquitto 2.0.11: a revoked,
not-yet-valid or unknown-CA certificate ended in "EOF occurred in violation of protocol" in most
attempts). So after a connection that ends before the broker's CONNACK, ``probe`` makes one bare
handshake with the same files and then only reads: with nothing sent after the handshake, the
alert arrives every time (20 of 20 attempts per case, TLS 1.2 and 1.3, measured). The alert
names the reason where the broker gives one (revoked, expired, unknown CA, no certificate); where
it does not ("bad certificate", a closed socket), the client's own files say what is wrong: the
certificate's validity against this machine's clock, its issuer against the CA file.

The agent carries no X.509 library: certificates are read with the ssl module's own decoder
(``TlsFiles.certificate``).
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.transport import TlsFiles

PROBE_TIMEOUT_S = 2.0  # a broker that accepted the certificate waits for MQTT's CONNECT: silence means accepted
# OpenSSL's verify codes for the broker's certificate (x509_vfy.h)
NOT_YET_VALID, EXPIRED, HOSTNAME_MISMATCH, IP_MISMATCH = 9, 10, 62, 64


def probe(host: str, port: int, tls: TlsFiles, timeout_s: float = PROBE_TIMEOUT_S) -> OSError | None:
    """What a bare TLS handshake with ``tls``'s files meets at ``host:port`` when it then only listens: a TLS
    failure (``ssl.SSLError``: the broker's alert, this side's check of the broker, or a close after the handshake),
    another socket error (nobody listens there), or None when the broker accepted the certificate."""
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw, context.wrap_socket(
                raw, server_hostname=host) as sock:
            if sock.recv(1) == b"":  # closed without an alert: still the broker's refusal, after the handshake
                return ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "the broker closed the connection after the TLS handshake")
    except TimeoutError:
        return None
    except OSError as exc:  # ssl.SSLError included
        return exc
    return None


def describe(error: ssl.SSLError, tls: TlsFiles, host: str) -> str:
    """One line for a failed TLS connection: the broker's certificate failed this client's check, or the broker
    refused this client's certificate (and why, from the alert or from the certificate itself), or the other
    side does not speak TLS at all."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return _broker_certificate(error, tls, host)
    reason = getattr(error, "reason", None) or ""
    if isinstance(error, ssl.SSLEOFError) or "ALERT" in reason:  # the broker's answer to this client's certificate
        return _client_certificate(reason, str(error), tls)
    return f"the TLS handshake failed ({error}): is this the broker's TLS port? (mqtts:// needs one; plain MQTT is mqtt://)"


def _broker_certificate(error: ssl.SSLCertVerificationError, tls: TlsFiles, host: str) -> str:
    code, detail = error.verify_code, error.verify_message
    if code == EXPIRED:
        return (f"the broker's certificate has expired ({detail}): renew it on the controller ('edgeperf certs rotate "
                "broker'), copy it to the broker and send mosquitto SIGHUP; if it has not, set this machine's clock")
    if code == NOT_YET_VALID:
        return f"the broker's certificate is not valid yet by this machine's clock ({detail}): set the clock (NTP)"
    if code in (HOSTNAME_MISMATCH, IP_MISMATCH):
        return (f"the broker's certificate does not name '{host}' ({detail}): connect by a name or address given to "
                "'edgeperf certs init --broker-host'")
    if tls.ca_file is None:
        return (f"the broker's certificate is not signed by a CA this system trusts ({detail}): pass the lab's ca.pem "
                "as ca_file (--ca-file)")
    return (f"the broker's certificate is not signed by the CA in {tls.ca_file} ({detail}): use the lab's ca.pem from "
            "its PKI folder as ca_file (--ca-file)")


def _client_certificate(reason: str, error: str, tls: TlsFiles) -> str:
    if tls.cert_file is None:
        return ("the broker requires a client certificate and this client has none: set cert_file and key_file "
                "(--cert-file/--key-file) to its files from 'edgeperf certs add'")
    cert = tls.certificate() or {}
    name = _common_name(cert.get("subject", ())) or "?"
    whose = f"the broker refused this client's certificate {tls.cert_file} ({name})"
    now = time.time()
    not_before, not_after = (ssl.cert_time_to_seconds(cert[key]) if key in cert else None for key in ("notBefore", "notAfter"))
    issuer = _common_name(cert.get("issuer", ()))
    ca = tls.ca_certificate() or {}
    ca_name = _common_name(ca.get("subject", ()))
    if reason == "SSLV3_ALERT_CERTIFICATE_REVOKED":
        return (f"{whose}: it is revoked (on the broker's CRL); issue a new one on the controller ('edgeperf certs add "
                f"{name}') and install it ('edgeperf fleet flash')")
    if reason == "SSLV3_ALERT_CERTIFICATE_EXPIRED" or (not_after is not None and not_after < now):
        until = cert.get("notAfter", "?")
        if not_after is not None and not_after > now:
            return (f"{whose}: the broker says it expired, but it is valid until {until} by this machine's clock: check "
                    "the broker's clock")
        return f"{whose}: it expired on {until}; renew it ('edgeperf certs rotate {name}' on the controller) and install it"
    if not_before is not None and not_before > now:
        return (f"{whose}: it is not valid before {cert['notBefore']} (this machine's clock says {time.ctime(now)}): check "
                "the clocks of this machine, the broker and the one that issued it (NTP)")
    if ca_name and issuer and issuer != ca_name:
        return (f"{whose}: it was issued by '{issuer}', not by this lab's CA '{ca_name}' ({tls.ca_file}), and the broker "
                f"trusts only its lab's CA; issue one from the lab's PKI ('edgeperf certs add {name}')")
    if reason == "TLSV1_ALERT_UNKNOWN_CA":
        return (f"{whose}: the broker does not trust the CA that issued it ('{issuer}'): configure the broker from that "
                "lab's PKI ('edgeperf broker config'), or issue this client a certificate from the broker's")
    return (f"{whose} ({reason or error}); it is in date and issued by the CA in {tls.ca_file}, so the broker may have "
            "revoked it or not trust that CA: see the broker's log")


def _common_name(name: tuple) -> str | None:
    """The CN in a name as the ssl module decodes it: a tuple of RDNs, each a tuple of (key, value) pairs."""
    return next((value for rdn in name for key, value in rdn if key == "commonName"), None)
