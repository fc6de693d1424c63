"""Memory and CPU use of the benchmark process, read from the OS (no sampling thread).

A polling thread would steal a core from a Pi's four while it measures them, so peak RSS comes
from the kernel's own high-water mark (``getrusage``) and CPU use from CPU-time counters read
before and after the measured window.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import psutil

MB = 1 << 20


def peak_rss_mb() -> float:
    """The process's peak resident set since it started, in MB (2^20 bytes)."""
    if sys.platform == "win32":
        return psutil.Process().memory_info().peak_wset / MB
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak * 1024 / MB  # macOS: bytes, Linux: KiB


def rss_mb() -> float:
    """The process's resident set now, in MB."""
    return psutil.Process().memory_info().rss / MB


@dataclass
class CpuWindow:
    """CPU use between ``start()`` and ``stop()``: of this process and of the whole machine."""

    process_pct: float = 0.0
    system_pct: float = 0.0
    _cpu0: float = 0.0
    _wall0: float = 0.0

    def start(self) -> None:
        times = psutil.Process().cpu_times()
        self._cpu0, self._wall0 = times.user + times.system, time.perf_counter()
        psutil.cpu_percent(interval=None)  # resets the system-wide counter

    def stop(self) -> None:
        times = psutil.Process().cpu_times()
        wall = time.perf_counter() - self._wall0
        self.process_pct = 100.0 * (times.user + times.system - self._cpu0) / wall if wall > 0 else 0.0
        self.system_pct = psutil.cpu_percent(interval=None)
