"""VALID / INVALID for the native engine, constraint by constraint as LoadGen's ``results.cc``.

VALID ⇔ min duration met ∧ min queries (and samples) met ∧ (Server) p99 within the target
latency ∧ early stopping met. Each constraint is a ``Check`` with LoadGen's recommendation as its
advice, so an INVALID result says what to change next time.
"""

from __future__ import annotations

import numpy as np

from agent.scenarios import early_stopping
from agent.scenarios.outcome import Check, Outcome
from agent.scenarios.settings import Scenario
from agent.stats import nearest_rank

ENDED_MAX_DURATION = "max duration reached"


def _min_duration(o: Outcome) -> Check:
    s = o.settings
    seen_ns = {
        Scenario.OFFLINE: o.last_done_ns,
        Scenario.SERVER: o.final_scheduled_ns,
    }.get(s.scenario, o.final_issue_ns)
    ok = seen_ns >= s.min_duration_ms * 1_000_000
    advice = {
        Scenario.OFFLINE: "raise the expected QPS so more samples are issued",
        Scenario.SERVER: "raise the target QPS so more queries are scheduled",
    }.get(s.scenario, "lower --max-duration or use a shorter profile")
    return Check("min_duration", ok, f"{seen_ns / 1e9:.3f} s of {s.min_duration_ms / 1e3:g} s", "" if ok else advice)


def _min_queries(o: Outcome) -> Check:
    s = o.settings
    if o.ended_by == ENDED_MAX_DURATION:
        # MLPerf Mobile's enforce_max_duration: a run cut off on time skips the query minimum.
        return Check("min_queries", True, f"skipped: {o.query_count} queries when the max duration was reached")
    offline = s.scenario == Scenario.OFFLINE
    min_samples = s.offline_min_sample_count if offline else s.min_query_count * s.samples_per_query
    ok = o.query_count >= s.min_query_count and o.sample_count >= min_samples
    detail = f"{o.query_count} queries / {o.sample_count} samples of {s.min_query_count} / {min_samples}"
    return Check("min_queries", ok, detail, "" if ok else "the run ended before enough queries were issued")


def _latency_bound(o: Outcome) -> Check:
    s = o.settings
    target_ns = int(s.server_target_latency_ms * 1e6)
    observed = nearest_rank(np.sort(o.sample_latencies_ns), s.target_latency_percentile)
    ok = observed <= target_ns
    detail = f"p{s.target_latency_percentile * 100:g} {observed / 1e6:.3f} ms vs target {s.server_target_latency_ms:g} ms"
    return Check("latency_bound", ok, detail, "" if ok else "reduce the target QPS to improve latency")


def _early_stopping(o: Outcome) -> Check:
    s = o.settings
    p = s.target_latency_percentile
    if s.scenario == Scenario.SERVER:
        target_ns = int(s.server_target_latency_ms * 1e6)
        over = int(np.count_nonzero(o.sample_latencies_ns > target_ns))
        ok = early_stopping.passes(o.query_count, over, p)
        need = early_stopping.min_passing_h(over, p) + over
        detail = f"{o.query_count} queries, {over} over latency; needs {need}"
        return Check("early_stopping", ok, detail, "" if ok else f"run at least {need - o.query_count} more queries")
    need = early_stopping.min_queries(p)
    ok = o.query_count >= need
    detail = f"{o.query_count} queries; needs at least {need} for the p{p * 100:g} estimate"
    return Check("early_stopping", ok, detail, "" if ok else f"process at least {need} queries")


def judge(o: Outcome) -> list[Check]:
    """The checks that decide the run's validity."""
    if o.settings.mode.scored:
        answered = len(o.outputs or {})
        ok = answered == o.sample_count
        return [Check("all_samples", ok, f"{answered} of {o.sample_count} samples answered once")]
    checks = [_min_duration(o), _min_queries(o)]
    if o.settings.scenario == Scenario.SERVER:
        checks.append(_latency_bound(o))
    if o.settings.scenario != Scenario.OFFLINE:
        checks.append(_early_stopping(o))
    return checks
