"""What the controller knows of each device right now: liveness heard, not remembered.

A device is available only while its live status (its heartbeat, or its answer to the
controller's announce) keeps arriving. A retained status says what the device last claimed,
possibly hours ago, so it names the device but does not make it available. Each status carries
the agent process's session: an ``offline`` of an older session (a late will) does not end a
newer one, and two sessions that take turns under one id are two agents sharing it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agent import contract
from agent.contract import STALE_AFTER_HEARTBEATS
from controller.fleet.link import Link


@dataclass
class DeviceView:
    """What the controller knows of a device right now (the store has the durable part)."""

    id: str
    state: str = "offline"
    tags: tuple[str, ...] = ()
    agent_version: str = ""
    agent_job: str | None = None  # the run id the agent says it is running
    session: str = ""  # the agent process whose status was heard last
    previous: tuple[str, float] | None = None  # the session heard before it, and when (monotonic)
    duplicate: str = ""  # two agents answer under this id: what the controller saw
    heartbeat_s: float = 10.0
    known_since: float = field(default_factory=time.monotonic)
    heard_at: float | None = None  # monotonic time of the last live (not retained) status
    offline_since: float | None = None  # monotonic
    cooldown_until: float = 0.0
    phase: str = ""
    phase_details: dict[str, Any] = field(default_factory=dict)
    phase_since: float = 0.0
    telemetry: contract.Telemetry | None = None
    measures: contract.Measures | None = None  # what a device that cannot measure everything can (its info)
    link: Link | None = None  # the controller's probe of the broker: silence counts only while the broker works


    def silent_since(self) -> float | None:
        """Since when (monotonic) the device has been unreachable — its offline status, or the moment
        its heartbeat was due ``STALE_AFTER_HEARTBEATS`` times over, if the broker was seen working
        after that moment — or None while it is heard."""
        if self.state == "offline":
            return self.offline_since or self.known_since
        last = self.heard_at if self.heard_at is not None else self.known_since
        due = last + STALE_AFTER_HEARTBEATS * self.heartbeat_s
        seen_until = self.link.confirmed_at if self.link is not None else time.monotonic()
        return due if seen_until > due else None

    @property
    def heard(self) -> bool:
        """Heard live since this controller connected, and not silent since."""
        return self.state != "offline" and self.heard_at is not None and self.silent_since() is None

    @property
    def available(self) -> bool:
        """Online and heard: the only state a job is sent in."""
        return self.state == "online" and self.heard

    def describe(self) -> str:
        """The state as ``devices`` shows it: stale devices say what they last claimed and since when."""
        if self.state != "offline" and self.heard_at is None:
            state = f"stale (last said {self.state}; not heard since this controller connected)"
        elif self.state == "offline" or self.silent_since() is None:
            state = self.state
        else:
            state = f"stale (last said {self.state}, {time.monotonic() - self.heard_at:.0f} s ago)"
        return f"{state}; {self.duplicate}" if self.duplicate else state

    def hear(self, status: contract.Status, retained: bool) -> tuple[bool, tuple[str, str] | None]:
        """Take in a status: whether it was applied (a late will of an earlier session is not), and the
        two sessions when it shows two agents answering under this id."""
        if status.state == "offline" and self.session and status.session != self.session:
            return False, None  # the late will of an earlier run of the agent: the current one is still there
        now, clash = time.monotonic(), None
        if not retained and self.session and status.session != self.session:
            # A restarted agent replaces its session for good; two agents under one id alternate.
            back, window = self.previous, STALE_AFTER_HEARTBEATS * status.heartbeat_s
            if back and back[0] == status.session and now - back[1] <= window:
                clash = (status.session, self.session)
            self.previous = (self.session, self.heard_at or now)
        self.state, self.agent_job, self.agent_version, self.tags = status.state, status.job, status.agent_version, status.tags
        self.session, self.heartbeat_s = status.session, status.heartbeat_s
        if not retained:
            self.heard_at = now
        self.offline_since = (self.offline_since or now) if status.state == "offline" else None
        return True, clash
