"""Seed statistics for comparisons: mean, standard deviation, Student-t 95% intervals (numpy + scipy).

A difference between two policies is reported with Welch's interval (unequal variances, no pairing
assumed between their seeds); ``within_noise`` says whether that interval contains zero.

A speed ratio measured in interleaved rounds is reported as the median of the per-round ratios with
``median_interval``: a distribution-free 95% interval from order statistics (timings are skewed by
the machine's other work, so no normal model is assumed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Summary", "summarize", "Difference", "welch_difference", "MedianInterval", "median_interval"]


@dataclass(frozen=True)
class Summary:
    """``n`` values: their mean, sample standard deviation (ddof 1) and the 95% interval of the mean."""

    mean: float
    std: float
    n: int
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def show(self, scale: float = 1.0, digits: int = 2) -> str:
        """'mean ± std' (the std only when there are several values)."""
        if self.n < 2:
            return f"{self.mean * scale:.{digits}f}"
        return f"{self.mean * scale:.{digits}f} ± {self.std * scale:.{digits}f}"


def summarize(values: Sequence[float]) -> Summary:
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no values to summarize")
    mean = float(x.mean())
    if x.size < 2:
        return Summary(mean, math.nan, 1, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, x.size - 1)) * std / math.sqrt(x.size)
    return Summary(mean, std, int(x.size), mean - half, mean + half)


@dataclass(frozen=True)
class Difference:
    """``mean(a) - mean(b)`` with Welch's 95% interval."""

    diff: float
    low: float
    high: float

    @property
    def within_noise(self) -> bool:
        return self.low <= 0.0 <= self.high

    def show(self, scale: float = 100.0, digits: int = 2) -> str:
        return (f"{self.diff * scale:+.{digits}f} [{self.low * scale:+.{digits}f}, {self.high * scale:+.{digits}f}]"
                + (" (within noise)" if self.within_noise else ""))


def welch_difference(a: Sequence[float], b: Sequence[float]) -> Difference:
    """The difference of the means of ``a`` and ``b`` with Welch's t interval (95%)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.size < 2 or y.size < 2:
        raise ValueError("an interval for a difference needs at least 2 values on each side")
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    diff = float(x.mean() - y.mean())
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Difference(diff, diff, diff)
    dof = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    half = float(stats.t.ppf(0.975, dof)) * se
    return Difference(diff, diff - half, diff + half)


@dataclass(frozen=True)
class MedianInterval:
    """The median of ``n`` values with a distribution-free interval that holds it with ``coverage`` >= 95%."""

    median: float
    low: float
    high: float
    n: int
    coverage: float

    def show(self, digits: int = 3) -> str:
        return f"{self.median:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def median_interval(values: Sequence[float]) -> MedianInterval:
    """The median and the order statistics ``(x_(k), x_(n+1-k))`` around it, with the largest ``k`` whose
    interval still covers the population median with probability >= 95% (binomial, no distribution
    assumed; needs at least 6 values)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = int(x.size)
    if n < 6:
        raise ValueError(f"an interval for a median needs at least 6 values, got {n}")
    k = 1
    while 1.0 - 2.0 * float(stats.binom.cdf(k, n, 0.5)) >= 0.95:  # coverage of (x_(k+1), x_(n-k))
        k += 1
    coverage = 1.0 - 2.0 * float(stats.binom.cdf(k - 1, n, 0.5))
    return MedianInterval(float(np.median(x)), float(x[k - 1]), float(x[n - k]), n, coverage)
