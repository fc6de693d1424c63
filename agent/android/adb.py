"""The host's adb client, driven as a user would drive it: ``adb -s SERIAL shell|push|pull|get-state``.

Why the command-line client and not a Python adb library: the phone is already managed by the
host's adb server (the lab's udev rules, its keys, ``adb connect`` for phones on TCP), and a second
client speaking the USB protocol would fight it for the device. Every call has a timeout, and every
shell command carries the end marker (``tool_output.marked``): Debian's adb 29 exits 0 with a
truncated output when the phone goes away mid-command, so the marker, not the exit status, says a
command finished. ``ANDROID_ADB_SERVER_PORT`` in the environment picks the adb server, as for adb.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from agent.android.tool_output import CutOff, finished, marked
from agent.errors import EdgeperfError

DEFAULT_TIMEOUT_S = 60.0


class PhoneError(EdgeperfError):
    """The phone cannot be reached or refused a transfer; the message names the phone and the fix."""


class Adb:
    """One phone, by its adb serial (``R58M…`` on USB, ``HOST:PORT`` over TCP)."""

    def __init__(self, serial: str, adb: str = "adb", env: dict[str, str] | None = None) -> None:
        self.serial = serial
        self.adb = adb
        self.env = {**os.environ, **(env or {})}

    def _call(self, argv: list[str], timeout_s: float, late: str) -> subprocess.CompletedProcess[str]:
        """``adb ARGV``; ``late`` is the message when it does not finish within ``timeout_s``."""
        try:
            return subprocess.run([self.adb, *argv], capture_output=True, text=True, errors="replace", timeout=timeout_s,
                                  env=self.env, check=False, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise PhoneError(f"no adb client at {self.adb!r}; install it (apt-get install adb) or give its path") from None
        except subprocess.TimeoutExpired:
            raise PhoneError(late) from None

    def _run(self, args: list[str], timeout_s: float, what: str) -> subprocess.CompletedProcess[str]:
        return self._call(["-s", self.serial, *args], timeout_s, f"phone {self.serial}: {what} did not finish within "
                          f"{timeout_s:g} s; check the phone (adb devices) and the job's timeout")

    def _gone(self, proc: subprocess.CompletedProcess[str], what: str) -> PhoneError:
        said = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return PhoneError(f"phone {self.serial}: {what} failed ({said[:200]}); is it plugged in and authorised? "
                          "(adb devices lists it as 'device')")

    def _host(self, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        """An adb command that names no device (connect, disconnect)."""
        return self._call(list(args), timeout_s, f"adb {args[0]} {self.serial} did not answer within {timeout_s:g} s")

    def connect(self, timeout_s: float = 15.0) -> None:
        """``adb connect`` for a phone on TCP (``HOST:PORT``); a USB serial needs none. A transport adb still
        holds as offline (a phone that went away and came back) is dropped first: adb 29 answers ``connect``
        with "already connected" and keeps it offline until its own retry, 10 s later."""
        if ":" not in self.serial:
            return
        if self.state() == "device":
            return
        self._host("disconnect", self.serial, timeout_s=timeout_s)
        proc = self._host("connect", self.serial, timeout_s=timeout_s)
        said = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0 or not said.startswith(("connected to", "already connected to")):
            raise PhoneError(f"adb connect {self.serial}: {said[:200] or f'exit {proc.returncode}'}; is the phone's adb "
                             "over TCP on (adb tcpip 5555) and the address right?")
        deadline = time.monotonic() + timeout_s
        while (state := self.state()) != "device":
            if time.monotonic() > deadline:
                hint = "accept this computer's key on the phone" if state == "unauthorized" else "check the phone"
                raise PhoneError(f"adb connect {self.serial}: the phone stays {state}; {hint}")
            time.sleep(0.1)

    def state(self, timeout_s: float = 10.0) -> str:
        """``device`` when the phone is there and authorised; otherwise what adb says (``offline``,
        ``unauthorized``) or ``absent``."""
        proc = self._run(["get-state"], timeout_s, "get-state")
        if proc.returncode == 0:
            return proc.stdout.strip() or "absent"
        text = proc.stderr.lower()
        return "unauthorized" if "unauthorized" in text else "offline" if "offline" in text else "absent"

    def shell(self, command: str, what: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[str, int]:
        """``command``'s output and exit status on the phone. ``CutOff`` when its end marker never came (the
        phone vanished mid-command), ``PhoneError`` when adb could not reach the phone at all."""
        proc = self._run(["shell", marked(command)], timeout_s, what)
        try:
            return finished(proc.stdout, what)
        except CutOff:
            if proc.returncode != 0 and not proc.stdout:
                raise self._gone(proc, what) from None
            raise

    def push(self, local: Path, remote: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        proc = self._run(["push", str(local), remote], timeout_s, f"push {local.name}")
        if proc.returncode != 0:
            raise self._gone(proc, f"push {local} to {remote}")

    def pull(self, remote: str, local: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        proc = self._run(["pull", remote, str(local)], timeout_s, f"pull {remote}")
        if proc.returncode != 0 or not local.exists():
            raise self._gone(proc, f"pull {remote}")
