"""Seed statistics: means, standard deviations and Student-t / Welch intervals; medians of timing ratios."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qnas.stats import median_interval, summarize, welch_difference


def test_summary_of_three_seeds() -> None:
    s = summarize([0.40, 0.41, 0.42])
    assert s.mean == pytest.approx(0.41) and s.std == pytest.approx(0.01) and s.n == 3
    # t(0.975, 2) = 4.303: the interval is mean +- 4.303 * 0.01 / sqrt(3)
    assert s.half_width == pytest.approx(4.3027 * 0.01 / math.sqrt(3), rel=1e-4)
    assert s.show(100) == "41.00 ± 1.00"
    one = summarize([0.5])
    assert one.n == 1 and math.isnan(one.std) and one.show() == "0.50"


def test_welch_interval_covers_the_true_difference_about_95_percent() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(2000):
        d = welch_difference(rng.normal(0.02, 0.01, 3), rng.normal(0.0, 0.02, 3))
        covered += d.low <= 0.02 <= d.high
    assert 0.93 <= covered / 2000 <= 0.99  # Welch is slightly conservative for n = 3
    d = welch_difference([0.5, 0.51, 0.52], [0.40, 0.41, 0.42])
    assert d.diff == pytest.approx(0.1) and not d.within_noise and d.show().startswith("+10.00 [")
    assert welch_difference([0.5, 0.52, 0.48], [0.5, 0.49, 0.51]).within_noise
    with pytest.raises(ValueError):
        welch_difference([0.5], [0.4, 0.3])


def test_median_interval_order_statistics() -> None:
    # n = 20: the textbook interval is (x_(6), x_(15)), coverage 95.9%
    m = median_interval(list(range(20, 0, -1)))
    assert (m.median, m.low, m.high, m.n) == (10.5, 6.0, 15.0, 20)
    assert 0.95 <= m.coverage < 0.96
    assert median_interval([1.0] * 6).show() == "1.000 [1.000, 1.000]"


def test_median_interval_covers_the_median_of_a_skewed_distribution() -> None:
    rng = np.random.default_rng(0)
    true_median = np.log(2.0)  # exponential(1)
    hits = sum(m.low <= true_median <= m.high
               for m in (median_interval(rng.exponential(size=30)) for _ in range(2000)))
    assert 0.94 <= hits / 2000 <= 0.98


def test_median_interval_needs_six_values() -> None:
    with pytest.raises(ValueError, match="at least 6"):
        median_interval([1.0, 2.0, 3.0, 4.0, 5.0])
