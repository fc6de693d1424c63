"""What the emulated phone's two benchmark tools (``phone_benchmark_model``, ``phone_perf_test``)
share: how their C++ prints a double, the fuel gauge's load while they run, and the peak memory
they report.

Why a module: both tools print through ``std::ostream``, hold the battery busy while the model runs
and report the process's ``ru_maxrss``; one definition keeps the two alike.
"""

from __future__ import annotations

import contextlib
import math
import resource
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devices.emulators.phone_battery import PhoneBattery

__all__ = ["busy", "maxrss_kb", "ostream_g"]


def ostream_g(value: float) -> str:
    """A double as ``std::ostream`` prints it by default (``%g``, 6 significant digits)."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return format(value, "g")


def busy(battery: PhoneBattery | None) -> contextlib.AbstractContextManager:
    return battery.busy() if battery is not None else contextlib.nullcontext()


def maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
