"""Two agents under one device id: who speaks when, and which one stops (``agent.identity``).

Pure decisions on a controlled clock; the end-to-end case with two agent processes is in
``tests/test_fleet_faults.py``.
"""

from __future__ import annotations

from agent.contract import Status
from agent.identity import PROBATION_MAX_S, SETTLE_S, Identity


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def status(session: str, state: str = "online", uptime_s: float = 0.0, heartbeat_s: float = 10.0) -> Status:
    return Status(state, session, heartbeat_s, uptime_s=uptime_s)


def test_an_agent_speaks_only_after_the_retained_status_had_time_to_arrive():
    clock = Clock()
    me = Identity("pi", clock)
    assert not me.may_speak()  # not connected yet
    me.connected()
    clock.now += SETTLE_S / 2
    assert not me.may_speak()
    clock.now += SETTLE_S
    assert me.may_speak() and me.speaking and not me.may_speak()  # once per connection
    me.connected()
    assert not me.speaking


def test_a_retained_online_of_another_session_holds_the_agent_back_until_its_heartbeat_would_have_come():
    clock = Clock()
    me = Identity("pi", clock)
    me.connected()
    note = me.heard(status("a" * 16, heartbeat_s=5.0), retained=True)
    assert note and "listening for it before taking jobs" in note
    clock.now += SETTLE_S + 10.0
    assert not me.may_speak()  # 3 heartbeats of 5 s not over yet
    clock.now += 5.0
    assert me.may_speak() and me.duplicate is None  # nobody answered: a stale status of a dead process
    other = Identity("pi", clock)
    other.connected()
    other.heard(status("b" * 16, heartbeat_s=3600.0), retained=True)
    clock.now += PROBATION_MAX_S - 1
    assert not other.may_speak()
    clock.now += 2
    assert other.may_speak()  # the wait is capped


def test_a_newcomer_that_hears_the_other_agent_live_stops_and_the_other_stays():
    clock = Clock()
    old, new = Identity("pi", clock), Identity("pi", clock)
    old.connected()
    clock.now += 100.0
    assert old.may_speak()
    new.connected()
    assert new.heard(status(old.session, uptime_s=old.uptime_s), retained=False) is None
    assert new.duplicate and "already used by another agent" in new.duplicate and "own device_id" in new.duplicate
    assert old.duplicate is None


def test_two_speaking_agents_the_shorter_uptime_stops_and_a_tie_goes_by_session():
    clock = Clock()
    first = Identity("pi", clock)
    clock.now += 60.0
    second = Identity("pi", clock)
    for agent in (first, second):
        agent.connected()
    clock.now += SETTLE_S
    assert first.may_speak() and second.may_speak()
    note = first.heard(status(second.session, uptime_s=second.uptime_s), retained=False)
    assert "it is the newer one and stops itself" in note and first.duplicate is None
    assert first.heard(status(second.session, uptime_s=second.uptime_s), retained=False) is None  # said once
    second.heard(status(first.session, uptime_s=first.uptime_s), retained=False)
    assert second.duplicate is not None
    a, b = Identity("pi", clock), Identity("pi", clock)  # started together
    for agent in (a, b):
        agent.connected()
    clock.now += SETTLE_S
    a.may_speak(), b.may_speak()
    a.heard(status(b.session, uptime_s=b.uptime_s), retained=False)
    b.heard(status(a.session, uptime_s=a.uptime_s), retained=False)
    assert (a.duplicate is None) != (b.duplicate is None)  # exactly one stops
    assert (a.duplicate is not None) == (a.session > b.session)


def test_its_own_echo_and_offline_statuses_change_nothing():
    clock = Clock()
    me = Identity("pi", clock)
    me.connected()
    assert me.heard(status(me.session), retained=False) is None
    assert me.heard(status("c" * 16, state="offline"), retained=False) is None
    assert me.heard(status("c" * 16, state="offline"), retained=True) is None
    clock.now += SETTLE_S
    assert me.may_speak() and me.duplicate is None
