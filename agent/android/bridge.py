"""``edgeperf-agent android --serial SERIAL``: one host process that puts one phone on the fleet.

A phone cannot run the agent, so the bridge is the agent on the phone's behalf: the same daemon
(``agent.daemon``: broker, TLS, fleet key, outbox, heartbeat, ownership), with the phone's id,
tags (``android`` always among them) and facts, and a worker that runs each job on the phone
(``agent.android.worker``). It watches the phone between jobs (``adb get-state``, reconnecting a
phone on TCP): while the phone is gone the device's status says ``offline`` and jobs are refused
with that reason, so a campaign treats an unplugged phone exactly as a stopped agent; when it
comes back, charging a cut-off run left suspended is resumed and its facts are read again.

No live telemetry is sent for a phone: reading its sensors every second over adb would load the
phone being measured. Its result carries the temperatures before and after the run instead.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from agent import __version__, contract
from agent.android import charging, phone_facts, phone_power
from agent.android.adb import Adb, PhoneError
from agent.android.gauge import SOURCE
from agent.android.tool_output import CutOff
from agent.android.tools import Toolbox
from agent.config import AgentConfig
from agent.contract import MAX_PAYLOAD_BYTES
from agent.daemon import AgentDaemon
from agent.errors import EXIT_USAGE

log = logging.getLogger("edgeperf.android")
TAG = "android"
MEASURES = contract.Measures(("SingleStream",), ("performance",), (
    "a phone's tools (benchmark_model, onnxruntime_perf_test) run one inference after another on random inputs and "
    "write no outputs to score (docs/phones.md)"))


@dataclass(frozen=True)
class PhoneLink:
    """Which phone, through which adb client, with which tools."""

    serial: str
    adb: str = "adb"
    tools: Toolbox = dataclasses.field(default_factory=Toolbox)


class PhoneBridge(AgentDaemon):
    """The agent daemon serving one phone over adb."""

    def __init__(self, config: AgentConfig, link: PhoneLink, stop: threading.Event | None = None) -> None:
        super().__init__(config, stop)
        self.link = link
        self.adb = Adb(link.serial, link.adb)
        self._gone: str | None = "the phone has not been seen yet"
        self._facts_read = False
        self.check_phone()

    # ---- the phone's presence -------------------------------------------------------------------
    def check_phone(self) -> None:
        """Is the phone there (reconnecting one on TCP)? A change is announced at once."""
        try:
            if self.adb.state(timeout_s=5) != "device":
                self.adb.connect(timeout_s=5)
            gone = None
        except PhoneError as exc:
            gone = f"phone {self.link.serial} is not reachable over adb ({exc}); plug it in (adb devices lists it)"
        if gone == self._gone:
            return
        was_gone, self._gone = self._gone, gone
        if gone:
            log.warning("%s", gone)
        else:
            log.info("phone %s answers over adb%s", self.link.serial, f" (it was gone: {was_gone})" if was_gone else "")
            self._resume_charging()
            if not self._facts_read:
                self._info = None  # read them now that the phone answers
        if self.identity.speaking:
            self._publish_presence()

    def _resume_charging(self) -> None:
        try:
            done = charging.restore_pending(self.adb, self.config.storage)
        except (PhoneError, CutOff) as exc:
            log.warning("charging is still suspended on %s: %s", self.link.serial, exc)
            return
        if done:
            log.info("%s", done)

    # ---- the daemon's hooks ---------------------------------------------------------------------
    def unavailable(self) -> str | None:
        return self._gone

    def housekeeping(self) -> None:
        if self._job is None:  # during a job the worker drives the phone; its own adb calls see it vanish
            self.check_phone()

    def job_ended(self) -> None:
        self._resume_charging()
        self.check_phone()

    def worker_argv(self, job_file: Path, model: Path, out: Path) -> list[str]:
        cmd = [sys.executable, "-m", "agent.android.worker", "--job", str(job_file), "--model", str(model), "--out",
               str(out), "--serial", self.link.serial, "--adb", self.link.adb, "--storage", str(self.config.storage),
               "--device-id", self.device]
        if self.link.tools.host_dir is not None:
            cmd += ["--tools", str(self.link.tools.host_dir)]
        if self.link.tools.phone_dir is not None:
            cmd += ["--phone-tools", self.link.tools.phone_dir]
        return cmd

    def device_info(self) -> contract.Info:
        facts: dict = {"os": "Android", "adb_serial": self.link.serial, "bridge_host": socket.gethostname()}
        if self._gone is None:
            try:
                facts = phone_facts.collect(self.adb) | facts
                self._facts_read = True
            except (PhoneError, CutOff) as exc:
                log.warning("could not read the phone's facts: %s", exc)
        battery, gauge = facts.get("battery", {}), phone_power.has_gauge(facts)
        power = contract.PowerSource(SOURCE, gauge, "" if gauge else "the phone's battery exposes no current_now/voltage_now",
                                     {"battery": battery} if battery else {})
        return contract.Info(__version__, tuple(self.config.tags), facts, self.link.tools.describe(), (power,),
                             MAX_PAYLOAD_BYTES, MEASURES)

    def _publish_presence(self) -> None:
        """Facts first, then status: a controller must know what a phone cannot measure (``contract.Measures``)
        before the status makes the phone available for jobs; a phone's facts take a few adb round trips."""
        self._publish_info()
        self._publish_status()

    def _telemetry(self) -> None:
        """None for a phone (module docstring)."""


def serve(config: AgentConfig, link: PhoneLink) -> int:
    """Run the bridge in the foreground with SIGTERM/SIGINT wired to a clean stop."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if TAG not in config.tags:
        config = dataclasses.replace(config, tags=(*config.tags, TAG))
    bridge = PhoneBridge(config, link, stop)
    bridge.run()
    return EXIT_USAGE if bridge.identity.duplicate else 0
