"""Plots (matplotlib, headless): what people would rather look at than read."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["latency_scatter"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike[str]) -> None:
    """Write the figure through a temporary file so a kill never leaves half a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)


def latency_scatter(predicted: Sequence[float], measured: Sequence[float], path: str | os.PathLike[str], *,
                    title: str, mape: float, tau: float) -> None:
    """Predicted vs measured latency with the y = x line (the thesis's Fig. 3-6)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(measured, predicted, s=18, alpha=0.8)
    low = min(min(predicted), min(measured)) * 0.95
    high = max(max(predicted), max(measured)) * 1.05
    ax.plot([low, high], [low, high], "k--", lw=1, label="y = x")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency, sum of table entries (ms)")
    ax.set_title(f"{title}\nMAPE {mape * 100:.1f}%, Kendall tau {tau:.3f}", fontsize=9)
    ax.legend(loc="upper left")
    _save(fig, path)
    plt.close(fig)
