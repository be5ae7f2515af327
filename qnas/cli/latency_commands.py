"""``qnas latency-table`` and ``qnas latency-check``: the measured INT8 latency lookup table."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

from qnas.cli.command import Command, config_argument, context, int_between, seed_int
from qnas.cli.progress import RichReporter
from qnas.export.latency import backend_names
from qnas.pipeline import latency_check, latency_table

__all__ = ["LATENCY_COMMANDS"]


def _measure_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int_between(1, 256), default=1, metavar="N",
                        help="intra-op threads of the engine (default: 1; part of the device fingerprint)")
    parser.add_argument("--repeats", type=int_between(1, 10000), default=30, metavar="N",
                        help="timed runs per model; the median is kept (default: 30)")
    parser.add_argument("--warmup", type=int_between(1, 10000), default=5, metavar="N",
                        help="untimed runs before timing (default: 5)")


# -- qnas latency-table -----------------------------------------------------------------------------
def _table_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--backend", default="ort-cpu", choices=backend_names(),
                        help="engine that runs the INT8 blocks (default: ort-cpu)")
    parser.add_argument("--out", required=True, metavar="LUT", help="latency table YAML to write (e.g. lut.yaml)")
    _measure_arguments(parser)
    parser.add_argument("--restart", action="store_true",
                        help="measure every block again instead of keeping the entries already in --out")


def _table(args: argparse.Namespace) -> int:
    ctx = context(args)
    tic = time.perf_counter()
    table = latency_table(ctx, args.out, backend=args.backend, threads=args.threads, repeats=args.repeats,
                          warmup=args.warmup, restart=args.restart, reporter=RichReporter())
    h, w = ctx.deploy_hw
    print(f"{len(table.entries)} blocks at {h}x{w} on {args.backend} ({args.threads} thread(s)) in "
          f"{time.perf_counter() - tic:.0f} s; wrote {args.out}")
    method = table.method or {}
    if method.get("median_spread") is not None:
        print(f"spread between interleaved rounds: median {100 * method['median_spread']:.1f}%; "
              f"{method['noisy_entries']} of {len(table.spread)} blocks above {100 * method['noisy_spread']:.0f}% "
              "after re-measuring")
    if method.get("too_noisy"):
        check = ["qnas", "latency-check", "--config", args.config, "--lut", args.out]
        if getattr(args, "target", None):
            check += ["--target", args.target]
        print("warning: the table may be too noisy to be meaningful (blocks still noisy after re-measuring, above). "
              f"Check it against whole networks with `{shlex.join(check)}`; if that is poor, close competing "
              "processes and rebuild with --restart", file=sys.stderr)
    return 0


# -- qnas latency-check -----------------------------------------------------------------------------
def _check_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--lut", required=True, metavar="LUT", help="latency table from qnas latency-table")
    parser.add_argument("--samples", type=int_between(2, 10000), default=30, metavar="K",
                        help="random genomes to measure whole (default: 30)")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the genome sampler (default: 0)")
    parser.add_argument("--repeats", type=int_between(1, 10000), default=None, metavar="N",
                        help="timed runs per network (default: the table's)")
    parser.add_argument("--plot", metavar="PNG", default=None,
                        help="scatter plot of predicted vs measured, its JSON beside it (default: beside the table, "
                             "the table's name with _check.png for its suffix, or _check-2.png etc. where an earlier check is)")
    parser.add_argument("--fit-overhead", action="store_true",
                        help="fit the table's overheads to the measured networks, so that its predictions (and ratio "
                             "budgets) refer to whole networks: a constant per network, or a constant plus a term per "
                             "unit where that predicts left-out networks better; refused when it would predict less "
                             "than half of some measured network's latency")
    parser.add_argument("--force-lut", action="store_true", help="use a table measured on another device")
    parser.add_argument("--backend", choices=backend_names(), default=None,
                        help="the runtime to check: --lut must have been measured with it (default: the table's)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object: mape (a fraction), kendall_tau, macs_kendall_tau, samples, "
                             "median_offset_ms, overhead_ms, unit_overhead_ms, predicted_ms, measured_ms, "
                             "block_sums_ms, units; with --fit-overhead fit_loo_mape and fit_model, "
                             "fitted_overhead_ms, fitted_unit_overhead_ms and fitted_mape, or fit_refused")


def _check(args: argparse.Namespace) -> int:
    result = latency_check(context(args), args.lut, samples=args.samples, seed=args.seed, repeats=args.repeats,
                           plot=args.plot, fit_overhead=args.fit_overhead, force=args.force_lut, backend=args.backend,
                           reporter=RichReporter(quiet=args.json))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['samples']} networks: MAPE {result['mape'] * 100:.1f}%, Kendall tau {result['kendall_tau']:.3f} "
          f"(MACs alone: {result['macs_kendall_tau']:.3f}); median measured - predicted "
          f"{result['median_offset_ms']:+.3f} ms; plot {result['plot']}")
    if "fit_refused" in result:
        print(f"warning: not fitted: {result['fit_refused']}", file=sys.stderr)
    elif args.fit_overhead:
        per_unit = (f" and {result['fitted_unit_overhead_ms']:+.3f} ms per unit" if result["fit_model"] == "per unit"
                    else "")
        tried = ", ".join(f"{name} {loo * 100:.1f}%" for name, loo in result["fit_loo_mape"].items() if loo is not None)
        print(f"table overhead set to {result['fitted_overhead_ms']:.3f} ms{per_unit} (MAPE after the fit "
              f"{result['fitted_mape'] * 100:.1f}%; leave-one-out MAPE by model: {tried or 'too few networks'})")
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
