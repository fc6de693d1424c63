"""Two agents under one device id: who speaks when, and which one stops (``agent.identity``).

Pure decisions on a controlled clock; the end-to-end case with two agent processes is in
``tests/test_fleet_faults.py``.
"""

from __future__ import annotations

from agent.contract import Status
from agent.identity import PROBATION_MAX_S, SETTLE_S, TAKEOVER_WAIT_S, Identity


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
    note = me.heard(status("a" * 16, heartbeat_s=5.0), retained=True, sent_at=clock.now)
    assert note and "listening for it before taking jobs" in note
    clock.now += SETTLE_S + 10.0
    assert not me.may_speak()  # 3 heartbeats of 5 s not over yet
    clock.now += 5.0
    assert me.may_speak() and me.duplicate is None  # nobody answered: a stale status of a dead process
    other = Identity("pi", clock)
    other.connected()
    other.heard(status("b" * 16, heartbeat_s=3600.0), retained=True, sent_at=clock.now)
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
    assert new.heard(status(old.session, uptime_s=old.uptime_s), retained=False, sent_at=clock.now) is None
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
    note = first.heard(status(second.session, uptime_s=second.uptime_s), retained=False, sent_at=clock.now)
    assert "it is the newer one and stops itself" in note and first.duplicate is None
    assert first.heard(status(second.session, uptime_s=second.uptime_s), retained=False, sent_at=clock.now) is None  # said once
    second.heard(status(first.session, uptime_s=first.uptime_s), retained=False, sent_at=clock.now)
    assert second.duplicate is not None
    a, b = Identity("pi", clock), Identity("pi", clock)  # started together
    for agent in (a, b):
        agent.connected()
    clock.now += SETTLE_S
    a.may_speak(), b.may_speak()
    a.heard(status(b.session, uptime_s=b.uptime_s), retained=False, sent_at=clock.now)
    b.heard(status(a.session, uptime_s=a.uptime_s), retained=False, sent_at=clock.now)
    assert (a.duplicate is None) != (b.duplicate is None)  # exactly one stops
    assert (a.duplicate is not None) == (a.session > b.session)


def test_its_own_echo_and_offline_statuses_change_nothing():
    clock = Clock()
    me = Identity("pi", clock)
    me.connected()
    assert me.heard(status(me.session), retained=False, sent_at=clock.now) is None
    assert me.heard(status("c" * 16, state="offline"), retained=False, sent_at=clock.now) is None
    clock.now += SETTLE_S
    assert me.may_speak() and me.duplicate is None


# A broker that gives every device its certificate's name as client id (edgeperf broker config): two agents
# sharing a certificate push each other off, and each sees only the other's will, retained, after connecting.

def will_of(agent: Identity) -> Status:
    """The last will an agent sets at start: offline, its session, its uptime then (0), sent at its start."""
    return status(agent.session, state="offline", uptime_s=0.0)


def test_the_same_will_back_at_a_later_connect_proves_a_clone_and_the_silent_newcomer_stops():
    clock = Clock()
    first = Identity("pi", clock, wall=clock)
    first_started = clock.now
    first.connected()
    clock.now += SETTLE_S
    assert first.may_speak()
    clock.now += 600.0
    clone = Identity("pi", clock, wall=clock)
    clone.connected()  # pushes the first off: the broker publishes the first's will
    assert clone.heard(will_of(first), retained=True, sent_at=first_started) is None
    clock.now += SETTLE_S
    assert not clone.may_speak()  # another session's will at its first connect: it waits for a pushed-off agent
    clock.now += 1.0  # the first reconnects and pushes the clone off; the clone reconnects and pushes back
    first.connected()
    assert first.heard(will_of(clone), retained=True, sent_at=clock.now - 1.5) is None and first.duplicate is None
    clone.connected()
    assert clone.heard(will_of(first), retained=True, sent_at=first_started) is None
    assert clone.duplicate and "already used by another agent (session" in clone.duplicate and "up 602 s" in clone.duplicate
    clock.now += SETTLE_S
    assert first.may_speak() and first.duplicate is None  # the first speaks again at once: it is no newcomer


def test_a_will_seen_once_or_another_will_proves_nothing():
    """A restarted agent sees its earlier run's will once (it waits a little, then speaks); losing its own
    connection puts its own will on the topic, so a will seen at the next connect is a new one."""
    clock = Clock()
    me = Identity("pi", clock, wall=clock)
    earlier_run = status("e" * 16, state="offline")
    me.connected()
    me.heard(earlier_run, retained=True, sent_at=clock.now - 50)
    clock.now += SETTLE_S
    assert not me.may_speak()
    clock.now += TAKEOVER_WAIT_S
    assert me.may_speak() and me.duplicate is None
    me.connected()  # a network blip: its own will is what it finds
    assert me.heard(status(me.session, state="offline"), retained=True, sent_at=clock.now - 60) is None
    me.connected()
    me.heard(status("f" * 16, state="offline"), retained=True, sent_at=clock.now)  # another will, first seen
    me.heard(earlier_run, retained=False, sent_at=clock.now - 50)  # a will delivered live is no proof either
    clock.now += SETTLE_S
    assert me.may_speak() and me.duplicate is None  # and no waiting after the first connect


def test_two_clones_that_both_spoke_agree_on_which_one_stops_by_the_start_times_in_their_wills():
    """Their clocks may differ; each compares its own start with the other's start by the other's clock
    (the will's timestamp less its uptime), so both compare the same two numbers."""
    clock = Clock()
    older, newer = Identity("pi", clock, wall=clock), Identity("pi", clock, wall=lambda: clock.now + 30.0)  # 30 s ahead
    older_started = clock.now
    clock.now += 100.0
    newer_started_by_its_clock = clock.now + 30.0
    for agent in (older, newer):
        agent.connected()
    clock.now += TAKEOVER_WAIT_S + SETTLE_S
    assert older.may_speak() and newer.may_speak()  # nobody pushed either off in time: both spoke
    for _ in range(2):  # each pushes the other off twice: the same will comes back
        for agent in (older, newer):
            agent.connected()
        older.heard(will_of(newer), retained=True, sent_at=newer_started_by_its_clock)
        newer.heard(will_of(older), retained=True, sent_at=older_started)
    assert newer.duplicate is not None and older.duplicate is None


def test_an_agent_that_has_spoken_is_no_newcomer_after_a_reconnect():
    """Reconnecting makes an agent silent for a moment, not new: a live status it hears then is compared by uptime."""
    clock = Clock()
    old = Identity("pi", clock)
    old.connected()
    clock.now += SETTLE_S
    assert old.may_speak()
    clock.now += 300.0
    old.connected()
    old.heard(status("d" * 16, uptime_s=10.0), retained=False, sent_at=clock.now)
    assert old.duplicate is None
