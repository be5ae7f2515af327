"""Plots (matplotlib, headless): what people would rather look at than read."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["latency_scatter", "search_scatter", "compare_plot", "sensitivity_plot", "probability_plot"]


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


def compare_plot(rows, path: str | os.PathLike[str], *, title: str) -> None:
    """mIoU (mean, with the seeds' standard deviation as error bars) against GBitOps: the uniform
    policies joined as the uniform front, every other policy a star."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))

    def points(selected):
        xs = [float(r["gbitops"]) for r in selected]
        ys = [100 * float(r["miou"]) for r in selected]
        errs = [100 * float(r["miou_std"]) if r.get("miou_std") not in (None, "") else 0.0 for r in selected]
        return xs, ys, errs

    uniform = sorted((r for r in rows if r["precision"].startswith("uniform")), key=lambda r: float(r["gbitops"]))
    others = [r for r in rows if not r["precision"].startswith("uniform")]
    if uniform:
        xs, ys, errs = points(uniform)
        ax.errorbar(xs, ys, yerr=errs, fmt="s-", color="gray", capsize=3, label="uniform front")
        for r, x, y in zip(uniform, xs, ys):
            ax.annotate(r["precision"].split()[-1], (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    if others:
        xs, ys, errs = points(others)
        ax.errorbar(xs, ys, yerr=errs, fmt="*", color="tab:red", markersize=11, capsize=3, linestyle="none",
                    label="searched")
        for r, x, y in zip(others, xs, ys):
            ax.annotate(r["method"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=6)
    ax.set_xlabel("GBitOps at the deployment resolution")
    ax.set_ylabel("mIoU (%), mean ± std over seeds")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def sensitivity_plot(rows, path: str | os.PathLike[str], *, title: str) -> None:
    """Per layer, the mIoU change when its weights or its input activations alone drop to fewer bits."""
    plt = _pyplot()
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    kinds = sorted({(r["what"], int(r["bits"])) for r in rows}, key=lambda k: (k[0], -k[1]))
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(layers)), 4.5))
    width = 0.8 / max(1, len(kinds))
    for i, (what, bits) in enumerate(kinds):
        values = {r["layer"]: 100 * float(r["delta_miou"]) for r in rows if (r["what"], int(r["bits"])) == (what, bits)}
        xs = [j + (i - (len(kinds) - 1) / 2) * width for j in range(len(layers))]
        ax.bar(xs, [values.get(layer, 0.0) for layer in layers], width, label=f"{what} at {bits} bits")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(layers, rotation=90, fontsize=6)
    ax.set_ylabel("mIoU change (points)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)


def probability_plot(history, genes, path: str | os.PathLike[str]) -> None:
    """A differentiable search's choice probabilities over its steps as one heat map: a row per (gene,
    choice), a column per step (``history``: the log's entries, each with ``step`` and ``probs``; ``genes``:
    label -> choices). A gene ends up decided where one of its rows turns bright and the others dark."""
    import numpy as np

    plt = _pyplot()
    rows = [(label, i, choice) for label, choices in genes.items() for i, choice in enumerate(choices)]
    values = np.array([[e["probs"][label][i] for e in history] for label, i, _ in rows])
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.075 * len(rows)))
    steps = [e["step"] for e in history] or [0]
    image = ax.imshow(values, aspect="auto", interpolation="nearest", vmin=0.0, vmax=1.0, cmap="viridis",
                      extent=(steps[0] - 0.5, steps[-1] + 0.5, len(rows) - 0.5, -0.5))
    ax.set_yticks(range(len(rows)), [f"{label} = {choice}" for label, _, choice in rows], fontsize=4)
    ends = np.cumsum([len(c) for c in genes.values()])[:-1]
    for end in ends:
        ax.axhline(end - 0.5, color="white", lw=0.3)
    ax.set_xlabel("step")
    ax.set_title("probability of each gene's choices over the search", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    _save(fig, path)
    plt.close(fig)
