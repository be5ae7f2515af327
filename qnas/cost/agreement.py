"""How well a predictor agrees with measurements: MAPE and Kendall's rank correlation (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["mape", "kendall_tau"]


def mape(predicted: Sequence[float], measured: Sequence[float]) -> float:
    """Mean absolute percentage error as a fraction: mean(|p - m| / m)."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    if p.shape != m.shape or p.size == 0 or np.any(m <= 0):
        raise ValueError("mape needs equally long, non-empty sequences and positive measurements")
    return float(np.mean(np.abs(p - m) / m))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either sequence accounted for); 1 = same order, -1 = reversed."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError("kendall_tau needs two equally long sequences of at least 2 values")
    i, j = np.triu_indices(a.size, k=1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    concordant_minus_discordant = float(np.sum(da * db))
    n_a, n_b = float(np.sum(da != 0)), float(np.sum(db != 0))
    if n_a == 0 or n_b == 0:
        return float("nan")
    return concordant_minus_discordant / np.sqrt(n_a * n_b)
