"""``edgeperf certs …`` and ``edgeperf broker config``: the lab PKI and the hardened broker from the command line.

Thin commands over ``controller.pki`` and ``controller.broker_config``. They live apart from
``controller/cli.py`` so the CLI module stays a list of commands and ``cryptography`` is imported
only when a certificate command runs. User errors print the same one line as every other command
(``controller.cli_common.cli_errors``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from agent.contract import DEFAULT_PREFIX
from controller.cli.common import PkiDir, cli_errors, console

if TYPE_CHECKING:
    from controller.provisioning.pki import Pki

app = typer.Typer(no_args_is_help=True, help="The lab PKI: a CA and certificates for the broker, the controller and each device.")

RESTART = "restart mosquitto so it drops a connected revoked device (SIGHUP only stops new connections)"


def _open(root: Path, ca_key: bool = True) -> Pki:
    from controller.provisioning.pki import Pki

    return Pki.open(root, ca_key)


@app.command("init")
@cli_errors
def init(
    out: Annotated[Path, typer.Option("-o", "--out", help="new (or empty) folder for the PKI; keep it on the controller")],
    broker_host: Annotated[
        list[str], typer.Option("--broker-host", help="name or IP clients use to reach the broker (repeat for several)")
    ],
    device: Annotated[list[str] | None, typer.Option("--device", help="device id to issue a certificate for (repeat)")] = None,
    controller_name: Annotated[str, typer.Option(help="CN of the controller's certificate (its broker identity)")] = (
        "edgeperf-controller"
    ),
    days: Annotated[int, typer.Option(help="validity of the broker, controller and device certificates")] = 825,
) -> None:
    """Create a CA with broker, controller and device certificates and an empty CRL."""
    from controller.provisioning.pki import Pki

    pki = Pki.init(out, broker_host, device or (), controller_name=controller_name, days=days)
    devices = [e.name for e in pki.entries() if e.kind == "device"]
    console.print(f"PKI created in {pki.root} (private keys 0600; keep the folder private)", highlight=False)
    console.print(f"  CA:         {pki.ca_file}", highlight=False)
    console.print(f"  broker:     {pki.broker_files[0]} for {', '.join(pki.broker_hosts)}", highlight=False)
    console.print(f"  controller: {pki.controller_files[0]} (CN {pki.controller_name}; its broker password beside it, "
                  f"{pki.controller_password_file.name})", highlight=False)
    console.print(f"  devices:    {', '.join(devices) or 'none yet (edgeperf certs add ID --pki DIR)'}", highlight=False)
    console.print(f"next: edgeperf broker config --pki {pki.root} --out mosquitto.conf", highlight=False)


@app.command("add")
@cli_errors
def add(
    device_ids: Annotated[list[str], typer.Argument(help="device ids (each becomes the certificate's CN)")],
    pki_dir: PkiDir,
) -> None:
    """Issue client certificates for new devices (or ones whose certificate was revoked)."""
    pki = _open(pki_dir)
    ids = list(dict.fromkeys(device_ids))
    for device_id in ids:  # all checked before any is issued: a typo in the third id issues none
        pki.check_new_device(device_id)
    for device_id in ids:
        cert, key = pki.add_device(device_id)
        console.print(f"{device_id}: {cert} {key}", highlight=False)
    console.print("copy both files to the device: edgeperf-agent run --cert-file … --key-file … --ca-file " + str(pki.ca_file),
                  highlight=False)


@app.command("rotate")
@cli_errors
def rotate(
    name: Annotated[str, typer.Argument(help="a device id, 'broker', or the controller's name")],
    pki_dir: PkiDir,
) -> None:
    """New key and certificate for one identity; the old serial is revoked in the CRL."""
    pki = _open(pki_dir)
    old, new = pki.rotate(name)
    console.print(f"{name}: new certificate {new.serial[:16]} in {pki.root / new.file}; {old.serial[:16]} revoked",
                  highlight=False)
    what = "it serves the new certificate" if old.kind == "broker" else "the old certificate is refused on its next connection"
    if old.kind == "controller":
        what += " and the controller's new password taken; a broker-only copy needs 'edgeperf certs broker-folder' first"
    console.print(f"send SIGHUP to mosquitto ({what}); copy the new files where they are used", highlight=False)


@app.command("revoke")
@cli_errors
def revoke(
    device_id: Annotated[str, typer.Argument(help="the device whose certificate to revoke")],
    pki_dir: PkiDir,
) -> None:
    """Revoke a device's certificate and re-issue the CRL."""
    pki = _open(pki_dir)
    entry = pki.revoke(device_id)
    console.print(f"{device_id}: certificate {entry.serial[:16]} revoked; CRL {pki.crl_file} re-issued", highlight=False)
    console.print(f"now {RESTART}", highlight=False)


@app.command("broker-folder")
@cli_errors
def broker_folder(
    pki_dir: PkiDir,
    out: Annotated[Path, typer.Option("-o", "--out", help="folder for the broker's copy (new, or one made by this command)")],
) -> None:
    """Copy what the broker needs (CA certificate, CRL, broker certificate and key, the controller's password hash)
    without the CA key or any password."""
    exported = _open(pki_dir).export_broker(out)
    console.print(f"written: {exported.root} (no CA key); configure the broker from it: "
                  f"edgeperf broker config --pki {exported.root} -o mosquitto.conf; run this again after a revoke "
                  "or a rotation", highlight=False)


@app.command("list")
@cli_errors
def list_(pki_dir: PkiDir, as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """Every certificate the PKI issued: name, kind, serial, expiry and state."""
    pki = _open(pki_dir)
    entries = pki.entries()
    if as_json:
        print(json.dumps([e.as_dict() | {"state": e.state()} for e in entries], indent=2))
        return
    table = Table(title=f"certificates in {pki.root}")
    for column in ("name", "kind", "serial", "expires", "state"):
        table.add_column(column)
    for e in entries:
        state = e.state()
        style = {"valid": "green", "revoked": "red", "expired": "yellow"}[state]
        table.add_row(e.name, e.kind, e.serial[:16], e.not_after[:10], f"[{style}]{state}[/]")
    console.print(table)


@cli_errors
def broker_config(
    pki: PkiDir,
    out: Annotated[Path, typer.Option("-o", "--out", help="mosquitto config to write; the ACLs go next to it (<stem>.acl, "
                                                         "<stem>.controller.acl)")],
    port: Annotated[int, typer.Option(help="TLS port of the devices' listener")] = 8883,
    controller_port: Annotated[int | None, typer.Option(help="TLS port of the controller's listener (certificate and "
                                                            "password) [default: --port + 1]")] = None,
    bind: Annotated[str, typer.Option(help="address the listeners bind")] = "0.0.0.0",
    prefix: Annotated[str, typer.Option(help="topic prefix of the fleet")] = DEFAULT_PREFIX,
    user: Annotated[str | None, typer.Option(help="account mosquitto drops to when started as root (must read the PKI files)")]
    = None,
) -> None:
    """Write a hardened mosquitto config and ACLs for a PKI: mutual TLS only, each device on its own topics and
    client id, the controller on a listener of its own."""
    from controller.provisioning import broker_config as config

    written = config.write(_open(pki, ca_key=False), out, port=port, controller_port=controller_port, bind=bind,
                           prefix=prefix, user=user)
    console.print("\n".join(f"written: {path}" for path in written) + f"\nrun: mosquitto -c {written[0]}", highlight=False)
    console.print(f"agents connect to mqtts://HOST:{port}; controller commands to mqtts://HOST:{controller_port or port + 1} "
                  "with the "
                  "controller's certificate (its password is found beside it)", highlight=False)
    if not user:
        console.print(
            "mosquitto started as root opens the certificates as its 'user' (default: mosquitto): that account must read "
            "ca.pem, broker.pem, broker.key, broker.passwd and crl.pem, or pass --user",
            highlight=False,
        )
