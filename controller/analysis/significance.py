"""Is a change between two campaigns more than their run-to-run noise? Student's t-test on repeats.

This is pyperf's ``compare_to`` question, answered as pyperf answers it (``is_significant``): a
two-sample t-test on the repeats with the pooled variance and n₁ + n₂ − 2 degrees of freedom, at
95 %. With three repeats a side, Welch's unequal-variance form has as few as two degrees of
freedom when one run is an outlier (critical t 4.3 against 2.8) and missed most real slowdowns
in ``benchmarks/gate_calibration.py``; unchanged code has equal variance on both sides by
construction, which is what the pooled test assumes. The noise is only known from repeats: with
one run on either side there is nothing to test, and the answer is "unknown", not "significant"
or "not significant".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ALPHA = 0.05


@dataclass(frozen=True)
class Test:
    """A significance test's outcome; ``significant`` is None when the noise is unknown."""

    name: str
    statistic: float | None
    df: float | None
    p_value: float | None
    significant: bool | None
    n_old: int
    n_new: int

    def to_dict(self) -> dict[str, Any]:
        return {"test": self.name, "statistic": self.statistic, "df": self.df, "p_value": self.p_value,
                "alpha": ALPHA, "significant": self.significant, "n_old": self.n_old, "n_new": self.n_new}


def _finite(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)


def student(old: Sequence[float | None], new: Sequence[float | None]) -> Test:
    """Student's two-sided two-sample t-test (pooled variance) of ``new`` against ``old`` (per-run values of one KPI)."""
    a, b = _finite(old), _finite(new)
    if a.size < 2 or b.size < 2:
        return Test("no repeats: noise unknown", None, None, None, None, int(a.size), int(b.size))
    df = a.size + b.size - 2
    pooled = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / df
    diff = float(b.mean() - a.mean())
    if pooled == 0:  # both sides constant (a file size, a parameter count): any difference is real
        return Test("Student t (no variance)", None, df, 0.0 if diff else 1.0, diff != 0, int(a.size), int(b.size))
    from scipy import stats

    t = diff / math.sqrt(pooled * (1 / a.size + 1 / b.size))
    p = float(2 * stats.t.sf(abs(t), df))
    return Test("Student t", t, float(df), p, p < ALPHA, int(a.size), int(b.size))


def from_p_value(name: str, p_value: float | None, n_old: int, n_new: int) -> Test:
    """A test computed elsewhere (the paired accuracy test) in the same shape."""
    return Test(name, None, None, p_value, None if p_value is None else p_value < ALPHA, n_old, n_new)
