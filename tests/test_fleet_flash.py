"""``edgeperf fleet flash`` for real: Ansible over SSH provisions a second host, which then runs a campaign over mTLS.

The second host (tests/testhost.py) has its own network namespace, root filesystem and sshd;
Ansible logs in as ``pi`` and becomes root with sudo, as on a Pi. The broker is Debian's
mosquitto with the config ``edgeperf broker config`` writes; the bundle holds real wheels from
the package index. systemd cannot run as PID 1 in the test host: the flash says so, and the test
starts the agent with the unit's own ExecStart line, as its User with its SupplementaryGroups.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent import __version__
from controller.fleet.broker import free_port
from controller.provisioning.bundle import host_platform
from controller.store.database import Store
from tests.cli_harness import edgeperf, edgeperf_here
from tests.fleet_harness import Mosquitto, campaign_file, wait_until
from tests.testhost import TestHost, platform_refusal

REFUSAL = platform_refusal()  # probes network namespaces once
pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(REFUSAL), reason=REFUSAL)]
DEVICE = "edge-ns1"
UNIT = "/etc/systemd/system/edgeperf-agent.service"
SSH_USER = "pi"  # as on a Pi: a login with sudo, so the role runs through Ansible's become


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def one_host_line(proc) -> str:
    """A failed flash: exit 3, no traceback, and the one line it printed on stderr."""
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if line.strip()]
    return line


class Lab:
    """A PKI, a hardened mosquitto, an agent bundle and one provisioned-to-be test host."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = TestHost(root / "host")
        self.pki = root / "pki"
        self.mosquitto = Mosquitto(root)
        self.broker = f"mqtts://{self.host.gateway}:{self.mosquitto.port}"  # the agents'
        self.controller_port = free_port()
        self.controller_broker = f"mqtts://{self.host.gateway}:{self.controller_port}"  # the controller's listener
        self.bundle = root / "agent-bundle.tar.gz"
        self.inventory = root / "inventory.yaml"
        self.db = root / "controller.db"

    def tls(self) -> tuple[str, ...]:
        return ("--ca-file", str(self.pki / "ca.pem"), "--cert-file", str(self.pki / "controller.pem"),
                "--key-file", str(self.pki / "controller.key"))

    def online(self) -> bool:
        """The broker's retained status says the test host's agent is online."""
        proc = edgeperf_here("devices", "--broker", self.controller_broker, "--db", str(self.db), "--json", "--wait", "1",
                             *self.tls())  # polled: in this process, not an interpreter start per poll
        rows = json.loads(proc.stdout) if proc.returncode == 0 else []
        return any(r["id"] == DEVICE and r["state"] == "online" for r in rows)

    def flash(self, *extra: str, inventory: Path | None = None) -> subprocess.CompletedProcess[str]:
        return edgeperf("fleet", "flash", str(inventory or self.inventory), "--broker", self.broker, "--pki", str(self.pki),
                        "--controller-broker", self.controller_broker, "--bundle", str(self.bundle), "--db", str(self.db),
                        "--json", *extra)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet-lab")
    lab = Lab(root)
    (root / "host").mkdir()
    lab.host.start()
    try:
        lab.host.add_sudo_user(SSH_USER)
        ok(edgeperf("certs", "init", "--out", str(lab.pki), "--broker-host", lab.host.gateway, "--broker-host", "127.0.0.1"))
        conf = root / "mosquitto.conf"
        ok(edgeperf("broker", "config", "--pki", str(lab.pki), "--out", str(conf), "--port", str(lab.mosquitto.port),
                    "--controller-port", str(lab.controller_port), "--bind", "0.0.0.0",
                    *(["--user", "root"] if os.geteuid() == 0 else [])))
        lab.mosquitto.conf = conf
        lab.mosquitto.start()
        python = subprocess.run(lab.host.enter("/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"),
                                capture_output=True, text=True, check=True).stdout.strip()
        ok(edgeperf("fleet", "bundle", "-o", str(lab.bundle), "--platform", host_platform(), "--python", python))
        lab.inventory.write_text(
            "defaults:\n"
            f"  user: {SSH_USER}\n  key: {lab.host.client_key}\n  known_hosts: {lab.host.known_hosts}\n"
            "  python: /usr/bin/python3\n  family: generic\n"
            "groups:\n  netns: {tags: [netns]}\n"
            f"hosts:\n  {DEVICE}: {{address: {lab.host.address}, groups: [netns], tags: [lab-a]}}\n"
        )
        yield lab
    finally:
        lab.host.stop()
        lab.mosquitto.stop()


def test_flash_provisions_the_host(lab):
    proc = ok(lab.flash("--wait", "0"))
    [result] = json.loads(proc.stdout)
    assert f"issued a client certificate for {DEVICE}" in proc.stderr  # the inventory's device was not in the PKI yet
    assert result["host"]["device_id"] == DEVICE and result["failure"] == ""
    assert result["changed"] > 5
    assert result["report"]["service"].startswith("not started:") and "is not systemd" in result["report"]["service"]
    assert result["report"]["installed_version"] == __version__

    host = lab.host
    passwd = host.path("/etc/passwd").read_text()
    assert any(line.startswith("edgeperf:") and line.endswith(":/usr/sbin/nologin") for line in passwd.splitlines())
    with pytest.raises(KeyError):
        pwd.getpwnam("edgeperf")  # the test host's user, not this machine's
    config = host.path("/etc/edgeperf/agent.toml")
    assert f'device_id = "{DEVICE}"' in config.read_text() and f'broker = "{lab.broker}"' in config.read_text()
    assert 'tags = ["netns", "lab-a"]' in config.read_text()
    for path, mode in (("/etc/edgeperf/agent.toml", 0o640), ("/etc/edgeperf/tls/device.key", 0o640),
                       ("/etc/edgeperf/tls", 0o750), ("/var/lib/edgeperf", 0o750)):
        st = host.path(path).stat()
        assert st.st_mode & 0o777 == mode, path
        assert st.st_mode & 0o007 == 0  # nothing for other users on the device
    key = host.path("/etc/edgeperf/tls/device.key").read_bytes()
    assert key == (lab.pki / "devices" / f"{DEVICE}.key").read_bytes()

    unit = host.path(UNIT).read_text()
    for line in ("Restart=always", "RestartPreventExitStatus=2", "User=edgeperf", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ReadWritePaths=/var/lib/edgeperf",
                 "ExecStart=/opt/edgeperf/venv/bin/edgeperf-agent run --config /etc/edgeperf/agent.toml --log-level info"):
        assert line in unit.splitlines()
    verify = subprocess.run(host.enter("systemd-analyze", "verify", UNIT), capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stdout + verify.stderr == "", verify.stdout + verify.stderr
    # systemd's own exposure score for the sandbox (0 = locked down, 10 = exposed): at most 3.5
    security = subprocess.run(host.enter("systemd-analyze", "security", "--offline=yes", "--no-pager", UNIT),
                              capture_output=True, text=True)
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout + security.stderr)
    assert score and float(score.group(1)) <= 3.5, security.stdout[-2000:] + security.stderr[-500:]
    shipped, ours = host.path("/etc/edgeperf/fleet.key"), Path(os.environ["EDGEPERF_FLEET_KEY_FILE"])  # the controller's
    assert shipped.stat().st_mode & 0o777 == 0o640 and shipped.read_bytes() == ours.read_bytes()


def test_the_agent_comes_online_over_mtls_and_runs_a_campaign(lab, tmp_path):
    lab.agent = lab.host.start_unit(UNIT, tmp_path / "agent.log")  # what systemd would run
    wait_until(lab.online, 60, f"{DEVICE} to say online (agent log: {tmp_path / 'agent.log'})")
    campaign = campaign_file(tmp_path / "smoke.yaml", variants=["int8.onnx"], devices=f"{{ids: [{DEVICE}]}}",
                             modes=["performance"], scenarios=["SingleStream"])
    ok(edgeperf("campaign", "run", str(campaign), "--broker", lab.controller_broker, "--db", str(lab.db), *lab.tls(),
                "--artifact-host", "0.0.0.0", "--artifact-advertise", lab.host.gateway))
    store = Store(lab.db)
    try:
        [result] = store.results(store.campaign("latest")["id"])
    finally:
        store.close()
    assert result.device.id == DEVICE and result.valid is True
    assert result.device.facts["hostname"] == lab.host.hostname  # measured on the test host, not here


def test_a_second_flash_changes_nothing_and_finds_the_agent_online(lab):
    [result] = json.loads(ok(lab.flash("--wait", "30")).stdout)
    assert result["changed"] == 0 and result["changed_tasks"] == []
    assert result["state"] == "online" and result["agent_version"] == __version__


def test_status_reports_drift_and_flash_repairs_it(lab):
    config = lab.host.path("/etc/edgeperf/agent.toml")
    config.write_text(config.read_text().replace('tags = ["netns", "lab-a"]', 'tags = ["edited-by-hand"]'))
    status = edgeperf("fleet", "status", str(lab.inventory), "--broker", lab.broker, "--pki", str(lab.pki),
                      "--controller-broker", lab.controller_broker,
                      "--bundle", str(lab.bundle), "--db", str(lab.db), "--json")
    [row] = json.loads(ok(status).stdout)
    assert row["report"]["provisioned"] is True and row["state"] == "online"
    assert row["changed_tasks"] == ["Agent configuration"]
    [dry] = json.loads(ok(lab.flash("--check")).stdout)
    assert dry["changed_tasks"] == ["Agent configuration"]
    assert "edited-by-hand" in config.read_text()  # neither a status nor a --check run changes anything
    [result] = json.loads(ok(lab.flash("--wait", "0")).stdout)
    assert result["changed_tasks"] == ["Agent configuration"]
    assert 'tags = ["netns", "lab-a"]' in config.read_text()


def test_an_unreachable_host_is_one_line_and_exit_3(lab, tmp_path):
    dead = tmp_path / "dead.yaml"
    dead.write_text(lab.inventory.read_text().replace(f"address: {lab.host.address}", f"address: {lab.host.gateway}, port: 9"))
    line = one_host_line(lab.flash("--wait", "0", inventory=dead))
    assert line.startswith(f"{DEVICE}: unreachable:") and "port 9" in line


def test_an_unprovisioned_host_shows_in_status(lab, tmp_path):
    shutil.rmtree(lab.host.path("/etc/edgeperf"))
    status = edgeperf("fleet", "status", str(lab.inventory), "--broker", lab.broker, "--pki", str(lab.pki),
                      "--controller-broker", lab.controller_broker, "--db", str(lab.db), "--json")
    [row] = json.loads(ok(status).stdout)
    assert row["report"] == {"provisioned": False}
    table = ok(edgeperf("fleet", "status", str(lab.inventory), "--broker", lab.broker, "--pki", str(lab.pki),
                        "--controller-broker", lab.controller_broker, "--db", str(lab.db))).stdout
    [line] = [line for line in table.splitlines() if DEVICE in line]  # the row a person reads
    cells = [c.strip() for c in line.strip("│┃ ").split("│")]
    assert cells[:5] == [DEVICE, DEVICE, lab.host.address, "no", "–"]
    assert cells[6] == "online"  # the agent started earlier still runs: provisioning and presence are separate facts


def test_a_failing_task_is_one_line_naming_the_host_task_and_reason(lab, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(lab.inventory.read_text().replace("python: /usr/bin/python3", "python: /usr/bin/python2.7"))
    proc = lab.flash("--wait", "0", inventory=broken)
    line = one_host_line(proc)
    assert line.startswith(f"{DEVICE}: ") and "/usr/bin/python2.7" in line
    [result] = json.loads(proc.stdout)
    assert result["failure"] and not result["unreachable"] and result["changed"] == 0

    ensurepip = next(lab.host.path("/usr/lib").glob("python3.*/ensurepip/__init__.py"))
    original = ensurepip.read_bytes()
    ensurepip.write_text("raise ImportError('python3-venv is not installed')\n")  # as on a Debian without it
    try:
        line = one_host_line(lab.flash("--wait", "0"))
    finally:
        ensurepip.write_bytes(original)
    assert line.startswith(f"{DEVICE}: Check the device's Python can make a venv: ") and "apt-get install python3-venv" in line


def test_a_jetson_gets_jtop_its_groups_and_a_verified_jtop_unit(lab, tmp_path):
    """The family decides extras, groups and services: the same host re-flashed as a Jetson."""
    jetson = tmp_path / "jetson.yaml"
    jetson.write_text(lab.inventory.read_text().replace("family: generic", "family: jetson"))
    [result] = json.loads(ok(lab.flash("--wait", "0", inventory=jetson)).stdout)
    groups = {line.split(":")[0]: line.split(":")[3].split(",") for line in lab.host.path("/etc/group").read_text().splitlines()}
    assert "jtop" in groups and "edgeperf" in groups["jtop"]
    assert "i2c" not in result["report"]["groups"]  # joined only where the host has the group
    assert set(result["report"]["groups"]) == {g for g in ("i2c", "dialout", "video", "jtop") if g in groups}
    unit = lab.host.path(UNIT).read_text()
    assert f"SupplementaryGroups={' '.join(result['report']['groups'])}" in unit.splitlines()
    assert "After=network-online.target jtop.service" in unit.splitlines()
    assert lab.host.path("/opt/edgeperf/jtop-venv/bin/jtop").is_file()
    for unit_file in (UNIT, "/etc/systemd/system/jtop.service"):
        verify = subprocess.run(lab.host.enter("systemd-analyze", "verify", unit_file), capture_output=True, text=True)
        assert verify.returncode == 0 and verify.stdout + verify.stderr == "", unit_file + verify.stdout + verify.stderr
    installed = subprocess.run(lab.host.enter("/opt/edgeperf/venv/bin/python", "-c",
                                              "import ai_edge_litert, jtop, onnxruntime, serial; print('ok')"),
                               capture_output=True, text=True)
    assert installed.stdout.strip() == "ok", installed.stderr  # the jetson extras, from the offline wheelhouse

    lab.agent.kill()
    lab.agent.wait(10)
    wait_until(lambda: not lab.online(), 30, "the old agent's last will")
    lab.agent = lab.host.start_unit(UNIT, tmp_path / "agent.log")
    wait_until(lab.online, 60, f"the agent, now in the jtop group, to say online (log: {tmp_path / 'agent.log'})")
