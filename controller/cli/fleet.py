"""``edgeperf fleet flash | status | bundle``: provision a lab of devices over SSH with Ansible.

Thin commands over ``controller.flash`` (inventory → playbook → broker) and ``controller.bundle``.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.status import Status

from agent import fleet_key
from agent.contract import DEFAULT_PREFIX
from agent.errors import EXIT_UNREACHABLE, EdgeperfError
from agent.transport import BrokerUrl
from controller.cli.common import AsJson, Db, FleetKey, PkiDir, check_output, check_seconds, cli_errors, console, err_console
from controller.fleet import session
from controller.provisioning import bundle as bundles
from controller.provisioning import inventory
from controller.provisioning.families import FAMILIES
from controller.reports import tables

if TYPE_CHECKING:
    from controller.provisioning.flash import HostResult

app = typer.Typer(no_args_is_help=True, help="Flash agents onto a fleet over SSH (Ansible), check them, bundle them.")

InventoryFile = Annotated[Path, typer.Argument(help="inventory YAML: hosts, SSH access, families (docs/fleet.md)")]
AgentBroker = Annotated[str, typer.Option("--broker", envvar="EDGEPERF_BROKER", help="mqtts://host:port the agents connect to")]
ControllerBroker = Annotated[str | None, typer.Option("--controller-broker",
                                                      help="where the controller asks the agents for their status "
                                                           "[default: --broker's host, on the next port: the controller "
                                                           "listener of 'edgeperf broker config']")]
BundleFile = Annotated[Path | None, typer.Option("--bundle", help="agent bundle from 'edgeperf fleet bundle' (offline labs)")]
FlashedBundle = Annotated[Path | None, typer.Option("--bundle", help="the bundle the fleet was flashed with (compares packages)")]
Origins = Annotated[list[str] | None, typer.Option("--artifact-origin",
                                                   help="where agents may fetch models, e.g. http://lab:8700 (repeat; "
                                                        "default: the broker's host)")]
TrustNew = Annotated[bool, typer.Option("--trust-new-hosts", help="accept and pin SSH host keys seen for the first time")]
AskBecome = Annotated[bool, typer.Option("--ask-become-pass", help="prompt for the sudo password of non-root users")]
Prefix = Annotated[str, typer.Option(help="topic prefix")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="show Ansible's own output as it runs")]


@app.command("flash")
@cli_errors
def flash_command(
    inventory_file: InventoryFile,
    broker: AgentBroker,
    pki: PkiDir,
    bundle: BundleFile = None,
    controller_broker: ControllerBroker = None,
    check: Annotated[bool, typer.Option("--check", help="dry run: report what would change, change nothing")] = False,
    wait: Annotated[float, typer.Option(help="seconds to wait for started agents to say online")] = 120.0,
    artifact_origin: Origins = None,
    trust_new_hosts: TrustNew = False,
    ask_become_pass: AskBecome = False,
    prefix: Prefix = DEFAULT_PREFIX,
    db: Db = None,
    fleet_key: FleetKey = None,
    verbose: Verbose = False,
    as_json: AsJson = False,
) -> None:
    """Install, configure and start the agent on every inventory host, then wait until each says online.

    Idempotent: a second run changes nothing. Without --bundle the devices install edgeperf's
    dependencies from their own package index.
    """
    check_seconds(wait, "--wait", high=86400)
    _provision(inventory_file, (broker, controller_broker), pki, bundle, check, wait, tuple(artifact_origin or ()),
               trust_new_hosts, ask_become_pass, prefix, db, fleet_key, verbose, as_json)


@app.command("status")
@cli_errors
def status_command(
    inventory_file: InventoryFile,
    broker: AgentBroker,
    pki: PkiDir,
    bundle: FlashedBundle = None,
    controller_broker: ControllerBroker = None,
    artifact_origin: Origins = None,
    trust_new_hosts: TrustNew = False,
    prefix: Prefix = DEFAULT_PREFIX,
    db: Db = None,
    fleet_key: FleetKey = None,
    verbose: Verbose = False,
    as_json: AsJson = False,
) -> None:
    """Per host: provisioned? online? which agent version? what drifted from the inventory?

    A check-mode run of the flash playbook (nothing is changed) plus the agents' retained status.
    """
    _provision(inventory_file, (broker, controller_broker), pki, bundle, True, 0.0, tuple(artifact_origin or ()),
               trust_new_hosts, False, prefix, db, fleet_key, verbose, as_json)


@app.command("bundle")
@cli_errors
def bundle_command(
    out: Annotated[Path, typer.Option("-o", "--out", help="the bundle file to write (.tar.gz)")],
    platform: Annotated[str, typer.Option(help=f"device platform: {' | '.join(bundles.ARCHES)}")] = bundles.host_platform(),
    python: Annotated[str, typer.Option(help="the devices' Python, e.g. 3.10")] = "3.11",
    family: Annotated[list[str] | None, typer.Option("--family", help=f"only these families ({', '.join(FAMILIES)})")] = None,
    glibc: Annotated[str, typer.Option(help="the oldest glibc among the devices")] = bundles.DEFAULT_GLIBC,
) -> None:
    """Download edgeperf and every wheel the agents need into one file, for labs without internet."""
    check_output(out, "-o", "edgeperf-bundle.tar.gz")  # before minutes of downloads
    started = time.monotonic()
    with console.status(f"downloading wheels for {platform} / Python {python}"):
        built = bundles.build(out, platform, python, tuple(family or ()), glibc)
    size = built.path.stat().st_size / 1e6
    console.print(f"wrote {built.path} ({size:.1f} MB, edgeperf {built.version}, extras {', '.join(built.extras)}) "
                  f"in {time.monotonic() - started:.0f} s")


def _provision(inventory_file: Path, brokers: tuple[str, str | None], pki_dir: Path, bundle_file: Path | None, check: bool,
               wait: float, origins: tuple[str, ...], trust_new_hosts: bool, ask_become_pass: bool, prefix: str,
               db: Path | None, fleet_key_file: Path | None, verbose: bool, as_json: bool) -> None:
    from controller.provisioning import flash  # cryptography (the PKI) only for fleet commands
    from controller.provisioning.pki import Pki

    broker, controller_broker = brokers
    check_output(db, "--db", "controller.db")  # Ansible's log goes beside it, after the playbook has run
    inv = inventory.load(inventory_file)
    playbook = flash.ansible_playbook()  # before a wheel is built or a certificate issued
    pki = Pki.open(pki_dir)
    controller_cert, controller_key = pki.controller_files
    options = session.FleetOptions(broker=controller_broker or _controller_listener(broker), db=db, ca_file=pki.ca_file,
                                   cert_file=controller_cert, key_file=controller_key, prefix=prefix,
                                   fleet_key_file=fleet_key_file)
    key_path = fleet_key.path_of(fleet_key_file)  # the controller's key, shipped to every agent
    with tempfile.TemporaryDirectory(prefix="edgeperf-flash-") as tmp:
        bundle = bundles.read(bundle_file) if bundle_file else None
        if bundle is None and not check:
            with console.status("building edgeperf's wheel"):
                bundle = bundles.local(Path(tmp) / "edgeperf-wheel.tar.gz")
        if bundle:
            flash.check_bundle(bundle, inv)
        settings = flash.FlashSettings(broker, bundle, key_path, prefix, origins, trust_new_hosts, ask_become_pass)
        certificates, issued = flash.device_certificates(pki, inv.hosts, issue=not check)
        for device_id in issued:
            err_console.print(f"issued a client certificate for {device_id} in {pki_dir}", highlight=False)
        left_out = {h.name: f"no usable certificate for {h.device_id} in {pki_dir} ('edgeperf certs list')"
                    for h in inv.hosts if h.name not in certificates}
        stamp = time.strftime("%Y%m%d-%H%M%S") + ("-check" if check else "")
        log = options.db_path.parent / "flash" / f"{stamp}.log"
        summary: dict = {}
        if len(left_out) < len(inv.hosts):
            doc = flash.ansible_inventory(inv, settings, pki, certificates)
            with console.status("running the playbook") as status:
                summary = flash.run_playbook(playbook, doc, check, log, settings, _progress(status, verbose))
        results = flash.results_from(inv, summary, left_out)
    broker_problem = ""
    try:
        flash.listen_for_status(results, options, 0.0 if check else wait)
    except EdgeperfError as exc:
        broker_problem = str(exc)
    if as_json:
        print(json.dumps([_as_dict(r) for r in results], indent=2))
    else:
        console.print(tables.flash(results, check))
        console.print(f"Ansible's log: {log}" if summary else "")
    if broker_problem:
        err_console.print(f"[bold red]error:[/] {broker_problem}", highlight=False)
    bad = [r for r in results if r.failure or (not check and r.service_started and not r.online)]
    for r in bad:
        reason = r.failure or f"the agent did not say online within {wait:g} s (see 'journalctl -u edgeperf-agent' there)"
        err_console.print(f"[bold red]{r.host.name}:[/] {reason}", highlight=False)
    if bad or broker_problem:
        raise typer.Exit(EXIT_UNREACHABLE)


def _controller_listener(agents_url: str) -> str:
    """Where the controller connects when only the agents' URL is given: on a TLS broker, the controller listener
    of 'edgeperf broker config' (the next port, ``broker_config.controller_port_for``); a plain one serves both."""
    from controller.provisioning.broker_config import controller_port_for

    url = BrokerUrl.parse(agents_url)
    if not url.tls:
        return agents_url
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"mqtts://{host}:{controller_port_for(url.port)}"


def _progress(status: Status, verbose: bool) -> Callable[[str], None]:
    """Show the task Ansible is on; with --verbose, all of its output."""
    def on_line(line: str) -> None:
        if verbose:
            console.print(line, highlight=False, markup=False)
        elif line.startswith("TASK ["):
            status.update(f"running the playbook: {line[6:].split(']')[0]}")
    return on_line


def _as_dict(result: HostResult) -> dict:
    data = dataclasses.asdict(result)
    data["host"] = {k: str(v) if isinstance(v, Path) else v for k, v in data["host"].items()}
    return data | {"online": result.online}
