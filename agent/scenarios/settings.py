"""One settings object per run, built from a profile, with units in every name.

The stopping rule is LoadGen's: run until both minimums (duration and query count) are met, or
stop at either maximum (0 = no maximum). Profiles are the run lengths users pick by name
(docs/engines.md, "Profiles"); where a profile's query count is below what early stopping needs to give a verdict,
it is raised to that minimum, because a profile that can never be VALID helps nobody.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any

from agent.errors import SettingsError
from agent.scenarios import PROFILES, early_stopping


class Scenario(str, Enum):
    SINGLE_STREAM = "SingleStream"
    MULTI_STREAM = "MultiStream"
    SERVER = "Server"
    OFFLINE = "Offline"


class Mode(str, Enum):
    """``robustness`` is an accuracy run (LoadGen's AccuracyOnly over the clean samples) followed by
    the same samples under each corruption, scored without timing (``agent.robustness``)."""

    PERFORMANCE = "performance"
    ACCURACY = "accuracy"
    ROBUSTNESS = "robustness"

    @property
    def scored(self) -> bool:
        """Outputs are kept and scored, nothing is timed: LoadGen's AccuracyOnly."""
        return self is not Mode.PERFORMANCE


__all__ = ["PROFILES", "Mode", "RunSettings", "Scenario", "for_profile", "parse_mode", "parse_scenario", "with_overrides"]
# LoadGen's mlperf.conf seeds (loadgen/mlperf.conf, 6.0.17)
MLPERF_SCHEDULE_SEED = 16159082839903944936
MLPERF_SAMPLE_INDEX_SEED = 2747215439041700203


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides how a scenario is driven and judged."""

    scenario: Scenario = Scenario.SINGLE_STREAM
    mode: Mode = Mode.PERFORMANCE
    profile: str = "smoke"
    min_duration_ms: int = 1_000  # run until BOTH minimums are met ...
    min_query_count: int = 64
    max_duration_ms: int = 0  # ... or either maximum is hit; 0 = no maximum
    max_query_count: int = 0
    samples_per_query: int = 1  # MultiStream: 8; Offline: the whole query (set by effective())
    target_latency_percentile: float = 0.90
    server_target_qps: float = 0.0  # 0: not given; the highest passing rate is searched (server_search)
    server_target_latency_ms: float = 0.0  # 0: not given; derived from the model's SingleStream p99 (server_search)
    offline_min_sample_count: int = 512
    expected_latency_ns: int = 1_000_000  # per sample, from calibration; sizes LoadGen's query pool
    offline_expected_qps: float = 0.0  # 0: offline_min_sample_count decides the query size alone
    batch_size: int = 1  # samples per runtime call where the model's batch dimension is free
    schedule_seed: int = MLPERF_SCHEDULE_SEED
    sample_index_seed: int = MLPERF_SAMPLE_INDEX_SEED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"scenario": self.scenario.value, "mode": self.mode.value}


def parse_scenario(name: str) -> Scenario:
    for s in Scenario:
        if name.lower().replace("-", "").replace("_", "") == s.value.lower():
            return s
    raise SettingsError(f"unknown scenario {name!r}; use one of: {', '.join(s.value for s in Scenario)}")


def parse_mode(name: str) -> Mode:
    try:
        return Mode(name.lower())
    except ValueError:
        raise SettingsError(f"unknown mode {name!r}; use performance, accuracy or robustness") from None


def _percentile(scenario: Scenario) -> float:
    return 0.99 if scenario in (Scenario.MULTI_STREAM, Scenario.SERVER) else 0.90


def for_profile(profile: str, scenario: Scenario, mode: Mode = Mode.PERFORMANCE) -> RunSettings:
    """The settings a named profile gives ``scenario`` (the table in docs/engines.md)."""
    if profile not in PROFILES:
        raise SettingsError(f"unknown profile {profile!r}; use one of: {', '.join(PROFILES)}")
    p = _percentile(scenario)
    # Fewest queries that let early stopping pass: h(1)+1 for the stream scenarios, h(0) for Server.
    floor = early_stopping.min_queries(p) if scenario != Scenario.SERVER else early_stopping.min_passing_h(0, p)
    base = RunSettings(
        scenario=scenario, mode=mode, profile=profile, target_latency_percentile=p,
        samples_per_query=8 if scenario == Scenario.MULTI_STREAM else 1,
    )
    offline = scenario == Scenario.OFFLINE
    if profile == "smoke":
        return replace(base, min_duration_ms=1_000, min_query_count=1 if offline else floor, offline_min_sample_count=512)
    if profile == "mlperf":  # the mlperf.conf edge values (loadgen/mlperf.conf 6.0.17)
        counts = {Scenario.SINGLE_STREAM: 100, Scenario.MULTI_STREAM: 662, Scenario.SERVER: 100, Scenario.OFFLINE: 1}
        return replace(base, min_duration_ms=600_000, min_query_count=counts[scenario], offline_min_sample_count=24576)
    # quick / standard follow MLPerf Mobile's "quick" / "normal": Offline is a sample count only.
    queries, min_ms, max_ms, samples = (128, 10_000, 60_000, 2457) if profile == "quick" else (1024, 60_000, 600_000, 24576)
    if offline:
        return replace(base, min_duration_ms=0, min_query_count=1, offline_min_sample_count=samples)
    return replace(base, min_duration_ms=min_ms, max_duration_ms=max_ms, min_query_count=max(queries, floor))


def with_overrides(settings: RunSettings, **overrides: Any) -> RunSettings:
    """Apply user overrides that are not None, checking the ones that can be wrong."""
    chosen = {k: v for k, v in overrides.items() if v is not None}
    out = replace(settings, **chosen)
    if out.max_duration_ms and out.max_duration_ms < out.min_duration_ms:
        raise SettingsError(
            f"--max-duration ({out.max_duration_ms} ms) is below the profile's minimum ({out.min_duration_ms} ms)"
        )
    if out.batch_size < 1 or out.min_query_count < 1:
        raise SettingsError("--batch-size and --min-queries must be at least 1")
    if out.server_target_qps < 0 or out.server_target_latency_ms < 0:  # 0 is "not given": searched / derived
        raise SettingsError("--target-qps and --target-latency-ms must be above 0 (leave them out to search / derive them)")
    return out
