"""A refused TLS connection says why in one line, in those words: revoked, expired, not yet valid, another
CA, no certificate, the broker's certificate not from our CA or not for the host dialled.

Real parts: mosquitto run from the config ``edgeperf broker config`` writes, certificates from
``controller.pki`` (a second PKI for the foreign CA; ``cryptography`` with the lab's CA key for the
out-of-date ones, which the PKI never issues), our transport, an agent process and the CLI.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.transport import BrokerRefused, BrokerUrl, Connection, TlsFiles
from controller.provisioning.pki import Pki
from tests.broker_lab import HardenedMosquitto
from tests.cli_harness import edgeperf, one_error_line
from tests.fleet_harness import AgentProcess, wait_until


def issue_out_of_date(pki: Pki, name: str, not_before: dt.datetime, not_after: dt.datetime, folder: Path) -> tuple[Path, Path]:
    """A client certificate signed by the lab's CA with the validity given (the PKI issues none like it)."""
    ca_key = serialization.load_pem_private_key((pki.root / "ca.key").read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after).sign(ca_key, hashes.SHA256()))
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One broker whose CRL (read at start) revokes pi-rev; an expired and a not-yet-valid certificate from the
    lab's CA; another lab's PKI."""
    workdir = tmp_path_factory.mktemp("refusals")
    pki = Pki.init(workdir / "pki", ["127.0.0.1"], ["pi-a", "pi-rev"])
    pki.revoke("pi-rev")
    now = dt.datetime.now(dt.timezone.utc)
    dated = {"pi-old": issue_out_of_date(pki, "pi-old", now - dt.timedelta(days=30), now - dt.timedelta(days=1), workdir),
             "pi-early": issue_out_of_date(pki, "pi-early", now + dt.timedelta(days=2), now + dt.timedelta(days=30), workdir)}
    other = Pki.init(workdir / "other", ["127.0.0.1"], ["pi-a"])
    broker = HardenedMosquitto(workdir, pki).start()
    yield pki, broker, dated, other
    broker.stop()


def refusal(url: str, tls: TlsFiles) -> str:
    """What our transport says when a command waits for this connection: one line, raised at once."""
    started = time.monotonic()
    with pytest.raises(BrokerRefused) as refused:
        Connection("refused-probe", BrokerUrl.parse(url), tls=tls).start(wait_s=10)
    message = str(refused.value)
    assert "\n" not in message and time.monotonic() - started < 5, message  # no waiting out the timeout
    return message


def test_a_revoked_certificate(lab):
    pki, broker, _, _ = lab
    cert, key = pki.root / "devices" / "pi-rev.pem", pki.root / "devices" / "pi-rev.key"  # device_files refuses it
    message = refusal(broker.url, TlsFiles(pki.ca_file, cert, key))
    assert f"the broker refused this client's certificate {cert} (pi-rev): it is revoked" in message
    assert "'edgeperf certs add pi-rev'" in message


def test_an_expired_and_a_not_yet_valid_certificate(lab):
    pki, broker, dated, _ = lab
    expired = refusal(broker.url, TlsFiles(pki.ca_file, *dated["pi-old"]))
    assert re.search(r"\(pi-old\): it expired on \w{3} +\d+ [\d:]+ \d{4} GMT; renew it \('edgeperf certs rotate pi-old'", expired)
    early = refusal(broker.url, TlsFiles(pki.ca_file, *dated["pi-early"]))  # the broker's alert says only "bad certificate"
    assert "(pi-early): it is not valid before" in early and "check the clocks" in early


def test_a_certificate_from_another_labs_ca(lab):
    pki, broker, _, other = lab
    message = refusal(broker.url, TlsFiles(pki.ca_file, *other.device_files("pi-a")))
    other_ca, our_ca = (x509.load_pem_x509_certificate(p.ca_file.read_bytes()).subject.rfc4514_string() for p in (other, pki))
    assert f"it was issued by '{other_ca.split('CN=')[1].split(',')[0]}', not by this lab's CA" in message
    assert our_ca.split("CN=")[1].split(",")[0] in message and "'edgeperf certs add pi-a'" in message


def test_no_client_certificate(lab):
    pki, broker, _, _ = lab
    message = refusal(broker.url, TlsFiles(pki.ca_file))
    assert "the broker requires a client certificate and this client has none" in message and "--cert-file" in message


def test_the_brokers_certificate_not_from_our_ca_or_not_for_the_host_dialled(lab):
    pki, broker, _, other = lab
    foreign = refusal(broker.url, TlsFiles(other.ca_file, *other.device_files("pi-a")))
    assert f"the broker's certificate is not signed by the CA in {other.ca_file}" in foreign and "--ca-file" in foreign
    misnamed = refusal(f"mqtts://localhost:{broker.port}", TlsFiles(pki.ca_file, *pki.device_files("pi-a")))
    assert "the broker's certificate does not name 'localhost'" in misnamed and "--broker-host" in misnamed


def test_a_controller_command_says_it_in_one_line(lab):
    pki, broker, dated, _ = lab
    cert, key = dated["pi-old"]
    proc = edgeperf("devices", "--broker", broker.controller_url, "--ca-file", str(pki.ca_file), "--cert-file", str(cert),
                    "--key-file", str(key), "--db", str(cert.parent / "c.db"))
    one_error_line(proc, 3, f"no connection to broker {broker.controller_url}: the broker refused this client's certificate",
                   "it expired on")


@pytest.mark.slow
def test_an_agent_whose_certificate_is_revoked_says_so_and_keeps_retrying_without_a_tight_loop(tmp_path):
    """Revoked while it runs, then the broker restarts (as docs/fleet.md says to): the agent's reconnections are
    refused, it says why, and it stays up retrying with paho's doubling back-off (a certificate may be issued
    again)."""
    pki = Pki.init(tmp_path / "pki", ["127.0.0.1"], ["pi-b"])
    broker = HardenedMosquitto(tmp_path, pki).start()
    cert, key = pki.device_files("pi-b")
    agent = AgentProcess(broker.url, "pi-b", tmp_path, "--ca-file", str(pki.ca_file), "--cert-file", str(cert),
                         "--key-file", str(key)).start()
    try:
        wait_until(lambda: "connected to" in agent.log(), 30, "the agent connected")
        pki.revoke("pi-b")
        broker.stop()
        broker.start()
        said = f"cannot connect to broker {broker.url}: the broker refused this client's certificate"
        wait_until(lambda: said in agent.log(), 20, "the agent to say why it cannot connect")
        time.sleep(12)
        log = agent.log()
        lines = [line for line in log.splitlines() if "cannot connect to broker" in line]
        lines = lines[next(i for i, line in enumerate(lines) if said in line):]  # before: the restart itself
        assert all(f"{said} {cert} (pi-b): it is revoked (on the broker's CRL)" in line for line in lines), lines
        assert 3 <= len(lines) <= 5, lines  # 1, 2, 4, 8 s apart: no tight loop
        assert [line.split()[2] for line in lines] == ["WARNING"] + ["INFO"] * (len(lines) - 1)  # said loudly once
        assert "Traceback" not in log and agent.alive()
        assert log.count("Unspecified error") == log.count("lost broker") == 1  # the restart, not the refusals
    finally:
        assert agent.terminate() == 0
        broker.stop()
