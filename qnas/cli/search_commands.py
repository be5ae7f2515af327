"""``qnas search`` (a registered strategy under BitOps / INT8-latency budgets) and ``qnas compare``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from qnas.cli.command import Command, config_argument, context
from qnas.cli.progress import RichReporter
from qnas.pipeline import compare, search
from qnas.search import STRATEGIES
from qnas.space import read_policy

__all__ = ["SEARCH_COMMANDS"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--supernet", required=True, metavar="RUN_DIR", help="a finished qnas train run folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="search output folder")
    parser.add_argument("--bitops-budget", metavar="G", default=None,
                        help="BitOps budget at the deployment resolution: GBitOps (e.g. 7.5) or relative to a "
                             "policy (e.g. 0.5x:uniform_w8a8); default: search.bitops_budget")
    parser.add_argument("--latency-budget", metavar="MS", default=None,
                        help="INT8 latency budget from --lut: milliseconds or FACTORx:POLICY; "
                             "default: search.latency_budget")
    parser.add_argument("--lut", metavar="L", default=None, help="latency table (qnas latency-table)")
    parser.add_argument("--force-lut", action="store_true", help="use a table measured on another device")
    parser.add_argument("--strategy", choices=sorted(STRATEGIES), default="evolution",
                        help="evolution (default) or random search with the same number of evaluations (control)")
    parser.add_argument("--seed", type=int, default=None, help="search seed (default: search.seed)")
    parser.add_argument("--resume", action="store_true", help="continue the search in --out after a kill")
    parser.add_argument("--quiet", action="store_true", help="no live table")


def _search(args: argparse.Namespace) -> int:
    tic = time.perf_counter()
    result = search(context(args), args.supernet, args.out, bitops_budget=args.bitops_budget,
                    latency_budget=args.latency_budget, lut=args.lut, force_lut=args.force_lut,
                    strategy=args.strategy, seed=args.seed, resume=args.resume, reporter=RichReporter(args.quiet))
    best = result.search.best()
    for c in result.constraints:
        print(f"{c.name} budget {c.show(c.budget)}: best uses {c.show(best.metrics.get(c.name, c.measure(best.genome)))}")
    print(f"best of {len(result.search.cache)} evaluated genomes ({len(result.history)} candidates, "
          f"{time.perf_counter() - tic:.0f} s this invocation): search-val mIoU {best.fitness:.4f}; "
          f"wrote {Path(args.out) / 'best.yaml'}")
    return 0


# -- qnas compare -------------------------------------------------------------------------------------
def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the runs and compare.md / compare.csv")
    parser.add_argument("--supernet", metavar="RUN_DIR", default=None,
                        help="fine-tune every policy from this supernet (qnas finetune, equal epochs); without it "
                             "every policy is trained from scratch (qnas baseline, equal epochs)")
    parser.add_argument("--lut", metavar="L", default=None, help="latency table: predicted and measured INT8 latency")
    parser.add_argument("--force-lut", action="store_true", help="use a table measured on another device")
    parser.add_argument("--no-baselines", action="store_true", help="do not add the uniform W8A8/W6A6/W4A4 baselines")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("policies", nargs="*", metavar="POLICY", help="policy YAML files (e.g. searched best.yaml)")


def _compare(args: argparse.Namespace) -> int:
    ctx = context(args)
    policies = [read_policy(p, ctx.space) for p in args.policies]
    compare(ctx, args.out, policies, supernet_run=args.supernet, lut=args.lut, force_lut=args.force_lut,
            baselines=not args.no_baselines, reporter=RichReporter(args.quiet))
    print((Path(args.out) / "compare.md").read_text())
    return 0


SEARCH_COMMANDS = [
    Command("search", "search a policy under BitOps / INT8-latency budgets",
            "Evolutionary search over architecture and per-layer bit widths (METHOD.md §6), numbers from the "
            "config's search section. Every candidate meets every budget before it is evaluated; fitness is "
            "search-validation mIoU of the cut subnet after BatchNorm recalibration, cached by genome. State is "
            "written after every evaluation and generation; --resume continues after a kill. Writes best.yaml, "
            "evaluations.csv, pareto.csv, baselines.json and search.png to --out.",
            _arguments, _search),
    Command("compare", "fine-tune policies and uniform baselines at equal budget and tabulate them",
            "Train every given policy and the uniform W8A8 / W6A6 / W4A4 baselines with the same epochs "
            "(fine-tuned from --supernet, or from scratch without it), evaluate them, and write the table of "
            "the thesis's Table 4-4 shape (method, precision, mIoU, GBitOps, GMACs, parameters, model size, "
            "predicted and measured INT8 latency) as compare.md and compare.csv. Finished runs are reused.",
            _compare_arguments, _compare),
]
