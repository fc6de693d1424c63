"""The lab PKI's promises: certificates that verify, keys nobody else reads, no overwrites, revocations in the CRL."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import stat
import uuid
from pathlib import Path

import pytest
import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store
from typer.testing import CliRunner

from controller.cli import certs as certs_cli
from controller.provisioning import broker_config
from controller.provisioning.broker_config import BrokerConfigError
from controller.provisioning.pki import Pki, PkiError

runner = CliRunner()


def cert_of(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def cn(cert: x509.Certificate) -> str:
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def crl_serials(pki: Pki) -> set[int]:
    crl = x509.load_pem_x509_crl(pki.crl_file.read_bytes())
    assert crl.is_signature_valid(cert_of(pki.ca_file).public_key())
    return {r.serial_number for r in crl}


def one_line(output: str) -> str:
    return " ".join(output.split())  # rich wraps long lines at the test terminal's width


@pytest.fixture
def pki(tmp_path) -> Pki:
    return Pki.init(tmp_path / "pki", ["127.0.0.1", "broker.lab", "::1"], ["pi-a", "pi-b"])


def test_certificates_verify_against_the_ca_with_the_right_names_and_uses(pki):
    ca = cert_of(pki.ca_file)
    store = Store([ca])
    broker = cert_of(pki.broker_files[0])
    for host in ("broker.lab",):
        PolicyBuilder().store(store).build_server_verifier(x509.DNSName(host)).verify(broker, [])
    for ip in ("127.0.0.1", "::1"):
        PolicyBuilder().store(store).build_server_verifier(x509.IPAddress(ipaddress.ip_address(ip))).verify(broker, [])
    with pytest.raises(x509.verification.VerificationError):  # a name the broker was not issued for
        PolicyBuilder().store(store).build_server_verifier(x509.DNSName("other.lab")).verify(broker, [])
    sans = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["broker.lab"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert cn(broker) == "127.0.0.1"
    assert broker.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )

    # Client certificates carry their identity in the CN (what mosquitto's use_identity_as_username reads),
    # not in a subjectAltName: the Web PKI profile would demand one, so only that rule is relaxed here.
    leaf_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    client_verifier = (
        PolicyBuilder().store(store).extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=leaf_policy)
        .build_client_verifier()
    )
    for name, (cert_path, key_path) in [("edgeperf-controller", pki.controller_files)] + [
        (d, pki.device_files(d)) for d in ("pi-a", "pi-b")
    ]:
        cert = cert_of(cert_path)
        client_verifier.verify(cert, [])
        assert cn(cert) == name
        assert ExtendedKeyUsageOID.CLIENT_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert key.public_key() == cert.public_key()  # the key next to the certificate is its key
        assert cert.signature_hash_algorithm.name == "sha256" and key.curve.name == "secp256r1"
    assert pki.device_files("pi-a")[0] == pki.root / "devices" / "pi-a.pem"

    # a certificate from another lab's CA does not verify here
    other = Pki.init(pki.root.parent / "other", ["127.0.0.1"], ["pi-a"])
    with pytest.raises(x509.verification.VerificationError):
        client_verifier.verify(cert_of(other.device_files("pi-a")[0]), [])


def test_keys_are_private_and_the_index_records_every_certificate(pki):
    assert stat.S_IMODE(pki.root.stat().st_mode) == 0o700
    assert stat.S_IMODE((pki.root / "devices").stat().st_mode) == 0o700
    keys = sorted(pki.root.rglob("*.key"))
    assert [k.relative_to(pki.root).as_posix() for k in keys] == [
        "broker.key", "ca.key", "controller.key", "devices/pi-a.key", "devices/pi-b.key"
    ]
    assert {stat.S_IMODE(k.stat().st_mode) for k in keys} == {0o600}
    index = json.loads(pki.index_file.read_text())
    assert [(c["kind"], c["name"], c["file"], c["revoked_at"]) for c in index["certs"]] == [
        ("broker", "127.0.0.1", "broker.pem", None),
        ("controller", "edgeperf-controller", "controller.pem", None),
        ("device", "pi-a", "devices/pi-a.pem", None),
        ("device", "pi-b", "devices/pi-b.pem", None),
    ]
    for entry in pki.entries():
        cert = cert_of(pki.root / entry.file)
        assert int(entry.serial, 16) == cert.serial_number
        assert dt.datetime.fromisoformat(entry.not_after) == cert.not_valid_after_utc
        assert entry.state() == "valid"
    # the CRL is signed by the CA, lists nothing yet, and expires with the CA, not before it
    crl = x509.load_pem_x509_crl(pki.crl_file.read_bytes())
    assert crl_serials(pki) == set() and crl.next_update_utc == cert_of(pki.ca_file).not_valid_after_utc
    assert not list(pki.root.parent.glob(".pki.*")), "init left its staging folder behind"


def test_init_never_overwrites_a_ca_or_a_folder_in_use(pki, tmp_path):
    before = {p: p.read_bytes() for p in pki.root.rglob("*") if p.is_file()}
    with pytest.raises(PkiError, match="already holds a CA; refusing to overwrite"):
        Pki.init(pki.root, ["10.0.0.1"])
    assert {p: p.read_bytes() for p in pki.root.rglob("*") if p.is_file()} == before

    busy = tmp_path / "home"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(PkiError, match="not an empty folder"):
        Pki.init(busy, ["10.0.0.1"])
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert Pki.init(empty, ["10.0.0.1"]).ca_file == empty / "ca.pem"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"devices": ["pi-a", "pi/b"]}, r"device id 'pi/b' must be 1-64 characters of A-Z a-z 0-9 \. _ : -"),
        ({"devices": ["edgeperf-controller"]}, "is taken by the controller"),
        ({"devices": ["broker"]}, "is taken by the broker"),
        ({"broker_hosts": []}, "give at least one --broker-host"),
        ({"broker_hosts": ["bad host!"]}, "neither an IP address nor a DNS name"),
        ({"controller_name": "the controller"}, "must be 1-64 of"),
        ({"days": 0}, "--days must be at least 1"),
    ],
)
def test_init_refuses_bad_input_and_leaves_nothing_behind(tmp_path, kwargs, message):
    args = {"broker_hosts": ["127.0.0.1"]} | kwargs
    with pytest.raises(PkiError, match=message):
        Pki.init(tmp_path / "pki", **args)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_init_leaves_no_half_pki(tmp_path, monkeypatch):
    real_replace, calls = os.replace, []

    def crash_on_the_fourth(src, dst):  # the CA, then the broker's key: stop half-way, like a Ctrl-C
        calls.append(dst)
        if len(calls) == 4:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        Pki.init(tmp_path / "pki", ["127.0.0.1"], ["pi-a"])
    assert list(tmp_path.iterdir()) == []  # neither the folder nor the staging folder


def test_rotate_issues_a_new_key_and_revokes_the_old_serial(pki):
    old_cert = cert_of(pki.device_files("pi-a")[0])
    old_key = pki.device_files("pi-a")[1].read_bytes()
    crl_number = json.loads(pki.index_file.read_text())["crl_number"]
    revoked, new = pki.rotate("pi-a")
    new_cert = cert_of(pki.device_files("pi-a")[0])
    assert int(revoked.serial, 16) == old_cert.serial_number and revoked.state() == "revoked"
    assert int(new.serial, 16) == new_cert.serial_number != old_cert.serial_number
    assert pki.device_files("pi-a")[1].read_bytes() != old_key
    assert new_cert.public_key() != old_cert.public_key() and cn(new_cert) == "pi-a"
    assert crl_serials(pki) == {old_cert.serial_number}
    assert json.loads(pki.index_file.read_text())["crl_number"] == crl_number + 1

    old_broker = cert_of(pki.broker_files[0])
    pki.rotate("broker")
    broker = cert_of(pki.broker_files[0])
    assert broker.serial_number != old_broker.serial_number
    san = x509.SubjectAlternativeName
    assert broker.extensions.get_extension_for_class(san) == old_broker.extensions.get_extension_for_class(san)
    old_controller = cert_of(pki.controller_files[0])
    pki.rotate("edgeperf-controller")
    assert crl_serials(pki) == {old_cert.serial_number, old_broker.serial_number, old_controller.serial_number}
    assert cn(cert_of(pki.controller_files[0])) == "edgeperf-controller"


def test_an_interrupted_rotate_fails_safe(pki, monkeypatch):
    """Files, then the CRL, then the index: a crash before the index leaves the old serial revoked, not valid."""
    old_serial = cert_of(pki.device_files("pi-b")[0]).serial_number
    index_before = pki.index_file.read_bytes()
    real_replace = os.replace

    def crash_on_the_index(src, dst):
        if Path(dst).name == "index.json":
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_the_index)
    with pytest.raises(KeyboardInterrupt):
        pki.rotate("pi-b")
    monkeypatch.setattr(os, "replace", real_replace)
    assert pki.index_file.read_bytes() == index_before
    assert old_serial in crl_serials(pki)
    assert not [p for p in pki.root.rglob(".*") if p.name != ".lock"], "temporary files left behind"
    pki = Pki.open(pki.root)
    pki.rotate("pi-b")  # running it again completes the rotation
    assert cert_of(pki.device_files("pi-b")[0]).serial_number not in crl_serials(pki)


def test_revoke_keeps_the_files_but_refuses_them(pki):
    cert_path, key_path = pki.device_files("pi-b")
    serial = cert_of(cert_path).serial_number
    entry = pki.revoke("pi-b")
    assert entry.revoked_at and serial in crl_serials(pki)
    assert cert_path.exists() and key_path.exists()
    with pytest.raises(PkiError, match=r"device 'pi-b' was revoked at .*'edgeperf certs add pi-b --pki"):
        pki.device_files("pi-b")
    with pytest.raises(PkiError, match="already revoked"):
        pki.revoke("pi-b")
    with pytest.raises(PkiError, match=r"was revoked .* 'edgeperf certs add pi-b"):
        pki.rotate("pi-b")
    assert Pki.open(pki.root).entries()[-1].state() == "revoked"  # recorded on disk, not only in this object
    pki.add_device("pi-b")  # a revoked device may get a new certificate
    assert cert_of(pki.device_files("pi-b")[0]).serial_number not in crl_serials(pki)
    assert crl_serials(pki) == {serial}


def test_unknown_and_duplicate_devices_get_one_clear_error(pki):
    with pytest.raises(PkiError, match=r"no certificate for device 'pi-z' in .*; issue one with 'edgeperf certs add pi-z --pki"):
        pki.device_files("pi-z")
    with pytest.raises(PkiError, match=r"has no certificate .* 'edgeperf certs add pi-z"):
        pki.rotate("pi-z")
    with pytest.raises(PkiError, match="nothing to revoke"):
        pki.revoke("pi-z")
    with pytest.raises(PkiError, match=r"already has a certificate .* 'edgeperf certs rotate pi-a --pki"):
        pki.add_device("pi-a")
    with pytest.raises(PkiError, match="differs from 'pi-a' only in case"):
        pki.add_device("PI-A")
    with pytest.raises(PkiError, match="device id 'pi\\+a' must be 1-64 characters of"):
        pki.device_files("pi+a")
    with pytest.raises(PkiError, match=r"is not an edgeperf PKI .* 'edgeperf certs init --out"):
        Pki.open(pki.root / "devices")
    with pytest.raises(PkiError, match="does not exist"):
        Pki.open(pki.root / "nowhere")


def test_two_writers_do_not_lose_each_others_certificates(pki):
    first, second = Pki.open(pki.root), Pki.open(pki.root)  # two admins, each opened the PKI before the other wrote
    first.add_device("pi-c")
    second.add_device("pi-d")
    reopened = Pki.open(pki.root)
    assert {e.name for e in reopened.entries() if e.kind == "device"} == {"pi-a", "pi-b", "pi-c", "pi-d"}
    with pytest.raises(PkiError, match="already has a certificate"):
        second.add_device("pi-c")


def test_the_certs_commands(tmp_path):
    root = tmp_path / "lab"
    result = runner.invoke(certs_cli.app, ["init", "--out", str(root), "--broker-host", "10.0.0.5", "--broker-host",
                                           "mqtt.lab", "--device", "pi-a"])
    assert result.exit_code == 0, result.output
    assert f"PKI created in {root}" in result.output
    assert Pki.open(root).broker_hosts == ["10.0.0.5", "mqtt.lab"]

    again = runner.invoke(certs_cli.app, ["init", "--out", str(root), "--broker-host", "10.0.0.5"])
    assert again.exit_code == 2 and one_line(again.output).startswith(f"error: {root} already holds a CA")
    assert "Traceback" not in again.output

    assert runner.invoke(certs_cli.app, ["add", "pi-b", "pi-c", "--pki", str(root)]).exit_code == 0
    typo = runner.invoke(certs_cli.app, ["add", "pi-d", "pi/e", "--pki", str(root)])
    assert typo.exit_code == 2 and "device id 'pi/e' must be" in one_line(typo.output)
    assert "pi-d" not in {e.name for e in Pki.open(root).entries()}, "a bad id in the list issues none"

    assert runner.invoke(certs_cli.app, ["rotate", "pi-a", "--pki", str(root)]).exit_code == 0
    controller = runner.invoke(certs_cli.app, ["rotate", "edgeperf-controller", "--pki", str(root)])
    assert controller.exit_code == 0 and "the controller's new password taken" in one_line(controller.output)
    revoked = runner.invoke(certs_cli.app, ["revoke", "pi-b", "--pki", str(root)])
    assert revoked.exit_code == 0 and "restart mosquitto" in one_line(revoked.output)
    unknown = runner.invoke(certs_cli.app, ["revoke", "pi-x", "--pki", str(root)])
    assert unknown.exit_code == 2 and "no certificate for device 'pi-x'" in one_line(unknown.output)

    listed = runner.invoke(certs_cli.app, ["list", "--pki", str(root), "--json"])
    rows = [(r["name"], r["kind"], r["state"]) for r in json.loads(listed.output)]
    assert rows == [
        ("10.0.0.5", "broker", "valid"),
        ("edgeperf-controller", "controller", "revoked"),
        ("pi-a", "device", "revoked"),
        ("pi-b", "device", "revoked"),
        ("pi-c", "device", "valid"),
        ("pi-a", "device", "valid"),
        ("edgeperf-controller", "controller", "valid"),
    ]
    table = runner.invoke(certs_cli.app, ["list", "--pki", str(root)])
    assert table.exit_code == 0 and "pi-c" in table.output and "revoked" in table.output

    missing = runner.invoke(certs_cli.app, ["list", "--pki", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "'edgeperf certs init --out" in one_line(missing.output)


def test_the_broker_config_command(tmp_path):
    pki = Pki.init(tmp_path / "pki", ["127.0.0.1"])
    app = typer.Typer()
    app.command()(certs_cli.broker_config)  # as the lead registers it: edgeperf broker config
    app.command("noop")(lambda: None)  # two commands, so typer keeps the command name
    out = tmp_path / "etc" / "edgeperf.conf"
    (tmp_path / "etc").mkdir()
    result = runner.invoke(app, ["broker-config", "--pki", str(pki.root), "--out", str(out), "--port", "8884",
                                 "--prefix", f"lab{uuid.uuid4().hex[:4]}/v1"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "etc" / "edgeperf.acl").is_file()
    assert (tmp_path / "etc" / "edgeperf.controller.acl").is_file()
    assert "listener 8884 0.0.0.0" in out.read_text() and "listener 8885 0.0.0.0" in out.read_text()
    assert "controller commands to mqtts://HOST:8885" in one_line(result.output)
    bad = runner.invoke(app, ["broker-config", "--pki", str(pki.root), "--out", str(out), "--prefix", "lab/#"])
    assert bad.exit_code == 2 and "must be non-empty, without wildcards" in one_line(bad.output)


def test_the_controller_password_lives_beside_its_certificate_and_only_its_hash_goes_to_the_broker(pki, tmp_path):
    """The controller listener checks a password on top of the certificate (devices hold certificates from the
    same CA). A rotated controller gets a new one; a PKI made before it existed gets one when the broker is
    configured from it, and a broker-only copy made before says how to get one."""
    password = pki.controller_password_file.read_text().strip()
    assert pki.controller_password_file == pki.controller_files[0].with_suffix(".password")  # where commands look
    assert len(password) >= 43 and stat.S_IMODE(pki.controller_password_file.stat().st_mode) == 0o600
    user, digest = pki.broker_password_file.read_text().strip().split(":", 1)
    assert user == "edgeperf-controller" and digest.startswith("$7$101$") and password not in digest
    assert stat.S_IMODE(pki.broker_password_file.stat().st_mode) == 0o600

    pki.rotate("pi-a")
    assert pki.controller_password_file.read_text().strip() == password  # a device's rotation leaves it
    pki.rotate("edgeperf-controller")
    assert pki.controller_password_file.read_text().strip() != password
    assert pki.broker_password_file.read_text().split(":")[1] != digest

    for made_before in (pki.controller_password_file, pki.broker_password_file):
        made_before.unlink(missing_ok=True)
    broker_copy = tmp_path / "broker"
    (broker_copy / "ca.pem").parent.mkdir()
    for name in ("ca.pem", "crl.pem", "broker.pem", "broker.key", "index.json"):  # what an older broker-folder copied
        (broker_copy / name).write_bytes((pki.root / name).read_bytes())
    with pytest.raises(BrokerConfigError, match="copied by an older edgeperf; run 'edgeperf certs broker-folder' again"):
        broker_config.write(Pki.open(broker_copy, ca_key=False), tmp_path / "old.conf")
    conf, _, _ = broker_config.write(pki, tmp_path / "edgeperf.conf")  # the full folder makes its own
    assert pki.controller_password_file.is_file() and f"password_file {pki.broker_password_file}" in conf.read_text()
