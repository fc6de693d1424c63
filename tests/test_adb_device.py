"""The adb device emulator (``devices/emulators/adb_device.py``) driven by Debian's real ``adb``
client: connect, get-state, shell, push/pull over sync v1, on-device programs, and a phone that
vanishes mid-command.

Every test runs its own adb server on a free port (``ANDROID_ADB_SERVER_PORT``) with its own
``HOME`` (the server writes ``~/.android/adbkey``), and kills it at the end, so a developer's adb
server and keys are never touched. Every subprocess has a timeout.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from controller.fleet.broker import free_port
from devices.emulators.adb_device import AdbDevice
from tests.phone_lab import require_adb

ADB = shutil.which("adb")

PROPS = {
    "ro.product.name": "panther",
    "ro.product.model": "Pixel 7",
    "ro.product.device": "panther",
    "ro.build.version.sdk": "34",
}
RC = "__EDGEPERF_RC="


def unplug_mid_run(device: AdbDevice, path: str, output: bytes) -> None:
    """An executable program at ``path`` on ``device`` that runs until the phone is unplugged (8 s at most)
    and then prints ``output``; the phone is unplugged 0.2 s after the program starts."""
    started = threading.Event()

    def slow(argv, dev):
        started.set()
        deadline = time.monotonic() + 8
        while dev.plugged.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        return output, 0

    file = device.root / path.lstrip("/")
    file.write_bytes(b"")
    file.chmod(0o755)
    device.commands[path] = slow

    def unplug_when_running():
        if started.wait(10):
            time.sleep(0.2)
            device.unplug()

    threading.Thread(target=unplug_when_running, daemon=True).start()


class Adb:
    """The real adb client against a private server."""

    def __init__(self, home: Path) -> None:
        self.env = {
            **os.environ,
            "ANDROID_ADB_SERVER_PORT": str(free_port()),
            "HOME": str(home),
            "ANDROID_SDK_HOME": str(home),
        }
        self.env.pop("ANDROID_SERIAL", None)
        self.env.pop("ADB_VENDOR_KEYS", None)

    def __call__(self, *args: str, timeout: float = 15) -> subprocess.CompletedProcess:
        return subprocess.run(
            [ADB, *args], env=self.env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )

    def shell(self, serial: str, command: str, timeout: float = 15) -> subprocess.CompletedProcess:
        return self("-s", serial, "shell", command, timeout=timeout)

    def connect(self, serial: str, deadline_s: float = 10) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            self("connect", serial)
            if self("-s", serial, "get-state").stdout.strip() == "device":
                return
            time.sleep(0.1)
        raise AssertionError(f"{serial} never became 'device': {self('devices').stdout!r}")


@pytest.fixture
def adb(tmp_path):
    require_adb()
    home = tmp_path / "home"
    home.mkdir()
    client = Adb(home)
    started = client("start-server", timeout=20)
    assert started.returncode == 0, started.stderr
    yield client
    client("kill-server", timeout=15)


@pytest.fixture
def phone(tmp_path, adb):
    root = tmp_path / "phone"
    (root / "data" / "local" / "tmp").mkdir(parents=True)
    with AdbDevice(root, PROPS) as device:
        adb.connect(device.serial)
        yield device


def test_connect_lists_the_device_with_its_banner(adb, phone):
    devices = adb("devices", "-l").stdout
    line = next(line for line in devices.splitlines() if line.startswith(phone.serial))
    assert line.split()[1] == "device"
    # the server read product/model/device from the CNXN banner
    assert "product:panther" in line and "model:Pixel_7" in line and "device:panther" in line
    state = adb("-s", phone.serial, "get-state")
    assert (state.returncode, state.stdout) == (0, "device\n")
    # only what the emulator implements is advertised, so the client falls back to the legacy services
    features = adb("-s", phone.serial, "features").stdout.split()
    assert features == ["fixed_push_mkdir"]


def test_getprop_one_and_all(adb, phone):
    assert adb.shell(phone.serial, "getprop ro.product.model").stdout == "Pixel 7\n"
    assert adb.shell(phone.serial, "getprop no.such.prop").stdout == "\n"
    everything = adb.shell(phone.serial, "getprop").stdout
    assert "[ro.product.model]: [Pixel 7]\n" in everything
    assert "[ro.build.version.sdk]: [34]\n" in everything


def test_exit_marker_and_lists(adb, phone):
    ok = adb.shell(phone.serial, f"getprop ro.product.device; echo {RC}$?")
    assert ok.stdout == f"panther\n{RC}0\n"
    failed = adb.shell(phone.serial, f"cat /data/local/tmp/none; echo {RC}$?")
    assert failed.stdout == f"/system/bin/sh: cat: /data/local/tmp/none: No such file or directory\n{RC}1\n"
    chained = adb.shell(phone.serial, f"false && echo no || echo yes; echo '$?' \"$?\"; echo {RC}$?")
    assert chained.stdout == f"yes\n$? 0\n{RC}0\n"
    missing = adb.shell(phone.serial, f"dumpsys battery; echo {RC}$?")
    assert missing.stdout == f"/system/bin/sh: dumpsys: inaccessible or not found\n{RC}127\n"
    files = adb.shell(
        phone.serial, f"mkdir -p /data/local/tmp/a/b && echo hi > /data/local/tmp/a/b/f; ls /data/local/tmp/a/b; echo {RC}$?"
    )
    assert files.stdout == f"f\n{RC}0\n"
    assert (phone.root / "data/local/tmp/a/b/f").read_text() == "hi\n"


def test_push_pull_round_trip_in_many_data_chunks(adb, phone, tmp_path):
    payload = os.urandom(200 * 1024)  # > 3 sync DATA chunks of 64 KiB each way
    local = tmp_path / "model.bin"
    local.write_bytes(payload)
    os.utime(local, (1_700_000_000, 1_700_000_000))
    pushed = adb("-s", phone.serial, "push", str(local), "/data/local/tmp/models/model.bin")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    on_phone = phone.root / "data/local/tmp/models/model.bin"  # the missing folder was made
    assert on_phone.read_bytes() == payload
    assert on_phone.stat().st_mtime == 1_700_000_000  # the mtime carried by DONE
    back = tmp_path / "back.bin"
    pulled = adb("-s", phone.serial, "pull", "/data/local/tmp/models/model.bin", str(back))
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert back.read_bytes() == payload
    listed = adb.shell(phone.serial, "ls /data/local/tmp/models").stdout
    assert listed == "model.bin\n"


def test_pull_and_push_failures_come_from_the_device(adb, phone, tmp_path):
    missing = adb("-s", phone.serial, "pull", "/data/local/tmp/missing.bin", str(tmp_path / "x"))
    assert missing.returncode != 0
    assert "remote object '/data/local/tmp/missing.bin' does not exist" in missing.stdout + missing.stderr
    # a dangling symlink passes STAT (it exists) and fails at RECV: the device's FAIL reaches the user
    (phone.root / "data/local/tmp/dangling").symlink_to("nowhere")
    dangling = adb("-s", phone.serial, "pull", "/data/local/tmp/dangling", str(tmp_path / "y"))
    assert dangling.returncode != 0
    assert "open failed: No such file or directory" in dangling.stdout + dangling.stderr
    # pushing under a regular file: adbd's open fails with ENOTDIR, FAIL after SEND, then it drains the DATA
    (phone.root / "data/local/tmp/plain").write_text("x")
    local = tmp_path / "f.bin"
    local.write_bytes(os.urandom(100 * 1024))
    blocked = adb("-s", phone.serial, "push", str(local), "/data/local/tmp/plain/f.bin")
    assert blocked.returncode != 0
    assert "remote couldn't create file: Not a directory" in blocked.stdout + blocked.stderr
    assert (phone.root / "data/local/tmp/plain").read_text() == "x"
    # the connection is still usable afterwards
    assert adb.shell(phone.serial, "echo alive").stdout == "alive\n"


def test_registered_program_needs_its_file(adb, phone, tmp_path):
    calls = []

    def benchmark_model(argv, device):
        calls.append(argv)
        return f"count={len(argv) - 1} model={device.props['ro.product.model']}\n".encode(), 3

    phone.commands["/data/local/tmp/benchmark_model"] = benchmark_model
    run = f"/data/local/tmp/benchmark_model --graph='/data/local/tmp/m.tflite' --num_runs=5; echo {RC}$?"
    absent = adb.shell(phone.serial, run)
    assert absent.stdout == f"/system/bin/sh: /data/local/tmp/benchmark_model: inaccessible or not found\n{RC}127\n"
    assert calls == []
    local = tmp_path / "benchmark_model"
    local.write_bytes(b"\x7fELF not really")
    local.chmod(0o644)
    assert adb("-s", phone.serial, "push", str(local), "/data/local/tmp/benchmark_model").returncode == 0
    not_executable = adb.shell(phone.serial, run)
    assert not_executable.stdout.endswith(f"can't execute: Permission denied\n{RC}126\n")
    assert adb.shell(phone.serial, "chmod 755 /data/local/tmp/benchmark_model").returncode == 0
    ran = adb.shell(phone.serial, run)
    assert ran.stdout == f"count=2 model=Pixel 7\n{RC}3\n"
    assert calls == [["/data/local/tmp/benchmark_model", "--graph=/data/local/tmp/m.tflite", "--num_runs=5"]]


def test_unplug_mid_command_ends_adb_shell_and_replug_reconnects(adb, phone):
    unplug_mid_run(phone, "/data/local/tmp/slow", b"finished\n")
    t0 = time.monotonic()
    cut = adb.shell(phone.serial, f"echo before; /data/local/tmp/slow; echo {RC}$?", timeout=10)
    elapsed = time.monotonic() - t0
    # Debian's adb 29 may exit 0 with the output cut short: the missing end marker is what tells
    assert "before\n" in cut.stdout
    assert RC not in cut.stdout and "finished" not in cut.stdout
    assert elapsed < 5, elapsed
    assert adb("-s", phone.serial, "get-state").stdout.strip() != "device"
    refused = socket.socket()
    with pytest.raises(ConnectionRefusedError):
        refused.connect(("127.0.0.1", phone.port))
    refused.close()
    phone.replug()
    # adb 29 keeps the transport "offline" and retries it on its own every 10 s; `connect` alone answers
    # "already connected", so a bridge disconnects first
    adb("disconnect", phone.serial)
    adb.connect(phone.serial)
    assert adb.shell(phone.serial, f"echo again; echo {RC}$?").stdout == f"again\n{RC}0\n"


def _message(command: int, arg0: int, arg1: int, data: bytes, check: int | None = None) -> bytes:
    check = sum(data) if check is None else check
    return struct.pack("<6I", command, arg0, arg1, len(data), check, command ^ 0xFFFFFFFF) + data


def _read_message(sock: socket.socket) -> tuple[int, int, int, bytes, int]:
    header = b""
    while len(header) < 24:
        chunk = sock.recv(24 - len(header))
        if not chunk:
            raise EOFError
        header += chunk
    command, arg0, arg1, length, check, magic = struct.unpack("<6I", header)
    assert magic == command ^ 0xFFFFFFFF
    data = b""
    while len(data) < length:
        data += sock.recv(length - len(data))
    return command, arg0, arg1, data, check


def test_a_version_1_host_gets_checksums_and_a_corrupt_payload_closes(tmp_path):
    """The older protocol, which today's adb never speaks, from the raw wire (no adb client needed):
    below A_VERSION_SKIP_CHECKSUM every payload carries its byte sum, and a wrong one ends the link."""
    cnxn, open_, okay, wrte, clse = 0x4E584E43, 0x4E45504F, 0x59414B4F, 0x45545257, 0x45534C43  # adb.h
    with AdbDevice(tmp_path, PROPS) as device, socket.create_connection(("127.0.0.1", device.port), timeout=5) as sock:
        sock.sendall(_message(open_, 1, 0, b"shell:echo early\0"))  # before CNXN: ignored
        sock.sendall(_message(cnxn, 0x01000000, 4096, b"host::\0"))
        command, version, max_payload, banner, check = _read_message(sock)
        assert (command, version, max_payload) == (cnxn, 0x01000000, 4096)
        assert banner.startswith(b"device::ro.product.name=panther;ro.product.model=Pixel 7;")
        assert check == sum(banner)
        sock.sendall(_message(open_, 7, 0, b"shell:getprop ro.product.model; echo $?\0"))
        command, local_id, remote_id, _, _ = _read_message(sock)
        assert (command, remote_id) == (okay, 7)
        output = b""
        while True:
            command, arg0, arg1, data, check = _read_message(sock)
            if command == clse:
                break
            assert (command, arg0, arg1, check) == (wrte, local_id, 7, sum(data))
            output += data
            sock.sendall(_message(okay, 7, local_id, b""))
        assert output == b"Pixel 7\n0\n"
        sock.sendall(_message(open_, 8, 0, b"shell:echo x\0", check=12345))
        with pytest.raises((EOFError, ConnectionResetError)):
            _read_message(sock)


# --- the shell's loops, background jobs, test, permissions ----------------------------------------

GAUGE = "/sys/class/power_supply/battery"
EDGE = "/data/local/tmp/edgeperf"
# the phone-bridge's energy run, as it sends it
SAMPLER_RUN = (
    f"rm -f {EDGE}/gauge.stop {EDGE}/gauge.txt; while [ ! -e {EDGE}/gauge.stop ]; do echo $EPOCHREALTIME; "
    f"cat {GAUGE}/current_now {GAUGE}/voltage_now; sleep 0.02; done > {EDGE}/gauge.txt 2>&1 & sleep 1; "
    f"echo __EDGEPERF_T0=$EPOCHREALTIME; {EDGE}/bin/benchmark_model --graph={EDGE}/m.tflite 2>&1; "
    f"echo __EDGEPERF_TOOL_RC=$?; echo __EDGEPERF_T1=$EPOCHREALTIME; sleep 0.5; echo > {EDGE}/gauge.stop; wait; "
    f"echo {RC}$?"
)


def battery(device: AdbDevice) -> Path:
    folder = device.root / GAUGE.lstrip("/")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "current_now").write_text("-512000\n")
    (folder / "voltage_now").write_text("3850000\n")
    return folder


def jobs_left(device: AdbDevice) -> list[str]:
    """The device's background jobs still running (their threads are named after it)."""
    return [t.name for t in threading.enumerate() if t.name == f"adb-emulator-job {device.serial}"]


def wait_for(predicate, deadline_s: float = 5) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_the_bridges_sampler_loop_records_the_gauge_while_the_benchmark_runs(adb, phone):
    battery(phone)
    tool = phone.root / EDGE.lstrip("/") / "bin/benchmark_model"
    tool.parent.mkdir(parents=True)
    tool.write_bytes(b"")
    tool.chmod(0o755)
    phone.commands[f"{EDGE}/bin/benchmark_model"] = lambda argv, dev: (time.sleep(0.3), (b"INFO: ran\n", 0))[1]
    run = adb.shell(phone.serial, SAMPLER_RUN, timeout=15)
    out = run.stdout.splitlines()
    assert out[1:3] == ["INFO: ran", "__EDGEPERF_TOOL_RC=0"] and out[-1] == f"{RC}0", run.stdout
    t0, t1 = float(out[0].removeprefix("__EDGEPERF_T0=")), float(out[3].removeprefix("__EDGEPERF_T1="))
    assert 0.25 < t1 - t0 < 2
    # what the background loop wrote: a time line ("%u.%06u") and the two gauge files, per pass
    text = lines(phone.root / EDGE.lstrip("/") / "gauge.txt")
    records = [text[i : i + 3] for i in range(0, len(text) - 2, 3)]
    assert len(records) >= 3 and len(text) % 3 == 0
    assert all(r[1:] == ["-512000", "3850000"] and len(r[0].split(".")[1]) == 6 for r in records)
    stamps = [float(r[0]) for r in records]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert stamps[0] < t0 < t1 < stamps[-1]  # it ran before the tool and until the stop file, after it
    assert jobs_left(phone) == []  # `wait` returned only once the loop had ended


def test_test_and_brackets(adb, phone):
    (phone.root / "data/local/tmp/f").write_text("x")
    (phone.root / "data/local/tmp/empty").write_text("")
    checks = {
        "[ -e /data/local/tmp/f ]": 0, "[ ! -e /data/local/tmp/f ]": 1, "[ -f /data/local/tmp ]": 1,
        "[ -d /data/local/tmp ]": 0, "[ -s /data/local/tmp/empty ]": 1, "test -z ''": 0, "[ -n '' ]": 1,
        "[ abc = abc ]": 0, "[ abc != abc ]": 1, "test 10 -gt 9": 0, "[ -3 -le -4 ]": 1, "[ 7 -eq 07 ]": 0,
        "[ ! a = b ]": 0, "[ a = b -o 1 -lt 2 ]": 0, "[ ]": 1, "[ word ]": 0,
    }
    command = "; ".join(f"{check}; echo $?" for check in checks)
    assert adb.shell(phone.serial, command).stdout.split() == [str(status) for status in checks.values()]
    # malformed: mksh's messages (funcs.c c_test, ptest_error), status 2
    bad = adb.shell(phone.serial, f"[ 1 -eq ]; echo {RC}$?; test a b c; echo {RC}$?; [ -e x; echo {RC}$?").stdout
    assert bad == (
        f"/system/bin/sh: [: -eq: missing second argument\n{RC}2\n/system/bin/sh: test: b: unexpected operator/operand\n"
        f"{RC}2\n/system/bin/sh: [: missing ]\n{RC}2\n"
    )
    # what is not modelled says so
    assert adb.shell(phone.serial, f"[ -L /x ]; echo {RC}$?").stdout == (
        f"adb emulator: the test operator -L is not supported\n{RC}2\n"
    )


def test_while_loops_their_status_and_redirections(adb, phone):
    tmp = "/data/local/tmp"
    loop = (
        f"while [ ! -e {tmp}/flag ]; do echo pass; echo made > {tmp}/flag; done >> {tmp}/log && echo {RC}$?; "
        f"until true; do echo never; done; echo {RC}$?; false; while false; do :; done; echo {RC}$?"
    )
    assert adb.shell(phone.serial, loop).stdout == f"{RC}0\n{RC}0\n{RC}0\n"
    assert (phone.root / "data/local/tmp/log").read_text() == "pass\n"  # one pass, its output to the loop's file
    # the status of the body's last command; the loop's 2>&1 sends the body's errors to the file too
    failing = adb.shell(phone.serial, f"while [ ! -e {tmp}/none ]; do cat {tmp}/none; echo > {tmp}/none; false; done "
                                      f"> {tmp}/err 2>&1; echo {RC}$?").stdout
    assert failing == f"{RC}1\n"
    assert (phone.root / "data/local/tmp/err").read_text() == f"/system/bin/sh: cat: {tmp}/none: No such file or directory\n"
    assert adb.shell(phone.serial, "while true; do echo").stdout == "/system/bin/sh: syntax error: unmatched 'while'\n"
    # a line is parsed whole before it runs, and a -c string line by line (main.c shell(): one yyparse a line)
    assert adb.shell(phone.serial, "echo a; done").stdout == "/system/bin/sh: syntax error: unexpected 'done'\n"
    assert adb.shell(phone.serial, "echo a\ndone").stdout == "a\n/system/bin/sh: syntax error: unexpected 'done'\n"


def test_the_shell_user_is_refused_what_its_modes_forbid(adb, phone):
    folder = battery(phone)
    suspend, secret = folder / "input_suspend", folder / "secret"
    suspend.write_text("0\n")
    suspend.chmod(0o444)  # sysfs: the shell user is "other"
    secret.write_text("42\n")
    secret.chmod(0o200)
    mine = phone.root / "data/local/tmp/mine"
    mine.write_text("old\n")
    mine.chmod(0o644)  # /data/local/tmp: the shell user owns it
    try:
        refused = adb.shell(phone.serial, f"echo 1 > {GAUGE}/input_suspend; echo {RC}$?").stdout
        assert refused == f"/system/bin/sh: can't create {GAUGE}/input_suspend: Permission denied\n{RC}1\n"
        assert suspend.read_text() == "0\n"
        assert adb.shell(phone.serial, f"cat {GAUGE}/input_suspend").stdout == "0\n"
        unreadable = adb.shell(phone.serial, f"cat {GAUGE}/secret; echo {RC}$?").stdout
        assert unreadable == f"/system/bin/sh: cat: {GAUGE}/secret: Permission denied\n{RC}1\n"
        tests = adb.shell(phone.serial, f"[ -w {GAUGE}/input_suspend ]; echo $?; [ -r {GAUGE}/secret ]; echo $?; "
                                        f"[ -w {GAUGE}/secret ]; echo $?; [ -w /data/local/tmp/mine ]; echo $?").stdout
        assert tests.split() == ["1", "1", "1", "0"]  # 0200 under /sys: "other" may do nothing
        # a new file under /sys needs a folder "other" may write: sysfs has none
        assert adb.shell(phone.serial, f"echo 1 > {GAUGE}/new; echo {RC}$?").stdout.endswith(
            f"can't create {GAUGE}/new: Permission denied\n{RC}1\n"
        )
        assert adb.shell(phone.serial, f"echo 1 > /data/local/tmp/mine; echo {RC}$?").stdout == f"{RC}0\n"
        assert mine.read_text() == "1\n"
    finally:
        secret.chmod(0o600)


def test_a_background_loop_outlives_an_unplug_and_ends_on_its_stop_file(adb, phone):
    beats, tmp = phone.root / "data/local/tmp/beats", "/data/local/tmp"
    loop = f"while [ ! -e {tmp}/stop ]; do echo $EPOCHREALTIME >> {tmp}/beats; sleep 0.02; done > {tmp}/log 2>&1 & echo started"
    proc = subprocess.Popen([ADB, "-s", phone.serial, "shell", loop], env=adb.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        assert wait_for(lambda: len(lines(beats)) >= 3)
        # the loop keeps a saved copy of the shell's output (exec.c savefd), so adbd keeps the stream open
        assert proc.poll() is None
        phone.unplug()
        assert proc.wait(timeout=10) is not None
        assert proc.stdout is not None and proc.stdout.read() == "started\n"
        count = len(lines(beats))
        assert wait_for(lambda: len(lines(beats)) >= count + 5)  # still running, with nobody connected
        phone.replug()
        adb("disconnect", phone.serial)
        adb.connect(phone.serial)
        assert adb.shell(phone.serial, f"echo > {tmp}/stop; echo {RC}$?").stdout == f"{RC}0\n"
        assert wait_for(lambda: jobs_left(phone) == [])
        count = len(lines(beats))
        time.sleep(0.2)
        assert len(lines(beats)) == count
        assert (phone.root / "data/local/tmp/log").read_text() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_a_background_jobs_own_output_holds_the_stream_and_ends_with_it(adb, phone):
    # not redirected, the job writes to the stream, and adbd ends the stream only once it is done
    assert adb.shell(phone.serial, f"sleep 0.3 && echo late & echo early; echo {RC}$?").stdout == f"early\n{RC}0\nlate\n"
    assert wait_for(lambda: jobs_left(phone) == [])
    # once the stream is lost, the job's next write to it ends the job (SIGPIPE)
    ticks = "while true; do echo tick; sleep 0.02; done & echo started"
    proc = subprocess.Popen([ADB, "-s", phone.serial, "shell", ticks], env=adb.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() in ("started\n", "tick\n")
        assert len(jobs_left(phone)) == 1
        phone.unplug()
        proc.wait(timeout=10)
        assert wait_for(lambda: jobs_left(phone) == [])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_stop_ends_background_jobs(adb, phone):
    beats, tmp = phone.root / "data/local/tmp/beats", "/data/local/tmp"
    # a simple command whose 1 and 2 are redirected lets the stream go; the loop holds it (see above)
    jobs = f"sleep 30 > /dev/null 2>&1 & while true; do echo beat >> {tmp}/beats; sleep 0.02; done > /dev/null 2>&1 & echo {RC}$?"
    proc = subprocess.Popen([ADB, "-s", phone.serial, "shell", jobs], env=adb.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        assert wait_for(lambda: len(lines(beats)) >= 3)
        assert len(jobs_left(phone)) == 2 and proc.poll() is None
        t0 = time.monotonic()
        phone.stop()
        assert time.monotonic() - t0 < 2
        assert jobs_left(phone) == []  # both ended: the loop at its next pass, the sleep at its next tick
        count = len(lines(beats))
        time.sleep(0.1)
        assert len(lines(beats)) == count
        proc.wait(timeout=10)
        assert proc.stdout is not None and proc.stdout.read() == f"{RC}0\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_sha256sum_is_toyboxs(adb, phone, tmp_path):
    payload = os.urandom(100_000)
    local = tmp_path / "m.tflite"
    local.write_bytes(payload)
    assert adb("-s", phone.serial, "push", str(local), "/data/local/tmp/m.tflite").returncode == 0
    (phone.root / "data/local/tmp/e").write_bytes(b"")
    out = adb.shell(phone.serial, f"sha256sum /data/local/tmp/m.tflite /data/local/tmp/none /data/local/tmp/e; echo {RC}$?")
    assert out.stdout == (
        f"{hashlib.sha256(payload).hexdigest()}  /data/local/tmp/m.tflite\n"
        "sha256sum: /data/local/tmp/none: No such file or directory\n"
        f"{hashlib.sha256(b'').hexdigest()}  /data/local/tmp/e\n{RC}1\n"
    )
