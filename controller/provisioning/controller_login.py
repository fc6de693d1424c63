"""The controller's password for the controller listener of ``edgeperf broker config``.

Every lab certificate is signed by one CA, so certificates alone cannot keep devices off the
listener where the controller's commands connect (each with its own client id, which devices must
not be able to take over). That listener therefore also asks for a password only the controller
has. The PKI keeps it beside the controller's certificate (``controller.password``, 0600), where
controller commands find it from ``--cert-file`` without another flag, and writes the broker's
side as a mosquitto password file (``broker.passwd``: the hash only), which
``edgeperf certs broker-folder`` copies to the broker.

The hash is mosquitto 2.0's own ``$7$`` format (PBKDF2-SHA512, as ``mosquitto_passwd`` writes
it), made here so the controller needs no mosquitto tools; the broker is what checks it
(tests/test_broker_hardening.py).
"""

from __future__ import annotations

import base64
import hashlib
import secrets

PASSWORD_FILE = "controller.password"  # beside controller.pem: ``FleetOptions.broker_url`` looks there
BROKER_FILE = "broker.passwd"
# mosquitto_passwd's own count. The password is 256 random bits, so more iterations would only cost
# the broker time on every controller connection, not make a guess any likelier.
ITERATIONS = 101


def password_line(username: str, password: str) -> str:
    """One mosquitto password-file line: ``user:$7$iterations$salt$hash`` (salt and hash in base64)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
    return f"{username}:$7${ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}\n"


def new_password() -> str:
    """256 random bits, URL-safe: it travels as the MQTT password and sits in a one-line file."""
    return secrets.token_urlsafe(32)
