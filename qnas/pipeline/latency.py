"""Latency stages: measure the lookup table on this machine, and check it against whole networks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from qnas.cost.agreement import kendall_tau, mape
from qnas.cost.bitops import genome_cost
from qnas.cost.latency import LatencyTable, OverheadFit, choose_fit, fit_overheads, with_overheads
from qnas.errors import QnasError
from qnas.export.latency import build_table, get_backend, measure_network, table_weight_bits
from qnas.pipeline.context import Context
from qnas.pipeline.lock import FolderLock
from qnas.pipeline.paths import output_file
from qnas.pipeline.plots import latency_scatter
from qnas.pipeline.progress import SILENT, Reporter
from qnas.quant.targets import get_target
from qnas.space.policy import atomic_write_text

__all__ = ["load_table", "latency_table", "latency_check", "default_check_plot", "table_bits"]


def table_bits(ctx: Context) -> int:
    """The widest weight codes the config's target runs: what its latency table is timed with."""
    return get_target(ctx.config.deploy.target).weight_bits(max(ctx.spec.bits))


def load_table(path: str | os.PathLike[str], backend_name: str | None = None, threads: int | None = None,
               force: bool = False, ctx: Context | None = None) -> LatencyTable:
    """Read a table and check it was measured here (same CPU, cores, runtime, threads) unless forced;
    ``backend_name``: the table must have been measured with that backend (forced or not); ``ctx``: with the
    weight range of the config's target (forced or not: a runtime may pick another kernel for it)."""
    table = LatencyTable.read(path)
    measured_with = table.fingerprint.get("backend", "ort-cpu")
    if backend_name is not None and backend_name != measured_with:
        raise QnasError(f"{path} was measured with backend {measured_with!r}, not {backend_name!r}; build one with "
                        f"qnas latency-table --backend {backend_name}")
    if ctx is not None and table_weight_bits(table) != table_bits(ctx):
        target = ctx.config.deploy.target
        raise QnasError(f"{path} was timed with {table_weight_bits(table)}-bit weights, but target {target!r} runs "
                        f"{table_bits(ctx)}-bit weights (a runtime may use another kernel for them); build one with "
                        f"qnas latency-table --target {target}")
    backend = get_backend(measured_with, threads or int(table.fingerprint.get("threads", 1)))
    table.check_device(backend.fingerprint(), force=force)
    return table


def latency_table(ctx: Context, out: str | os.PathLike[str], *, backend: str = "ort-cpu", threads: int = 1,
                  repeats: int = 30, warmup: int = 5, restart: bool = False,
                  reporter: Reporter = SILENT) -> LatencyTable:
    """Time every distinct unit of the space at the deployment resolution; resumable (keeps measured entries)."""
    engine = get_backend(backend, threads)
    output_file(out)
    with FolderLock.file(out), reporter.steps("latency table") as progress:
        return build_table(ctx.spec, ctx.deploy_hw, engine, out, warmup=warmup, repeats=repeats,
                           resume=not restart, weight_bits=table_bits(ctx), progress=progress)


FIT_FLOOR = 0.5  # a fitted overhead must keep every sampled network's prediction above this share of its measurement


def default_check_plot(lut: str | os.PathLike[str]) -> Path:
    """Where a check of ``lut`` goes unless told: ``<stem>_check.png`` beside the table, or ``<stem>_check-2.png``
    (-3, ...) where an earlier check is, so that checking a run's table by hand keeps the run's own check."""
    lut = Path(lut)
    n = 1
    while True:
        plot = lut.with_name(f"{lut.stem}_check{'' if n == 1 else f'-{n}'}.png")
        if not plot.exists() and not plot.with_suffix(".json").exists():
            return plot
        n += 1


def latency_check(ctx: Context, lut: str | os.PathLike[str], *, samples: int = 30, seed: int = 0,
                  repeats: int | None = None, plot: str | os.PathLike[str] | None = None, fit_overhead: bool = False,
                  force: bool = False, backend: str | None = None, reporter: Reporter = SILENT) -> dict[str, Any]:
    """Measure ``samples`` whole networks (the largest, the smallest, random ones) against the table's
    predictions: MAPE, Kendall tau, MACs' Kendall tau, a scatter plot (``plot``, default ``default_check_plot``);
    written beside the plot as JSON.
    ``fit_overhead``: fit the table's overheads to the measured networks and write them: a constant per network,
    or a constant plus a term per unit where that predicts left-out networks better (``qnas.cost.latency.
    fit_overheads``, ``choose_fit``); refused (``fit_refused``) where every fit would predict some sampled network,
    in the fit or left out of it, at less than ``FIT_FLOOR`` of its measured latency."""
    if plot is not None:
        output_file(plot, "--plot")
    table = load_table(lut, backend, force=force, ctx=ctx)
    engine = get_backend(table.fingerprint.get("backend", "ort-cpu"), int(table.fingerprint.get("threads", 1)))
    missing = table.missing(ctx.spec)
    if missing:
        raise QnasError(f"{lut} lacks {len(missing)} block(s) of this config's space (e.g. {missing[0].key!r}); "
                        "rebuild it with qnas latency-table")
    method = table.method or {}
    repeats = repeats or int(method.get("repeats", 30))
    warmup = int(method.get("warmup", 5))
    rng = np.random.default_rng(seed)
    space = ctx.space
    genomes = ([space.largest(), space.smallest()] + [space.sample(rng) for _ in range(max(0, samples - 2))])[:samples]
    sums, units, measured, macs = [], [], [], []
    with reporter.steps("measuring whole networks") as progress:
        for i, genome in enumerate(genomes):
            progress("", i, len(genomes))
            entries = table.blocks(ctx.spec, genome)  # a table whose overheads went wrong can still be checked
            sums.append(sum(entries))
            units.append(len(entries))
            measured.append(measure_network(ctx.spec, genome, table.resolution, engine, warmup, repeats,
                                            weight_bits=table_weight_bits(table)))
            macs.append(genome_cost(ctx.spec, genome, *table.resolution).macs)
        progress("", len(genomes), len(genomes))
    predicted = with_overheads(sums, units, table.overhead_ms, table.unit_overhead_ms)
    offset = float(np.median(np.asarray(measured) - np.asarray(predicted)))
    result = {
        "mape": mape(predicted, measured),
        "kendall_tau": kendall_tau(predicted, measured),
        "macs_kendall_tau": kendall_tau(macs, measured),
        "samples": len(genomes),
        "median_offset_ms": offset,
        "overhead_ms": table.overhead_ms,
        "unit_overhead_ms": table.unit_overhead_ms,
        "predicted_ms": predicted,
        "measured_ms": measured,
        "block_sums_ms": sums,
        "units": units,
    }
    plot = Path(plot) if plot else default_check_plot(lut)
    latency_scatter(predicted, measured, plot, title=f"{len(genomes)} networks, {table.fingerprint.get('cpu')}",
                    mape=result["mape"], tau=result["kendall_tau"])
    result["plot"] = str(plot)
    if fit_overhead:
        # from the raw entries: a second fit replaces the first
        fits = fit_overheads(sums, units, measured, min(table.entries.values()))
        result["fit_loo_mape"] = {name: fit.loo_mape for name, fit in fits.items()}
        chosen = choose_fit(fits, FIT_FLOOR)
        if chosen is None:  # it would predict ~0 ms for small networks
            def shown(fit: OverheadFit) -> str:
                lowest = min(fit.lowest, fit.loo_lowest if fit.loo_lowest is not None else fit.lowest)
                per_unit = f", {fit.unit_overhead_ms:+.3f} ms per unit" if fit.model == "per unit" else ""
                return f"{fit.model} ({fit.overhead_ms:+.3f} ms{per_unit}) down to {100 * lowest:.0f}%"

            tried = "; ".join(shown(fit) for fit in fits.values())
            result["fit_refused"] = (f"no fit predicts every measured network at {100 * FIT_FLOOR:.0f}% of its latency "
                                     f"or more, fitted or left out ({tried}); the table keeps {table.overhead_ms:+.3f} "
                                     "ms" + (f" and {table.unit_overhead_ms:+.3f} ms per unit"
                                             if table.unit_overhead_ms else ""))
        else:
            table.overhead_ms, table.unit_overhead_ms = round(chosen.overhead_ms, 5), round(chosen.unit_overhead_ms, 5)
            table.write(lut)
            result["fit_model"] = chosen.model
            result["fitted_overhead_ms"] = table.overhead_ms
            result["fitted_unit_overhead_ms"] = table.unit_overhead_ms
            result["fitted_mape"] = mape(with_overheads(sums, units, table.overhead_ms, table.unit_overhead_ms),
                                         measured)
    atomic_write_text(plot.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    return result
