"""The agent's watch for wall-clock steps, under libfaketime: the wall clock steps, monotonic does not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import faketime

WATCH = """
import sys, threading, time
from agent.clock_watch import ClockWatch, step_reason
seen = threading.Event()
watch = ClockWatch(lambda step: (print(step_reason(step), flush=True), seen.set()))
watch.start()
time.sleep(0.6)
open(sys.argv[1], "w").write(sys.argv[2] + "\\n")
print("stepped" if seen.wait(3) else "no step seen", flush=True)
"""


@pytest.mark.parametrize(("offset", "said"), [("+2h", "stepped +7200 s"), ("-2h", "stepped -7200 s"), ("+0.3", None)])
def test_a_wall_clock_step_is_seen_and_named_and_a_small_correction_is_not(tmp_path, tmp_path_factory, offset, said):
    clock = tmp_path / "clock"
    clock.write_text("+0\n")
    env = os.environ | faketime.stepped_clock(clock, tmp_path_factory.getbasetemp())
    out = subprocess.run([sys.executable, "-c", WATCH, str(clock), offset], env=env, capture_output=True, text=True,
                         timeout=60).stdout
    if said:
        assert f"the device's wall clock {said} during the run" in out and out.rstrip().endswith("stepped"), out
    else:
        assert out.strip() == "no step seen", out
