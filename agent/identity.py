"""One run of an agent under its device id: its session, when it may speak, and whether another
agent already holds the id.

Cloned images share a hostname, so two agents can start under one device id; both would take
the same jobs. Each agent watches its own status topic. After (re)connecting it stays silent
for ``SETTLE_S`` so the retained status can arrive; if that names another session as online, it
keeps listening (at most ``PROBATION_MAX_S``) for that session's heartbeat before it says
anything or takes a job, because a retained status may be the stale one of a process that died
without a will. A live status of another session means the id is shared: an agent that has not
spoken yet is the newcomer; of two that both speak (they started together) the one with the
shorter uptime is, the session breaking a tie. The newcomer stops; the other keeps working.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable

from agent.contract import STALE_AFTER_HEARTBEATS, Status

SETTLE_S = 0.5  # after (re)connecting: time for the retained own status to arrive before speaking
PROBATION_MAX_S = 30.0  # the longest wait for the heartbeat of a session the retained status calls online
TIE_S = 2.0  # uptimes closer than this are a tie: the session decides


class Identity:
    """This agent process's session and what its own status topic has shown."""

    def __init__(self, device_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.device_id, self.clock = device_id, clock
        self.session = secrets.token_hex(8)
        self.started = clock()
        self.speaking = False  # presence published since the last connect: jobs are taken
        self.duplicate: str | None = None  # why this agent must stop: another agent holds its device id
        self._settle_until = math.inf
        self._probation_until = 0.0
        self._newcomers: set[str] = set()

    @property
    def uptime_s(self) -> float:
        return self.clock() - self.started

    def connected(self) -> None:
        """(Re)connected: silent again until the retained own status had time to arrive."""
        self.speaking, self._settle_until = False, self.clock() + SETTLE_S

    def may_speak(self) -> bool:
        """True once, when the agent should announce itself (and from then on take jobs)."""
        if self.speaking or self.clock() < max(self._settle_until, self._probation_until):
            return False
        self.speaking = True
        return True

    def heard(self, status: Status, retained: bool) -> str | None:
        """A status on this agent's own topic. Returns a note to log when another agent shows up that
        should stop itself; sets ``duplicate`` when this one must."""
        if status.session == self.session or status.state == "offline":
            return None
        if retained:
            if not self.speaking:
                self._probation_until = self.clock() + min(STALE_AFTER_HEARTBEATS * status.heartbeat_s, PROBATION_MAX_S)
                return (f"the retained status of {self.device_id} names another session ({status.session}) as "
                        f"{status.state}; listening for it before taking jobs")
            return None
        mine = self.uptime_s
        if not self.speaking:  # it was there before this agent said a word
            newer = True
        elif abs(mine - status.uptime_s) < TIE_S:
            newer = self.session > status.session
        else:
            newer = mine < status.uptime_s
        if newer:
            self.duplicate = (f"device id {self.device_id} is already used by another agent (session {status.session}, up "
                              f"{status.uptime_s:.0f} s; this one up {mine:.0f} s): give this agent its own device_id "
                              "(--device-id or agent.toml) and start it again")
            return None
        if status.session in self._newcomers:
            return None
        self._newcomers.add(status.session)
        return (f"another agent (session {status.session}, up {status.uptime_s:.0f} s) uses device id {self.device_id}; "
                "it is the newer one and stops itself")
