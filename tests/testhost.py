"""A second Linux host for fleet tests: its own network, root filesystem, users and SSH server.

Made from parts of this machine, so it needs no image and no download:

- network: an ``ip netns`` namespace joined to this one by a veth pair (a /30 of its own), so the
  host is reachable only at its address, as a device on a lab network is;
- root filesystem: an overlay whose lower layer is this machine's ``/`` and whose upper layer is
  a tmpfs, so the playbook's users, files and venvs land in the test host only and vanish with it;
- Debian's OpenSSH server, chrooted into that filesystem inside the namespace, with a throwaway
  host key (pinned in a known_hosts file) and a throwaway client key for root.

systemd cannot run as PID 1 in here; tests start the agent with the unit's own ExecStart line.
Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN), iproute2 and openssh-server (``.ci/run``).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fleet_harness import wait_until


def platform_refusal() -> str:
    """Why this platform cannot make a test host at all (a reason to skip), or "" when it can."""
    if not sys.platform.startswith("linux"):
        return f"platform: test hosts need Linux network namespaces, not {sys.platform}"
    if os.geteuid() != 0:
        return "platform: test hosts need root (network namespaces and overlay mounts)"
    if shutil.which("ip"):
        name = f"edgeperf-probe-{os.getpid()}"  # every pytest worker probes at collection: one name each
        probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
        if probe.returncode != 0:
            return f"platform: network namespaces are not allowed here: {probe.stderr.strip()}"
        subprocess.run(["ip", "netns", "del", name], check=False)
    return ""


def missing_packages() -> str:
    """What .ci/run installs and this machine lacks (a reason to fail, not to skip), or ""."""
    for tool in ("ip", "sshd", "ssh", "ssh-keygen", "chroot", "unshare", "systemd-analyze", "sudo", "useradd"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is not installed (apt-get install iproute2 openssh-server openssh-client systemd sudo; .ci/run does)"
    if subprocess.run(["/usr/bin/python3", "-c", "import ensurepip, venv"], capture_output=True).returncode != 0:
        return "the system Python cannot make venvs (apt-get install python3 python3-venv; .ci/run does)"
    return ""


def _run(*args: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"test host setup: {' '.join(args)} failed: {proc.stderr.strip()}")


class TestHost:
    """One host at ``address``; ``gateway`` is this machine's address as the host sees it."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, workdir: Path, index: int = 1, hostname: str = "edge-ns1") -> None:
        tag = f"{os.getpid() % 10000}{index}"
        self.netns, self.veth = f"ep{tag}", f"eph{tag}"
        octet = (os.getpid() + index) % 250 + 1  # a /30 per host; the pid keeps parallel sessions apart
        self.gateway, self.address = f"10.213.{octet}.1", f"10.213.{octet}.2"
        self.hostname, self.workdir = hostname, workdir
        self.layers = workdir / "layers"
        self.root = self.layers / "root"
        self.client_key = workdir / "id_ed25519"
        self.known_hosts = workdir / "known_hosts"
        self._netns_inode = 0
        self._sshd: subprocess.Popen[bytes] | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> TestHost:
        missing = missing_packages()
        if missing:
            pytest.fail(f"test host: {missing}")
        self._network()
        self._filesystem()
        self._ssh()
        return self

    def _network(self) -> None:
        peer = f"epd{self.veth[3:]}"
        _run("ip", "netns", "add", self.netns)
        self._netns_inode = os.stat(f"/run/netns/{self.netns}").st_ino
        _run("ip", "link", "add", self.veth, "type", "veth", "peer", "name", peer)
        _run("ip", "link", "set", peer, "netns", self.netns)
        _run("ip", "addr", "add", f"{self.gateway}/30", "dev", self.veth)
        _run("ip", "link", "set", self.veth, "up")
        inside = (("addr", "add", f"{self.address}/30", "dev", peer), ("link", "set", peer, "up"), ("link", "set", "lo", "up"))
        for args in inside:
            _run("ip", "netns", "exec", self.netns, "ip", *args)

    def _filesystem(self) -> None:
        self.layers.mkdir(parents=True)
        _run("mount", "-t", "tmpfs", "-o", "size=2g", "tmpfs", str(self.layers))
        for name in ("upper", "work", "root"):
            (self.layers / name).mkdir()
        _run("mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir=/,upperdir={self.layers / 'upper'},workdir={self.layers / 'work'}", str(self.root))
        _run("mount", "-t", "proc", "proc", str(self.root / "proc"))
        _run("mount", "--bind", "/dev", str(self.root / "dev"))
        # This machine's own edgeperf install and services must not leak into the "device".
        for stale in ("opt/edgeperf", "etc/edgeperf", "var/lib/edgeperf"):
            shutil.rmtree(self.root / stale, ignore_errors=True)
        (self.root / "etc/hostname").write_text(self.hostname + "\n")

    def _ssh(self) -> None:
        host_key = self.root / "etc/ssh/edgeperf_test_host_ed25519"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.client_key))
        ssh_dir = self.root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        (self.root / "run/sshd").mkdir(parents=True, exist_ok=True)
        (self.root / "etc/ssh/sshd_edgeperf_test.conf").write_text(
            f"ListenAddress {self.address}\nPort 22\nHostKey /etc/ssh/edgeperf_test_host_ed25519\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nPidFile /run/sshd-edgeperf-test.pid\nSubsystem sftp internal-sftp\n"
        )
        kind, key = host_key.with_suffix(".pub").read_text().split()[:2]
        self.known_hosts.write_text(f"{self.address} {kind} {key}\n")
        log = (self.workdir / "sshd.log").open("ab")
        sshd = self.enter("/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_edgeperf_test.conf")
        self._sshd = subprocess.Popen(sshd, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ssh_answers, 15, f"sshd on the test host {self.address}")

    def _ssh_answers(self) -> bool:
        return self.ssh("true", check=False).returncode == 0

    def stop(self) -> None:
        """Kill everything running in the host, then remove its mounts, network and files."""
        for _ in range(3):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)
        if self._sshd:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._sshd.wait(5)
        for mount in (self.root / "proc", self.root / "dev", self.root, self.layers):
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True, check=False)

    def pids(self) -> list[int]:
        """Processes in the host's network namespace (sshd, its sessions, agents and their workers)."""
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(entry / "ns/net").st_ino == self._netns_inode:
                        out.append(int(entry.name))
        return out

    # ---- using it --------------------------------------------------------------------------------
    def enter(self, *command: str, user: str | None = None, groups: tuple[str, ...] = ()) -> list[str]:
        """argv that runs ``command`` inside the host (its network, hostname and filesystem)."""
        who = [f"--userspec={user}:{user}"] if user else []
        who += [f"--groups={','.join(groups)}"] if groups else []
        chroot = ["chroot", *who, str(self.root)]
        return ["ip", "netns", "exec", self.netns, "unshare", "--uts", "sh", "-c",
                f'hostname {self.hostname} && exec "$@"', "sh", *chroot, *command]

    def add_sudo_user(self, name: str) -> None:
        """A login like a Pi's ``pi``: the test's SSH key, password-less sudo, no other rights."""
        # "*": no password, but not locked ("!"), which sshd without PAM refuses even for keys
        _run(*self.enter("useradd", "--create-home", "--shell", "/bin/bash", "--password", "*", name))
        home = self.path(f"/home/{name}")
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        _run(*self.enter("chown", "-R", f"{name}:{name}", f"/home/{name}/.ssh"))
        sudoers = self.path(f"/etc/sudoers.d/{name}")
        sudoers.parent.mkdir(mode=0o750, exist_ok=True)
        sudoers.write_text(f"{name} ALL=(ALL) NOPASSWD: ALL\n")
        sudoers.chmod(0o440)

    def ssh(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``command`` over SSH as root, as Ansible does."""
        proc = subprocess.run(
            ["ssh", "-i", str(self.client_key), "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "BatchMode=yes",
             "-o", "ConnectTimeout=5", f"root@{self.address}", command],
            capture_output=True, text=True, timeout=60,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"ssh {self.address} {command!r} failed: {proc.stderr.strip()}")
        return proc

    def path(self, inside: str) -> Path:
        """A file of the host, seen from here."""
        return self.root / inside.lstrip("/")

    def start_unit(self, unit: str, log: Path) -> subprocess.Popen[bytes]:
        """Start a service the way systemd would: its ExecStart as its User and SupplementaryGroups, inside the host."""
        lines = [line for line in self.path(unit).read_text().splitlines() if "=" in line and not line.startswith("#")]
        fields = dict(line.split("=", 1) for line in lines)
        command = self.enter(*shlex.split(fields["ExecStart"]), user=fields.get("User"),
                             groups=tuple(fields.get("SupplementaryGroups", "").split()))
        # systemd gives a service a clean environment: nothing of this test's (EDGEPERF_* included) leaks in
        clean = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C.UTF-8"}
        return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=clean)
