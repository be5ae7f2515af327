"""Plots (matplotlib, headless): what people would rather look at than read."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["latency_scatter", "search_scatter"]


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


def search_scatter(candidates, fronts, baselines, best, path: str | os.PathLike[str], *, budgets) -> None:
    """mIoU vs BitOps (and vs predicted latency when known): every evaluated genome, the Pareto
    front, the uniform baselines and the chosen policy; dashed lines mark the budgets."""
    plt = _pyplot()
    axes_keys = [k for k in ("bitops", "latency_ms") if k in fronts]
    fig, axes = plt.subplots(1, len(axes_keys), figsize=(5.5 * len(axes_keys), 4.5), squeeze=False)
    labels = {"bitops": ("GBitOps", 1e9), "latency_ms": ("predicted INT8 latency (ms)", 1.0)}
    for ax, key in zip(axes[0], axes_keys):
        name, scale = labels[key]
        ax.scatter([c.metrics[key] / scale for c in candidates], [c.fitness for c in candidates], s=10,
                   alpha=0.4, label="evaluated")
        front = fronts[key]
        ax.plot([c.metrics[key] / scale for c in front], [c.fitness for c in front], "r.-", label="Pareto front")
        for bname, metrics in baselines.items():
            if key in metrics:
                ax.scatter([metrics[key] / scale], [metrics["miou"]], marker="s", s=40, label=bname)
        ax.scatter([best.metrics[key] / scale], [best.fitness], marker="*", s=160, c="k", label="best.yaml")
        if key in budgets:
            ax.axvline(budgets[key] / scale, ls="--", c="gray", lw=1, label="budget")
        ax.set_xlabel(name)
        ax.set_ylabel("search-val mIoU")
        ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)
