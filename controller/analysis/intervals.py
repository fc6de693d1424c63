"""Confidence intervals over repeats: Student's t on the mean, or an honest "no interval".

Repeats of a run are few (3 to 10), and their noise is close to normal or mildly skewed. A
percentile bootstrap over so few values is too narrow — with 3 repeats it is exactly [min, max]
and covers the true mean about 75 % of the time. Student's t on the mean holds its coverage:
simulated (``tests/test_intervals.py``) at n = 3, 5, 10 it covers 95 % under normal noise and
at least 93 % under log-normal noise up to σ = 0.3 (a 30 % run-to-run spread, far beyond what a
benchmark run shows). With two repeats the t interval is valid but ±12.7 standard errors wide, so
the scorecard shows their range instead and says it is not a confidence interval; one run has no
interval at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_REPEATS_FOR_INTERVAL = 3
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A mean over repeats and what is known about its spread.

    ``method`` names what ``lo``/``hi`` are: ``t`` (Student's t 95 % interval of the mean),
    ``range`` (min and max of two runs: not a confidence interval) or ``none`` (one run)."""

    value: float
    lo: float | None
    hi: float | None
    method: str
    n: int


def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student's t critical value (scipy: the controller's statistics library); ``df`` may be
    fractional (Welch)."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2, df))


def mean_interval(values: Sequence[float | None]) -> Estimate:
    """Mean of the finite ``values`` with a t interval (n ≥ 3), their range (n = 2) or nothing."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if data.size == 0:
        return Estimate(math.nan, None, None, "none", 0)
    mean = float(data.mean())
    if data.size == 1:
        return Estimate(mean, None, None, "none", 1)
    if data.size < MIN_REPEATS_FOR_INTERVAL:
        return Estimate(mean, float(data.min()), float(data.max()), "range", int(data.size))
    half = t_quantile(data.size - 1) * float(data.std(ddof=1)) / math.sqrt(data.size)
    return Estimate(mean, mean - half, mean + half, "t", int(data.size))
