"""``qnas latency-table`` and ``qnas latency-check``: the measured INT8 latency lookup table."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from qnas.cli.command import Command, config_argument, load
from qnas.cost import genome_cost
from qnas.cost.agreement import kendall_tau, mape
from qnas.cost.latency import LatencyTable
from qnas.errors import QnasError
from qnas.export.latency import BACKENDS, build_table, get_backend, measure_network
from qnas.space import atomic_write_text

__all__ = ["LATENCY_COMMANDS", "load_table"]


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {number}")
    return number


def load_table(path: str, backend_name: str | None = None, threads: int | None = None,
               force: bool = False) -> LatencyTable:
    """Read a table and check it was measured here (same CPU, cores, runtime, threads) unless forced."""
    table = LatencyTable.read(path)
    backend = get_backend(backend_name or table.fingerprint.get("backend", "ort-cpu"),
                          threads or int(table.fingerprint.get("threads", 1)))
    table.check_device(backend.fingerprint(), force=force)
    return table


def _measure_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                        help="intra-op threads of the engine (default: 1; part of the device fingerprint)")
    parser.add_argument("--repeats", type=_positive_int, default=30, metavar="N",
                        help="timed runs per model; the median is kept (default: 30)")
    parser.add_argument("--warmup", type=_positive_int, default=5, metavar="N",
                        help="untimed runs before timing (default: 5)")


# -- qnas latency-table -----------------------------------------------------------------------------
def _table_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--backend", default="ort-cpu", choices=sorted(BACKENDS),
                        help="engine that runs the INT8 blocks (default: ort-cpu)")
    parser.add_argument("--out", required=True, metavar="LUT", help="latency table YAML to write (e.g. lut.yaml)")
    _measure_arguments(parser)
    parser.add_argument("--restart", action="store_true",
                        help="measure every block again instead of keeping the entries already in --out")


def _table(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    config, _ = load(args)
    backend = get_backend(args.backend, args.threads)
    resolution = (config.deploy.height, config.deploy.width)
    tic = time.perf_counter()
    with Progress(TextColumn("latency table"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[block]}"),
                  TimeElapsedColumn()) as bar:
        task = bar.add_task("blocks", total=None, block="")

        def progress(block: str, done: int, total: int) -> None:
            bar.update(task, total=total, completed=done, block=block)

        table = build_table(config.space, resolution, backend, args.out, warmup=args.warmup, repeats=args.repeats,
                            resume=not args.restart, progress=progress)
    print(f"{len(table.entries)} blocks at {resolution[0]}x{resolution[1]} on {backend.name} "
          f"({args.threads} thread(s)) in {time.perf_counter() - tic:.0f} s; wrote {args.out}")
    return 0


# -- qnas latency-check -----------------------------------------------------------------------------
def _check_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--lut", required=True, metavar="LUT", help="latency table from qnas latency-table")
    parser.add_argument("--samples", type=_positive_int, default=30, metavar="K",
                        help="random genomes to measure whole (default: 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the genome sampler (default: 0)")
    parser.add_argument("--repeats", type=_positive_int, default=None, metavar="N",
                        help="timed runs per network (default: the table's)")
    parser.add_argument("--plot", metavar="PNG", default=None,
                        help="scatter plot of predicted vs measured (default: beside the table, *_check.png)")
    parser.add_argument("--fit-overhead", action="store_true",
                        help="store the median (measured - predicted) in the table as its graph overhead")
    parser.add_argument("--force-lut", action="store_true", help="use a table measured on another device")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object: mape (a fraction), kendall_tau, macs_kendall_tau, samples")


def _check(args: argparse.Namespace) -> int:
    config, space = load(args)
    table = load_table(args.lut, force=args.force_lut)
    backend = get_backend(table.fingerprint.get("backend", "ort-cpu"), int(table.fingerprint.get("threads", 1)))
    missing = table.missing(config.space)
    if missing:
        raise QnasError(f"{args.lut} lacks {len(missing)} block(s) of this config's space (e.g. {missing[0].key!r}); "
                        "rebuild it with qnas latency-table")
    method = table.method or {}
    repeats = args.repeats or int(method.get("repeats", 30))
    warmup = int(method.get("warmup", 5))
    rng = np.random.default_rng(args.seed)
    genomes = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(max(0, args.samples - 2))]
    genomes = genomes[:args.samples]
    predicted, measured, macs = [], [], []
    from rich.progress import track

    for genome in track(genomes, description="measuring whole networks", disable=args.json):
        predicted.append(table.predict(config.space, genome))
        measured.append(measure_network(config.space, genome, table.resolution, backend, warmup, repeats))
        macs.append(genome_cost(config.space, genome, *table.resolution).macs)
    offset = float(np.median(np.asarray(measured) - np.asarray(predicted)))
    result = {
        "mape": mape(predicted, measured),
        "kendall_tau": kendall_tau(predicted, measured),
        "macs_kendall_tau": kendall_tau(macs, measured),
        "samples": len(genomes),
        "median_offset_ms": offset,
        "overhead_ms": table.overhead_ms,
        "predicted_ms": predicted,
        "measured_ms": measured,
    }
    plot = Path(args.plot) if args.plot else Path(args.lut).with_name(Path(args.lut).stem + "_check.png")
    from qnas.cli.plots import latency_scatter

    latency_scatter(predicted, measured, plot, title=f"{len(genomes)} networks, {table.fingerprint.get('cpu')}",
                    mape=result["mape"], tau=result["kendall_tau"])
    result["plot"] = str(plot)
    if args.fit_overhead:
        table.overhead_ms = round(table.overhead_ms + offset, 5)
        table.write(args.lut)
    atomic_write_text(plot.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{len(genomes)} networks: MAPE {result['mape'] * 100:.1f}%, Kendall tau {result['kendall_tau']:.3f} "
              f"(MACs alone: {result['macs_kendall_tau']:.3f}); median measured - predicted {offset:+.3f} ms; "
              f"plot {plot}")
        if args.fit_overhead:
            print(f"table overhead set to {table.overhead_ms:.3f} ms")
    return 0


LATENCY_COMMANDS = [
    Command("latency-table", "measure the INT8 latency lookup table on this machine",
            "Export every distinct block of the search space (stem, each MBConv choice at each position, "
            "high-resolution branch, fusion + head) alone as a fully-integer INT8 ONNX model (QLinearConv "
            "etc., checked in the engine's optimized graph) and time it at the config's deployment "
            "resolution: warm-up, then the median of --repeats runs with fixed threads. The table records "
            "the device fingerprint; an interrupted build resumes, keeping measured entries.",
            _table_arguments, _table),
    Command("latency-check", "check the table's predictions against whole-network measurements",
            "Measure K random whole networks (INT8, same method as the table) and compare with the "
            "table's predictions (sum of block entries + overhead): MAPE, Kendall tau, a scatter plot "
            "with the y = x line, and how well MACs alone rank the same networks.",
            _check_arguments, _check),
]
