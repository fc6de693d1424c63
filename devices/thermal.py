"""Temperatures, throttling and cooldown: the context that decides whether two runs compare.

A Pi that throttled halfway through a 600 s run, or a Jetson that started hot from the previous
job, produces numbers that look fine and are not. So every run records temperatures before and
after, whether throttling was seen (the Pi firmware's ``get_throttled`` bits, and CPU
frequencies below their maximum under the ``performance`` governor), and how long it waited to
cool down first. Everything reads sysfs/procfs under ``root`` or fixed tool invocations, and
fails soft: a missing sensor leaves a key out, it never stops a run.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.probe import collect_thermal, read_first_line, run_tool

# vcgencmd get_throttled bits (Raspberry Pi firmware documentation)
PI_THROTTLE_BITS = {
    0: "under-voltage now", 1: "ARM frequency capped now", 2: "throttled now", 3: "soft temperature limit now",
    16: "under-voltage occurred", 17: "ARM frequency capping occurred", 18: "throttling occurred",
    19: "soft temperature limit occurred",
}


def temperatures(root: Path = Path("/")) -> dict[str, float]:
    """°C per thermal zone type (``cpu-thermal``, ``gpu-thermal``, ...)."""
    facts: dict[str, Any] = {}
    collect_thermal(facts, root)
    return facts.get("temperatures_c", {})


def hottest(root: Path = Path("/")) -> float | None:
    temps = temperatures(root)
    return max(temps.values()) if temps else None


def pi_throttled() -> int | None:
    """The Pi firmware's throttle bit mask (``vcgencmd get_throttled``), or None off a Pi."""
    match = re.search(r"throttled=(0x[0-9a-fA-F]+)", run_tool("vcgencmd", "get_throttled"))
    return int(match.group(1), 16) if match else None


def decode_throttled(mask: int) -> list[str]:
    return [text for bit, text in PI_THROTTLE_BITS.items() if mask & (1 << bit)]


def cpu_frequencies_mhz(root: Path = Path("/")) -> dict[str, tuple[int, int, str]]:
    """Per cpufreq policy: (current MHz, maximum MHz, governor)."""
    out = {}
    base = root / "sys/devices/system/cpu/cpufreq"
    for policy in sorted(base.glob("policy*")) if base.is_dir() else []:
        cur, top = read_first_line(policy / "scaling_cur_freq"), read_first_line(policy / "scaling_max_freq")
        if cur.isdigit() and top.isdigit():
            out[policy.name] = (int(cur) // 1000, int(top) // 1000, read_first_line(policy / "scaling_governor"))
    return out


@dataclass
class FrequencyWatch:
    """Samples CPU frequencies during a run (2 Hz) to catch drops under the performance governor."""

    root: Path = Path("/")
    interval_s: float = 0.5
    lowest: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> None:
        for policy, (cur, top, governor) in cpu_frequencies_mhz(self.root).items():
            if policy not in self.lowest or cur < self.lowest[policy][0]:
                self.lowest[policy] = (cur, top, governor)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> None:
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="cpufreq-watch", daemon=True)
        self._thread.start()

    def stop(self) -> list[str]:
        """Reasons to suspect throttling: frequencies that fell below max under ``performance``."""
        self._stop.set()
        if self._thread:
            self._thread.join(2)
        self._sample()
        return [f"{policy} ran at {cur} MHz, below its {top} MHz maximum, under the performance governor"
                for policy, (cur, top, governor) in self.lowest.items() if governor == "performance" and cur < 0.95 * top]


def cooldown(target_c: float, timeout_s: float, root: Path = Path("/"), poll_s: float = 1.0,
             sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Wait until the hottest zone is at or below ``target_c``, or ``timeout_s`` has passed."""
    start, first = time.monotonic(), hottest(root)
    now_c = first
    while now_c is not None and now_c > target_c and time.monotonic() - start < timeout_s:
        sleep(poll_s)
        now_c = hottest(root)
    return {"target_c": target_c, "timeout_s": timeout_s, "waited_s": round(time.monotonic() - start, 2), "start_c": first,
            "end_c": now_c, "reached": now_c is not None and now_c <= target_c}


class ThermalRecord:
    """Before/after temperatures and throttling around one run."""

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = root
        self.before: dict[str, float] = {}
        self.pi_mask_before: int | None = None
        self.watch = FrequencyWatch(root)

    def start(self) -> None:
        self.before = temperatures(self.root)
        self.pi_mask_before = pi_throttled() if self.root == Path("/") else None
        self.watch.start()

    def finish(self, cooldown_result: dict[str, Any] | None = None) -> dict[str, Any]:
        reasons = self.watch.stop()
        after = temperatures(self.root)
        pi_after = pi_throttled() if self.root == Path("/") else None
        if pi_after is not None:
            now = {r for r in decode_throttled(pi_after) if r.endswith("now")}
            new_sticky = set(decode_throttled(pi_after)) - set(decode_throttled(self.pi_mask_before or 0))
            reasons += sorted(now | new_sticky)
        return {
            "before_c": self.before, "after_c": after,
            "max_before_c": max(self.before.values(), default=None), "max_after_c": max(after.values(), default=None),
            "throttled": bool(reasons), "throttle_reasons": reasons,
            "pi_throttled": None if pi_after is None else hex(pi_after),
            "cooldown": cooldown_result,
        }
