"""A wall-clock step during a run, seen by comparing the wall clock with the monotonic clock.

LoadGen times its queries with ``std::chrono::high_resolution_clock``, which libstdc++ defines as
the wall clock (``system_clock``). An NTP step or a manual ``date -s`` while LoadGen runs therefore
moves its latencies and durations by the size of the step: 2 h ahead, the run ends at once with
a two-hour query; 2 h behind, it waits two hours for its minimum duration. Measured with the
fault suite (libfaketime under the agent): both happen. So the agent watches the two clocks while
a job runs and stops the job as soon as they part, naming the step; the job runs again on the
controller's retry with a steady clock. A slow NTP slew (parts per million) never trips it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

STEP_TOLERANCE_S = 1.0
CHECK_EVERY_S = 0.5


class ClockWatch(threading.Thread):
    """Calls ``on_step(seconds)`` once if the wall clock moves against the monotonic clock by more than
    ``STEP_TOLERANCE_S`` before ``stop``."""

    def __init__(self, on_step: Callable[[float], None]) -> None:
        super().__init__(name="clock-watch", daemon=True)
        self.on_step = on_step
        self._stop = threading.Event()
        self._offset = time.time() - time.monotonic()

    def run(self) -> None:
        while not self._stop.wait(CHECK_EVERY_S):
            step = time.time() - time.monotonic() - self._offset
            if abs(step) > STEP_TOLERANCE_S:
                self.on_step(step)
                return

    def stop(self) -> None:
        self._stop.set()


def step_reason(step_s: float) -> str:
    """The failure a job reports when the wall clock stepped under it."""
    return (f"the device's wall clock stepped {step_s:+.0f} s during the run (NTP or a manual change); LoadGen times "
            "with the wall clock, so the run was stopped and runs again")
