"""Run-length profiles give the numbers docs/engines.md states, and overrides are checked."""

from __future__ import annotations

import pytest

from agent.errors import SettingsError
from agent.scenarios.settings import Scenario, for_profile, parse_mode, parse_scenario, with_overrides

SS, MS, SERVER, OFFLINE = Scenario.SINGLE_STREAM, Scenario.MULTI_STREAM, Scenario.SERVER, Scenario.OFFLINE


def test_smoke_uses_the_early_stopping_minimums():
    assert (for_profile("smoke", SS).min_query_count, for_profile("smoke", SS).min_duration_ms) == (64, 1000)
    assert for_profile("smoke", MS).min_query_count == 662
    assert for_profile("smoke", SERVER).min_query_count == 459  # h(0) at p99
    offline = for_profile("smoke", OFFLINE)
    assert (offline.offline_min_sample_count, offline.min_duration_ms) == (512, 1000)


def test_quick_and_standard_follow_mlperf_mobile():
    quick, standard = for_profile("quick", SS), for_profile("standard", SS)
    assert (quick.min_query_count, quick.min_duration_ms, quick.max_duration_ms) == (128, 10_000, 60_000)
    assert (standard.min_query_count, standard.min_duration_ms, standard.max_duration_ms) == (1024, 60_000, 600_000)
    assert for_profile("quick", OFFLINE).offline_min_sample_count == 2457
    assert for_profile("standard", OFFLINE).offline_min_sample_count == 24576
    assert for_profile("quick", MS).min_query_count == 662  # 128 could never pass p99 early stopping


def test_mlperf_profile_is_mlperf_conf():
    assert for_profile("mlperf", SS).min_duration_ms == 600_000
    assert for_profile("mlperf", MS).min_query_count == 662
    assert for_profile("mlperf", MS).samples_per_query == 8
    assert for_profile("mlperf", OFFLINE).offline_min_sample_count == 24576
    assert for_profile("mlperf", SERVER).target_latency_percentile == 0.99
    assert for_profile("mlperf", SS).target_latency_percentile == 0.90


@pytest.mark.parametrize("bad", ["fast", "", "SMOKE"])
def test_unknown_profile_names_the_choices(bad):
    with pytest.raises(SettingsError, match="smoke, quick, standard, mlperf"):
        for_profile(bad, SS)


def test_scenario_and_mode_names_are_forgiving_but_checked():
    assert parse_scenario("single-stream") is SS and parse_scenario("offline") is OFFLINE
    with pytest.raises(SettingsError, match="SingleStream, MultiStream, Server, Offline"):
        parse_scenario("Batch")
    with pytest.raises(SettingsError, match="performance, accuracy or robustness"):
        parse_mode("fast")


def test_overrides_apply_and_contradictions_are_refused():
    s = with_overrides(for_profile("quick", SS), min_query_count=500, max_duration_ms=None)
    assert s.min_query_count == 500 and s.max_duration_ms == 60_000
    with pytest.raises(SettingsError, match="below the profile's minimum"):
        with_overrides(for_profile("quick", SS), max_duration_ms=5_000)
    with pytest.raises(SettingsError, match="at least 1"):
        with_overrides(for_profile("quick", SS), batch_size=0)
