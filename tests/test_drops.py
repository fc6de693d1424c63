"""Dropped messages are counted, logged once per device and reason, and kept in bounded memory."""

from __future__ import annotations

import logging

from agent.drops import MAX_REASONS, DropLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_junk_from_endless_invented_devices_is_counted_in_bounded_memory(caplog):
    drops = DropLog(logging.getLogger("test.drops"), interval_s=60.0, clock=Clock())
    with caplog.at_level(logging.WARNING, "test.drops"):
        for i in range(3 * MAX_REASONS):
            drops.drop(f"junk-{i}", "not signed with this fleet's key", "t")
    assert drops.total == 3 * MAX_REASONS
    assert len(drops.by_reason) == MAX_REASONS + 1 and len(drops._last_logged) == MAX_REASONS + 1
    assert drops.by_reason[("*", "other devices and reasons")] == 2 * MAX_REASONS
    assert len(caplog.records) == MAX_REASONS + 1  # one line per kept key, not one per message


def test_a_repeated_drop_is_logged_again_only_after_the_interval_with_its_count(caplog):
    clock = Clock()
    drops = DropLog(logging.getLogger("test.drops"), interval_s=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, "test.drops"):
        for _ in range(100):
            drops.drop("pi-a", "bad envelope", "t")
        clock.now = 61.0
        drops.drop("pi-a", "bad envelope", "t")
    assert [r.getMessage() for r in caplog.records] == [
        "dropped a message on t: bad envelope", "dropped 100 more message(s) from pi-a in 61 s: bad envelope"]
