"""Scenarios under LoadGen's rules, run by the official LoadGen or by the native engine.

``auto`` picks LoadGen where ``mlperf_loadgen`` imports and the native engine elsewhere. A
``--max-duration`` that must end the run on time is honoured exactly only by the native engine
(official LoadGen checks it per query and then judges the query minimum as unmet).

Importing this package is cheap (no numpy, no LoadGen): the idle agent daemon needs only the
names below; the engines are imported when a run starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import SettingsError

if TYPE_CHECKING:
    from agent.scenarios.outcome import Outcome
    from agent.scenarios.settings import RunSettings
    from agent.scenarios.sut import SystemUnderTest

ENGINES = ("auto", "loadgen", "native")
PROFILES = ("smoke", "quick", "standard", "mlperf")


def choose_engine(requested: str) -> str:
    """The engine that will run: ``loadgen``/``native`` as asked, or ``auto``'s choice."""
    if requested not in ENGINES:
        raise SettingsError(f"unknown engine {requested!r}; use one of: {', '.join(ENGINES)}")
    if requested == "auto":
        from agent.scenarios import loadgen

        return "loadgen" if loadgen.available() else "native"
    return requested


def run(engine: str, sut: SystemUnderTest, settings: RunSettings, log_dir: Path) -> Outcome:
    """Run one scenario with a concrete engine (see ``choose_engine``)."""
    from agent.scenarios import loadgen, native

    if engine == "loadgen":
        return loadgen.run(sut, settings, log_dir)
    return native.run(sut, settings)
