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

A broker from ``edgeperf broker config`` gives every device the client id of its certificate, so
two agents sharing a certificate (a cloned SD card) are never connected at once: each connection
pushes the other off, and the broker publishes the pushed one's will. Neither hears the other's
heartbeat; what each sees after (re)connecting is the other's will, retained. A will seen once
may be that of an earlier run of this device; but the same will seen again at a later connect
came back after this agent's own will had replaced it (it lost its connection in between), so
its session connected again: it is alive. That is the proof here, and the rules above decide who
stops, uptimes taken from the will's own clock (its timestamp less its uptime, so both agents
compare the same two start times). So that the newcomer is the one that has not spoken, an agent
whose first connect shows another session's will waits ``TAKEOVER_WAIT_S`` before it speaks:
long enough for an agent it pushed off to come back and push it off first.
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
# After the first connect, when the retained status is another session's will: an agent this one pushed off
# the broker (sharing its certificate) reconnects after paho's first back-off (1 s) plus a TLS handshake.
TAKEOVER_WAIT_S = 3.0


class Identity:
    """This agent process's session and what its own status topic has shown."""

    def __init__(self, device_id: str, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.device_id, self.clock, self.wall = device_id, clock, wall
        self.session = secrets.token_hex(8)
        self.started = clock()
        self.speaking = False  # presence published since the last connect: jobs are taken
        self.spoken = False  # presence published at all by this process
        self.duplicate: str | None = None  # why this agent must stop: another agent holds its device id
        self._settle_until = math.inf
        self._probation_until = 0.0
        self._connects = 0
        self._will: tuple[int, Status] | None = None  # another session's will, retained at which connect
        self._newcomers: set[str] = set()

    @property
    def uptime_s(self) -> float:
        return self.clock() - self.started

    def connected(self) -> None:
        """(Re)connected: silent again until the retained own status had time to arrive."""
        self.speaking, self._settle_until = False, self.clock() + SETTLE_S
        self._connects += 1

    def may_speak(self) -> bool:
        """True once, when the agent should announce itself (and from then on take jobs)."""
        if self.speaking or self.clock() < max(self._settle_until, self._probation_until):
            return False
        self.speaking = self.spoken = True
        return True

    def heard(self, status: Status, retained: bool, sent_at: float) -> str | None:
        """A status on this agent's own topic, sent at ``sent_at`` (the sender's clock). Returns a note to log
        when another agent shows up that should stop itself; sets ``duplicate`` when this one must."""
        if status.session == self.session:
            return None
        if status.state == "offline":
            return self._heard_will(status, sent_at) if retained else None
        if retained:
            if not self.speaking:
                self._probation_until = self.clock() + min(STALE_AFTER_HEARTBEATS * status.heartbeat_s, PROBATION_MAX_S)
                return (f"the retained status of {self.device_id} names another session ({status.session}) as "
                        f"{status.state}; listening for it before taking jobs")
            return None
        return self._clash(status.session, status.uptime_s)

    def _heard_will(self, status: Status, sent_at: float) -> str | None:
        """Another session's will, retained at this connect: proof that it is alive when the same will was
        retained at an earlier connect of this agent (see the module's docstring)."""
        earlier, self._will = self._will, (self._connects, status)
        if earlier is not None and earlier[0] < self._connects and earlier[1] == status:
            started = sent_at - status.uptime_s  # its start, by its own clock
            return self._clash(status.session, self.wall() - started)
        if self._connects == 1 and not self.spoken:
            self._probation_until = max(self._probation_until, self.clock() + TAKEOVER_WAIT_S)
        return None

    def _clash(self, other: str, other_uptime_s: float) -> str | None:
        """Another session is alive under this device id: decide which of the two stops."""
        mine = self.uptime_s
        if not self.spoken:  # it was there before this agent said a word
            newer = True
        elif abs(mine - other_uptime_s) < TIE_S:
            newer = self.session > other
        else:
            newer = mine < other_uptime_s
        if newer:
            self.duplicate = (f"device id {self.device_id} is already used by another agent (session {other}, up "
                              f"{other_uptime_s:.0f} s; this one up {mine:.0f} s): give this agent its own device_id "
                              "(--device-id or agent.toml) and its own certificate, and start it again")
            return None
        if other in self._newcomers:
            return None
        self._newcomers.add(other)
        return (f"another agent (session {other}, up {other_uptime_s:.0f} s) uses device id {self.device_id}; "
                "it is the newer one and stops itself")
