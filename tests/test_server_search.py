"""Server without a given rate: the search finds a passing rate, records its trials, and ends.

Decisions are tested on ``FixedDelaySut`` (2 ms a sample: capacity 500 queries/s) through both
engines, with the smoke profile's query minimum and a 0.3 s minimum duration, so each test takes
seconds. Timings are never asserted: only which rates passed, what was recorded and the verdict.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from agent import cli
from agent.contract import RunLength
from agent.jobs import settings_for
from agent.scenarios import early_stopping, native, server_search
from agent.scenarios.server_search import SingleStream
from agent.scenarios.settings import Scenario, for_profile
from tests.suts import FixedDelaySut

ENGINES = ("native", "loadgen")
DELAY_S = 0.002  # capacity 500 queries/s


def short(**changes) -> object:
    return replace(for_profile("smoke", Scenario.SERVER), min_duration_ms=300, **changes)


@pytest.fixture(scope="module")
def timed() -> SingleStream:
    """The 2 ms SUT timed one sample at a time, once for the module (it takes a second)."""
    return server_search.single_stream(FixedDelaySut(DELAY_S))


def search(engine: str, settings, tmp_path, ss: SingleStream):
    """What ``agent.bench`` does for Server without a rate: set the bound, search, measure."""
    sut = FixedDelaySut(DELAY_S)
    settings, point = server_search.operating_point(settings, ss)
    server_search.find(engine, sut, settings, tmp_path, point)
    return server_search.measure(engine, sut, settings, tmp_path, point), point


@pytest.mark.parametrize("engine", ENGINES)
def test_search_finds_a_valid_rate_below_capacity_and_records_every_trial(engine, tmp_path, timed):
    outcome, point = search(engine, short(), tmp_path, timed)
    assert outcome.valid, (point.to_dict(), outcome.invalid_reasons)
    assert point.latency_bound_rule.startswith("derived") and point.latency_bound_ms >= server_search.BOUND_FLOOR_MS
    assert outcome.settings.server_target_latency_ms == point.latency_bound_ms
    trials = [t for t in point.trials if not t.final]
    finals = [t for t in point.trials if t.final]
    assert 2 <= len(trials) <= server_search.MAX_TRIALS
    assert 0 < point.target_qps == outcome.settings.server_target_qps < 500
    assert finals[-1].valid and finals[-1].target_qps == point.target_qps
    assert all(not t.valid for t in finals[:-1])  # a measured run is repeated only after it failed
    # the search doubled until a trial failed: a failing rate lies above the one chosen
    assert any(not t.valid and t.target_qps > point.target_qps for t in trials)
    for t in point.trials:
        assert t.queries > 0 and t.achieved_qps and t.p99_ms is not None
        assert t.valid or t.reason
    assert (tmp_path / "server-search" / "trial-01").is_dir() == (engine == "loadgen")  # LoadGen's logs kept per trial


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bound_below_the_suts_own_latency_ends_invalid_with_the_reason(engine, tmp_path, timed):
    outcome, point = search(engine, short(server_target_latency_ms=1.0), tmp_path, timed)
    assert not outcome.valid
    assert [t.final for t in point.trials] == [True]  # no trial could help: straight to one measured run
    failed = {c.name: c for c in outcome.checks if not c.ok}
    assert {"latency_bound", "server_search"} <= set(failed)
    assert "1 ms bound" in failed["server_search"].detail and "SingleStream median" in failed["server_search"].detail
    assert "--target-latency-ms" in failed["server_search"].advice


def test_halving_stops_at_the_lowest_rate_when_nothing_passes(tmp_path):
    """A warm-up four times faster than the steady state and a bound between them: every trial fails
    whatever the rate, and the search gives up after halving to an eighth of the estimated capacity."""
    fast = SingleStream(samples=200, median_ns=500_000, p99_ns=600_000)  # 2000 queries/s estimated
    outcome, point = search("native", short(server_target_latency_ms=1.5), tmp_path, fast)
    trials = [t for t in point.trials if not t.final]
    assert [t.target_qps for t in trials] == [1000, 500, 250]
    assert not any(t.valid for t in trials)
    assert not outcome.valid and point.trials[-1].final and point.trials[-1].target_qps == 250
    assert "no rate met the 1.5 ms bound in 3 trials" in point.target_qps_rule


def test_the_derived_bound_is_a_multiple_of_the_p99_with_a_floor():
    slow = SingleStream(samples=100, median_ns=20_000_000, p99_ns=30_000_000)
    fast = SingleStream(samples=9000, median_ns=50_000, p99_ns=90_000)
    settings, point = server_search.operating_point(short(), slow)
    assert settings.server_target_latency_ms == point.latency_bound_ms == server_search.BOUND_P99_MULTIPLE * 30
    assert "SingleStream p99 30.000 ms" in point.latency_bound_rule
    settings, point = server_search.operating_point(short(), fast)
    assert settings.server_target_latency_ms == server_search.BOUND_FLOOR_MS
    settings, point = server_search.operating_point(short(server_target_latency_ms=7.5), fast)
    assert settings.server_target_latency_ms == 7.5 and point.latency_bound_rule == "given"


def test_trials_are_shorter_than_the_profile_but_keep_its_query_minimum():
    """A trial replays the measured run's schedule up to the profile's query minimum, only shorter in time."""
    standard = for_profile("standard", Scenario.SERVER)
    trial = server_search.trial_settings(standard, 100.0)
    assert (trial.min_duration_ms, trial.min_query_count) == (server_search.TRIAL_MIN_MS, standard.min_query_count)
    assert trial.max_duration_ms == server_search.TRIAL_MAX_MS and trial.server_target_qps == 100.0
    assert standard.min_duration_ms > trial.min_duration_ms


def test_a_trial_replays_the_measured_runs_schedule_up_to_its_query_minimum():
    """Arrivals come from a fixed seed: a trial at any rate sees the measured run's first queries,
    bursts included, scaled to its rate (LoadGen draws its schedule the same way, from MLPerf's seed)."""
    measured = replace(for_profile("quick", Scenario.SERVER), server_target_qps=100.0)  # 10 s: 1000 queries
    trial = server_search.trial_settings(measured, 200.0)
    run_times, trial_times = native.server_schedule(measured), native.server_schedule(trial)
    assert len(trial_times) == measured.min_query_count < len(run_times)
    assert np.allclose(trial_times * 2, run_times[:len(trial_times)], rtol=1e-6, atol=2)
    smoke = replace(for_profile("smoke", Scenario.SERVER), min_duration_ms=300)
    assert server_search.trial_settings(smoke, 5.0).min_duration_ms == 300  # never longer than the profile


def test_allowed_over_is_the_edge_of_early_stopping():
    for n in (459, 2010, 10_000):
        t = server_search.allowed_over(n, 0.99)
        assert early_stopping.passes(n, t, 0.99) and not early_stopping.passes(n, t + 1, 0.99)
    assert server_search.allowed_over(458, 0.99) == -1


def test_not_given_is_told_apart_from_a_value():
    """A job or the CLI without target_qps / target_latency_ms searches and derives; with them, they are used."""
    unset = settings_for("quick", "Server", "performance", RunLength())
    assert (unset.server_target_qps, unset.server_target_latency_ms) == (0.0, 0.0)
    given = settings_for("quick", "Server", "performance", RunLength(target_qps=120.0, target_latency_ms=30.0))
    assert (given.server_target_qps, given.server_target_latency_ms) == (120.0, 30.0)
    point = server_search.OperatingPoint(30.0, "given", SingleStream(100, 2_000_000, 2_100_000))
    assert server_search.unsearched_rate(given, point).server_target_qps == 120.0
    assert point.target_qps == 120.0 and point.target_qps_rule == "given" and not point.searched


@pytest.mark.parametrize("flag", ["--target-qps", "--target-latency-ms"])
def test_a_zero_rate_or_bound_is_refused_in_one_line(flag, capsys):
    code = cli.main(["bench", "zoo:fashion-mnist-cnn/int8.onnx", "--scenario", "Server", flag, "0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"{flag}: expected float > 0" in err


def test_a_measured_run_that_falls_behind_steps_down_from_the_rate_it_achieved(tmp_path, timed):
    """The device slows down after the search (a shared machine's other load): the measured run
    cannot keep up with the rate found, and the next one starts below what it did achieve."""
    settings, point = server_search.operating_point(short(server_target_latency_ms=60.0), timed)
    server_search.find("native", FixedDelaySut(DELAY_S), settings, tmp_path, point)
    # a third of the rate found, whatever a busy machine let the search find: the measured run cannot keep up
    slower = FixedDelaySut(3 / point.target_qps)
    server_search.measure("native", slower, settings, tmp_path, point)
    first, second = [t for t in point.trials if t.final][:2]
    assert first.achieved_qps < first.target_qps * 0.9 and not first.valid
    assert second.target_qps == float(f"{server_search.STEP_DOWN * first.achieved_qps:.3g}")
    assert "stepped down to" in point.target_qps_rule
