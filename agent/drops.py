"""Messages dropped for breaking the contract: counted, and logged once per device and reason.

A broker can deliver the same junk thousands of times a second (a retained message, a flooding
client); logging each one would bury the log and slow the loop that must keep up. So each
(device, reason) is logged when first seen and then at most once per interval with how many
came since, and the number of distinct reasons kept is bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_REASONS = 1024


@dataclass
class DropLog:
    """Counts drops in total and per reason; logs rate-limited warnings on ``log``."""

    log: logging.Logger
    interval_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    total: int = 0
    by_reason: dict[tuple[str, str], int] = field(default_factory=dict)
    _last_logged: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)

    def drop(self, device: str, reason: str, where: str) -> None:
        """Count one dropped message from ``device`` (or "?") received on ``where`` and say why, rate-limited."""
        self.total += 1
        key = (device[:64], reason[:300])
        if key not in self.by_reason and len(self.by_reason) >= MAX_REASONS:
            key = ("*", "other devices and reasons")  # junk can invent device ids without end: one bucket, not one each
        self.by_reason[key] = self.by_reason.get(key, 0) + 1
        now, count = self.clock(), self.by_reason[key]
        last = self._last_logged.get(key)
        if last is None:
            self.log.warning("dropped a message on %s: %s", where[:200], reason)
        elif now - last[0] >= self.interval_s:
            self.log.warning("dropped %d more message(s) from %s in %.0f s: %s", count - last[1], device[:64], now - last[0],
                             reason)
        else:
            return
        self._last_logged[key] = (now, count)
