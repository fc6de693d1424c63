"""``edgeperf fleet flash`` and ``fleet status``: Ansible provisions, the broker confirms.

The playbook and role live in ``firmware/provisioning/``; this module writes the Ansible inventory and
per-host variables from an edgeperf inventory, runs ``ansible-playbook`` (with ``--check`` for
status: the tasks that would change are the host's drift), reads the per-host summary the
``edgeperf_summary`` callback writes, and then asks the broker which agents say they are online.
Ansible's own output goes to a log file; each host gets one line in the summary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import __version__
from agent.contract import DEFAULT_PREFIX
from agent.errors import EdgeperfError
from controller.fleet import session
from controller.fleet.session import FleetOptions
from controller.provisioning.bundle import SOURCE_ROOT, Bundle
from controller.provisioning.families import FAMILIES, extras_for
from controller.provisioning.inventory import Host, Inventory
from controller.provisioning.pki import Pki, PkiError

PLAYBOOK_DIR = SOURCE_ROOT / "firmware" / "provisioning"
PLAYBOOK = PLAYBOOK_DIR / "flash.yml"
ONLINE_STATES = ("online", "busy")
MIN_LISTEN_S = 1.5  # retained status arrives within this even when not waiting


class FlashError(EdgeperfError):
    """Provisioning could not start (no ansible-core, no playbook, an unusable bundle or PKI)."""


@dataclass(frozen=True)
class FlashSettings:
    """What every flashed agent is configured with."""

    broker: str  # the URL agents connect to, e.g. mqtts://lab:8883
    bundle: Bundle | None  # None only for a check without one: packages are then not compared
    fleet_key: Path  # the controller's fleet key file: every agent gets a copy
    prefix: str = DEFAULT_PREFIX
    artifact_origins: tuple[str, ...] = ()
    trust_new_hosts: bool = False
    ask_become_pass: bool = False


@dataclass
class HostResult:
    """One host's outcome: Ansible's counts and first failure, then what the broker says."""

    host: Host
    changed: int = 0
    changed_tasks: list[str] = field(default_factory=list)
    failure: str = ""
    unreachable: bool = False
    report: dict[str, Any] = field(default_factory=dict)
    state: str = ""  # status on the broker: online / busy / offline, "" when never heard
    agent_version: str = ""

    @property
    def ran(self) -> bool:
        """The playbook went through for this host."""
        return not self.failure and not self.unreachable

    @property
    def service_started(self) -> bool:
        return self.report.get("service") == "systemd"

    @property
    def online(self) -> bool:
        return self.state in ONLINE_STATES and self.agent_version == __version__


def ansible_playbook() -> str:
    """The ``ansible-playbook`` next to this Python, or on PATH."""
    beside = Path(sys.executable).with_name("ansible-playbook")
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    if not found:
        raise FlashError("ansible-core is not installed: pip install 'edgeperf[fleet]'")
    if not PLAYBOOK.is_file():
        raise FlashError(f"the fleet playbook is not at {PLAYBOOK}; run the controller from an edgeperf checkout")
    return found


def check_bundle(bundle: Bundle, inventory: Inventory) -> None:
    """Refuse a bundle that would install another edgeperf or lacks what a host's family needs."""
    if bundle.version != __version__:
        raise FlashError(f"{bundle.path} holds edgeperf {bundle.version} but this controller is {__version__}: "
                         "rebuild it with 'edgeperf fleet bundle'")
    if bundle.offline:
        missing = [e for e in extras_for([h.family for h in inventory.hosts]) if e not in bundle.extras]
        if missing:
            raise FlashError(f"{bundle.path} lacks the {missing[0]!r} extra a host's family needs; "
                             "rebuild it with 'edgeperf fleet bundle' (by default it covers every family)")


def device_certificates(pki: Pki, hosts: tuple[Host, ...], issue: bool) -> tuple[dict[str, tuple[Path, Path]], list[str]]:
    """Each host's client certificate and key; missing ones are issued when ``issue`` (flash), else left out."""
    files: dict[str, tuple[Path, Path]] = {}
    issued: list[str] = []
    for host in hosts:
        try:
            files[host.name] = pki.device_files(host.device_id)
        except PkiError:
            if not issue or host.device_id in {e.name for e in pki.entries() if e.kind == "device"}:
                continue  # revoked devices are never silently re-issued
            files[host.name] = pki.add_device(host.device_id)
            issued.append(host.device_id)
    return files, issued


def ansible_inventory(inventory: Inventory, settings: FlashSettings, pki: Pki,
                      certificates: dict[str, tuple[Path, Path]]) -> dict[str, Any]:
    """The YAML-plugin inventory (as JSON) with every variable the role reads."""
    hosts: dict[str, Any] = {}
    for host in inventory.hosts:
        if host.name not in certificates:
            continue
        family = FAMILIES[host.family]
        ssh = []
        if host.known_hosts:
            ssh.append(f"-o UserKnownHostsFile={host.known_hosts}")
        if settings.trust_new_hosts:
            ssh.append("-o StrictHostKeyChecking=accept-new")
        cert, key = certificates[host.name]
        hosts[host.name] = {
            "ansible_host": host.address, "ansible_port": host.port, "ansible_user": host.user,
            "ansible_python_interpreter": host.python, "ansible_become": host.user != "root",
            **({"ansible_ssh_private_key_file": str(host.key)} if host.key else {}),
            **({"ansible_ssh_common_args": " ".join(ssh)} if ssh else {}),
            "edgeperf_device_id": host.device_id, "edgeperf_tags": list(host.tags), "edgeperf_family": host.family,
            "edgeperf_extras": list(family.extras), "edgeperf_groups": list(family.groups), "edgeperf_jtop": family.jtop,
            "edgeperf_tls_cert": str(cert), "edgeperf_tls_key": str(key),
        }
    groups = {g: {"hosts": {h.name: None for h in inventory.hosts if g in h.groups and h.name in hosts}}
              for g in inventory.groups}
    common: dict[str, Any] = {
        "edgeperf_broker": settings.broker, "edgeperf_prefix": settings.prefix, "edgeperf_version": __version__,
        "edgeperf_artifact_origins": list(settings.artifact_origins), "edgeperf_tls_ca": str(pki.ca_file),
        "edgeperf_packages": settings.bundle is not None, "edgeperf_fleet_key": str(settings.fleet_key),
    }
    if bundle := settings.bundle:
        common |= {
            "edgeperf_bundle": str(bundle.path.resolve()), "edgeperf_offline": bundle.offline,
            "edgeperf_bundle_platform": bundle.platform, "edgeperf_bundle_python": bundle.python,
            "edgeperf_wheel": bundle.wheel, "edgeperf_wheel_sha256": bundle.wheel_sha256,
        }
    return {"all": {"hosts": hosts, "children": {g: v for g, v in groups.items() if v["hosts"]}, "vars": common}}


def run_playbook(command: str, inventory_doc: dict[str, Any], check: bool, log_path: Path, settings: FlashSettings,
                 on_line: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Run the playbook with ``command`` (``ansible_playbook()``); Ansible's output goes to
    ``log_path``, its per-host summary comes back."""
    with tempfile.TemporaryDirectory(prefix="edgeperf-flash-") as tmp:
        inv, summary = Path(tmp) / "inventory.json", Path(tmp) / "summary.json"
        inv.write_text(json.dumps(inventory_doc))
        args = [command, "-i", str(inv), str(PLAYBOOK)]
        args += ["--check"] if check else []
        args += ["--ask-become-pass"] if settings.ask_become_pass else []
        env = os.environ | {
            "ANSIBLE_CONFIG": str(PLAYBOOK_DIR / "ansible.cfg"),
            "ANSIBLE_CALLBACK_PLUGINS": str(PLAYBOOK_DIR / "callback_plugins"),
            "ANSIBLE_NOCOLOR": "1",
            "EDGEPERF_FLASH_SUMMARY": str(summary),
        }
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w", encoding="utf-8") as log:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                    stdin=None if settings.ask_become_pass else subprocess.DEVNULL)
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if on_line:
                    on_line(line.rstrip("\n"))
            code = proc.wait()
        if not summary.is_file():
            raise FlashError(f"ansible-playbook stopped before any host ran (exit {code}); see {log_path}")
        return json.loads(summary.read_text())


def results_from(inventory: Inventory, summary: dict[str, dict[str, Any]], left_out: dict[str, str]) -> list[HostResult]:
    """One result per inventory host, in file order."""
    out = []
    for host in inventory.hosts:
        if host.name in left_out:
            out.append(HostResult(host, failure=left_out[host.name]))
            continue
        raw = summary.get(host.name)
        if raw is None:
            out.append(HostResult(host, failure="the playbook never reached this host; see the log"))
            continue
        failure = raw.get("failure") or {}
        message = f"{failure.get('task')}: {failure.get('message')}" if failure else ""
        out.append(HostResult(host, changed=int(raw.get("changed", 0)), changed_tasks=list(raw.get("changed_tasks", [])),
                              failure="" if raw.get("unreachable") else message, unreachable=bool(raw.get("unreachable")),
                              report=raw.get("report") or {}))
        if out[-1].unreachable:
            out[-1].failure = f"unreachable: {failure.get('message', '')}"
    return out


def listen_for_status(results: list[HostResult], options: FleetOptions, wait_s: float) -> None:
    """Fill each result's broker state, waiting up to ``wait_s`` for the started agents to come online.

    The controller's announce makes every connected agent answer at once; a retained status alone
    (an agent that never came back) does not count, and an agent restarted by the playbook publishes
    "offline" on its way down and "online" once connected with the new version, so only the new
    version, heard live, counts as online.
    """
    expected = {r.host.device_id for r in results if r.ran and r.service_started}
    with session.fleet(options) as fleet:
        start = time.monotonic()
        deadline = start + max(wait_s, MIN_LISTEN_S)
        while True:
            fleet.pump(wait_s=0.2)
            seen = {d.id: (d.state, d.agent_version) for d in fleet.devices.values()}
            heard = {d.id for d in fleet.devices.values() if d.heard_at is not None}
            up = {d for d, (state, version) in seen.items() if state in ONLINE_STATES and version == __version__ and d in heard}
            now = time.monotonic()
            if now >= deadline or (now - start >= MIN_LISTEN_S and expected <= up):
                break
    for result in results:
        result.state, result.agent_version = seen.get(result.host.device_id, ("", ""))
