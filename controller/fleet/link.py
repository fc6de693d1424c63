"""Whether the broker is passing the controller's messages, as the controller can see it.

A device is called silent when its heartbeat is overdue, and its job is re-planned. But when
the broker itself stalls (a frozen process, a full disk, a stopped VM) every device falls silent
at once and none of them is at fault: re-planning their jobs would run the work twice. So the
controller counts a device's silence only up to the last moment it saw the broker working. It
publishes an empty QoS 1 probe once a second on a topic nobody subscribes to
(``Topics.probe``); the broker's PUBACK says it was processing messages when the probe left,
and everything it had for us by then arrived first.

The same clock notices when the controller itself was paused (SIGSTOP, a suspended laptop, a
starved machine): the broker may have dropped what it queued for us meanwhile, so the
controller announces itself again and every agent re-sends its state and unacknowledged results.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("edgeperf.controller")

PROBE_EVERY_S = 1.0
PAUSED_AFTER_S = 5.0  # a gap this long between two turns of the controller's loop: it was paused or starved
MAX_IN_FLIGHT = 64  # probes tracked while the broker does not answer; older ones are forgotten


class Link:
    """The controller's probe of its broker, and its own pauses; ``tick`` runs on every turn of its loop."""

    def __init__(self, conn: Any, topic: str, announce: Callable[[], object]) -> None:
        self.conn, self.topic, self.announce = conn, topic, announce
        self.confirmed_at = float("-inf")  # monotonic send time of the newest probe the broker acknowledged
        self.pauses = 0
        self._in_flight: deque[tuple[float, Any]] = deque(maxlen=MAX_IN_FLIGHT)
        self._last_sent = self._last_tick = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._last_tick > PAUSED_AFTER_S:
            self.pauses += 1
            log.warning("this controller did not run for %.0f s (paused or starved): asking every device to report again",
                        now - self._last_tick)
            self.announce()
        self._last_tick = now
        acked = [sent for sent, info in self._in_flight if info.is_published()]
        if acked:
            self.confirmed_at = max(self.confirmed_at, *acked)
            self._in_flight = deque(((s, i) for s, i in self._in_flight if not i.is_published()), maxlen=MAX_IN_FLIGHT)
        if now - self._last_sent >= PROBE_EVERY_S and self.conn.connected.is_set():
            self._in_flight.append((now, self.conn.publish(self.topic, b"", qos=1)))
            self._last_sent = now
