"""Intervals over repeats hold their coverage, and the gate's test holds its false-alarm rate, by simulation.

The scorecard calls its interval "95 %"; that is only true if, over many campaigns, it contains
the true mean about 95 % of the time. These tests draw repeats from known distributions (normal,
and log-normal as skewed run-to-run noise) and count how often ``mean_interval`` covers the truth.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller.analysis import significance
from controller.analysis.intervals import mean_interval

TRIALS = 4000


def _draw(rng: np.random.Generator, noise: str, n: int) -> tuple[np.ndarray, float]:
    """``TRIALS`` sets of ``n`` repeats and the true mean they are drawn around."""
    if noise == "normal":
        return rng.normal(10.0, 0.5, (TRIALS, n)), 10.0
    sigma = float(noise.removeprefix("lognormal"))
    return rng.lognormal(0.0, sigma, (TRIALS, n)), math.exp(sigma**2 / 2)


@pytest.mark.parametrize("noise", ["normal", "lognormal0.1", "lognormal0.3"])
@pytest.mark.parametrize("n", [3, 5, 10])
def test_the_95_percent_interval_covers_the_true_mean_at_least_93_percent_of_the_time(noise, n):
    rng = np.random.default_rng(20261207 + n)
    repeats, truth = _draw(rng, noise, n)
    covered = 0
    for values in repeats:
        est = mean_interval(values.tolist())
        covered += est.lo <= truth <= est.hi
    coverage = covered / TRIALS
    assert coverage >= 0.93, f"{noise}, n={n}: coverage {coverage:.3f}"
    assert coverage <= 0.97, f"{noise}, n={n}: coverage {coverage:.3f} (too wide to be useful)"


def test_fewer_than_three_repeats_give_a_range_or_nothing_never_an_interval():
    two = mean_interval([1.0, 3.0])
    assert (two.value, two.lo, two.hi, two.method) == (2.0, 1.0, 3.0, "range")
    one = mean_interval([4.0, None, math.nan])
    assert (one.value, one.lo, one.method, one.n) == (4.0, None, "none", 1)
    assert mean_interval([]).method == "none"


def test_student_matches_a_hand_computed_example():
    # old mean 10, var 1 (n 3); new mean 12, var 16/3 (n 4): pooled var (2·1 + 3·16/3) / 5 = 3.6, df 5
    old, new = [9.0, 10.0, 11.0], [10.0, 10.0, 14.0, 14.0]
    test = significance.student(old, new)
    assert test.statistic == pytest.approx(2 / math.sqrt(3.6 * (1 / 3 + 1 / 4))) and test.df == 5
    assert test.p_value == pytest.approx(0.2261, abs=1e-3) and test.significant is False  # t = 1.380 at 5 df, two-sided


def test_false_alarms_stay_near_five_percent_on_unchanged_campaigns():
    rng = np.random.default_rng(7)
    alarms = sum(bool(significance.student(rng.normal(10, 1, 3), rng.normal(10, 1, 3)).significant) for _ in range(2000))
    assert alarms / 2000 <= 0.07


def test_without_repeats_or_with_constant_values_the_test_says_what_it_knows():
    assert significance.student([1.0], [2.0, 2.1]).significant is None
    assert significance.student([5.0, 5.0], [5.0, 5.0]).significant is False
    assert significance.student([5.0, 5.0], [6.0, 6.0]).significant is True  # a file size that changed did change
