"""How many runtime threads a run may use, and what "default" means: one rule for every runtime.

Its own module, without numpy or a runtime, because the idle agent checks its ``threads``
setting at start-up and must stay light (tests/test_layering.py).
"""

from __future__ import annotations

import os

from agent.errors import SettingsError

THREADS_PER_CPU = 4  # the most runtime threads per CPU this process may use


def max_threads() -> int:
    """The thread cap here: past a few threads per CPU a run times the scheduler rather than the
    model, and a runtime asked for 100,000 threads dies creating them (a segfault)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return THREADS_PER_CPU * cpus


def check_threads(threads: int | None, name: str = "threads") -> None:
    """Refuse a thread count this machine cannot sensibly run, before anything is loaded."""
    if threads is not None and threads > max_threads():
        raise SettingsError(f"{name} {threads} is more than {THREADS_PER_CPU} per CPU here ({max_threads()} for "
                            f"{max_threads() // THREADS_PER_CPU} CPUs); give at most {max_threads()}, or leave it unset")


def default_threads() -> int:
    """What "threads: default" means for every runtime: one per CPU this process may use (ONNX
    Runtime's own default, where LiteRT's is 1), so runtimes compare at the same parallelism and a
    result records the number (docs/engines.md, "Threads")."""
    return max_threads() // THREADS_PER_CPU
