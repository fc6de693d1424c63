"""Scenarios under LoadGen's rules, run by the official LoadGen or by the native engine.

``auto`` picks LoadGen where ``mlperf_loadgen`` imports and the native engine elsewhere, or where
LoadGen's pre-generated queries would take more than ``POOL_MEMORY_SHARE`` of the memory available
(``fit_to_memory``: a fast model on a 1 GB board). A
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
POOL_MEMORY_SHARE = 0.25  # of the memory available when the run starts


def choose_engine(requested: str) -> str:
    """The engine that will run: ``loadgen``/``native`` as asked, or ``auto``'s choice."""
    if requested not in ENGINES:
        raise SettingsError(f"unknown engine {requested!r}; use one of: {', '.join(ENGINES)}")
    if requested == "auto":
        from agent.scenarios import loadgen

        return "loadgen" if loadgen.available() else "native"
    return requested


def fit_to_memory(requested: str, engine: str, settings: RunSettings, available_bytes: int | None = None) -> tuple[str, str]:
    """``auto``'s second look, once the warm-up has sized the run, and the rule it followed (the
    result's ``logs.engine_rule``). LoadGen pre-generates a SingleStream/MultiStream run's queries
    before it starts (``loadgen.pool_bytes``: a quick run of a 69 µs model, ~160 MB); the native
    engine issues them as it goes. Where they would take more than ``POOL_MEMORY_SHARE`` of the
    memory available now, ``auto`` runs native and says why; an engine asked for by name runs."""
    if requested != "auto":
        return engine, "given"
    if engine != "loadgen":
        return engine, "auto: LoadGen (mlperf-loadgen) is not installed"
    import psutil

    from agent.scenarios import loadgen

    need = loadgen.pool_bytes(settings)
    available = psutil.virtual_memory().available if available_bytes is None else available_bytes
    if need > POOL_MEMORY_SHARE * available:
        return "native", (f"auto: native, as LoadGen would pre-generate {need / 2**20:,.0f} MB of queries, over "
                          f"{POOL_MEMORY_SHARE:.0%} of the {available / 2**20:,.0f} MB available")
    return engine, "auto: LoadGen is installed"


def run(engine: str, sut: SystemUnderTest, settings: RunSettings, log_dir: Path) -> Outcome:
    """Run one scenario with a concrete engine (see ``choose_engine``)."""
    from agent.scenarios import loadgen, native

    if engine == "loadgen":
        return loadgen.run(sut, settings, log_dir)
    return native.run(sut, settings)
