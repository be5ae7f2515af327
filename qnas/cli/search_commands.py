"""``qnas search`` (a registered strategy under BitOps / INT8-latency budgets) and ``qnas compare``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from qnas.cli.command import Command, config_argument, context, finetune_arguments, int_between, seed_int
from qnas.cli.progress import RichReporter
from qnas.export.latency import backend_names
from qnas.pipeline import compare, is_main_process, search, sensitivity
from qnas.search import STRATEGIES
from qnas.space import read_policy

__all__ = ["SEARCH_COMMANDS"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--supernet", required=True, metavar="RUN_DIR", help="a finished qnas train run folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="search output folder")
    parser.add_argument("--bitops-budget", metavar="G", default=None,
                        help="BitOps budget at the deployment resolution: GBitOps (e.g. 7.5) or relative to a "
                             "policy (e.g. 0.5x:uniform_w8a8), or none; default: search.bitops_budget")
    parser.add_argument("--latency-budget", metavar="MS", default=None,
                        help="INT8 latency budget from --lut: milliseconds or FACTORx:POLICY, or none; "
                             "default: search.latency_budget")
    parser.add_argument("--memory-budget", metavar="KIB", default=None,
                        help="on-chip weight memory budget (weights at their bit widths plus a 32-bit scale and bias "
                             "per channel, what an FPGA stores): KiB (e.g. 96) or relative to a policy (e.g. "
                             "0.4x:uniform_w8a8), or none; default: search.memory_budget")
    parser.add_argument("--lut", metavar="L", default=None, help="latency table (qnas latency-table)")
    parser.add_argument("--force-lut", action="store_true", help="use a table measured on another device")
    parser.add_argument("--backend", choices=backend_names(), default=None,
                        help="the runtime the latency budget is for: --lut must have been measured with it")
    parser.add_argument("--strategy", choices=sorted(STRATEGIES), default=None,
                        help="evolution (the thesis's), nsga2 (multi-objective: the whole Pareto front of mIoU against "
                             "BitOps and latency in one search), random (the control, as many evaluations) or gumbel "
                             "(SqueezeNAS's differentiable search: Gumbel-softmax over every gene, cross-entropy plus "
                             "the expected cost, the cost weight grown while the most probable genome misses a budget; "
                             "settings in search.gumbel; writes gumbel.jsonl and probabilities.png); "
                             "default: search.strategy")
    parser.add_argument("--seed", type=seed_int, default=None, help="search seed (default: search.seed)")
    parser.add_argument("--architecture", metavar="POLICY", default=None,
                        help="search the bit widths alone: keep every shape gene (kernels, widths, depths, zoom, "
                             "branches) of this policy, a file or a name such as uniform_w8a8 (a mixed-precision "
                             "search of a fixed network); not with --strategy gumbel")
    parser.add_argument("--resume", action="store_true", help="continue the search in --out after a kill")
    parser.add_argument("--quiet", action="store_true", help="no live table")


def _search(args: argparse.Namespace) -> int:
    tic = time.perf_counter()
    result = search(context(args), args.supernet, args.out, bitops_budget=args.bitops_budget,
                    latency_budget=args.latency_budget, memory_budget=args.memory_budget, lut=args.lut, force_lut=args.force_lut,
                    strategy=args.strategy, seed=args.seed, resume=args.resume, backend=args.backend,
                    architecture=args.architecture, reporter=RichReporter(args.quiet))
    if not is_main_process():  # under torchrun: rank 0 reports
        return 0
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
    parser.add_argument("--backend", choices=backend_names(), action="append", default=[], metavar="NAME",
                        help="also measure every policy's exported INT8 file on this runtime "
                             f"({', '.join(backend_names())}); repeat for several (column latency_meas_NAME_ms)")
    parser.add_argument("--no-baselines", action="store_true", help="do not add the uniform W8A8/W6A6/W4A4 baselines")
    finetune_arguments(parser)
    parser.add_argument("--seeds", type=int_between(1, 100), default=None, metavar="N",
                        help="train every policy from N seeds (data order) and report mean, std and a 95%% interval; "
                             "default: compare.seeds")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("policies", nargs="*", metavar="POLICY", help="policy YAML files (e.g. searched best.yaml)")


def _compare(args: argparse.Namespace) -> int:
    ctx = context(args)
    policies = [read_policy(p, ctx.space) for p in args.policies]
    compare(ctx, args.out, policies, supernet_run=args.supernet, lut=args.lut, force_lut=args.force_lut,
            baselines=not args.no_baselines, seeds=args.seeds, backends=args.backend, reporter=RichReporter(args.quiet))
    print((Path(args.out) / "compare.md").read_text())
    return 0


# -- qnas sensitivity ---------------------------------------------------------------------------------
def _sensitivity_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--supernet", required=True, metavar="RUN_DIR", help="a finished qnas train run folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for sensitivity.csv / .json / .png")
    parser.add_argument("--policy", metavar="P", default=None,
                        help="the network whose layers drop bits (default: policies/uniform_w8a8.yaml)")
    parser.add_argument("--scenes", type=int_between(1, 10**6), default=100, metavar="N",
                        help="search-validation scenes each variant is evaluated on (default: 100)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _sensitivity(args: argparse.Namespace) -> int:
    ctx = context(args)
    genome = read_policy(args.policy, ctx.space).genome if args.policy else None
    rows = sensitivity(ctx, args.supernet, args.out, genome=genome, scenes=args.scenes,
                       reporter=RichReporter(args.quiet))
    worst = sorted(rows, key=lambda r: r["delta_miou"])[:5]
    print(f"{len(rows)} variants; the costliest drops: " + "; ".join(
        f"{r['layer']} {r['what']} at {r['bits']} bits {100 * r['delta_miou']:+.2f}" for r in worst))
    print(f"wrote {Path(args.out) / 'sensitivity.csv'} and sensitivity.png")
    return 0


SEARCH_COMMANDS = [
    Command("search", "search a policy under BitOps / INT8-latency budgets",
            "Evolutionary search over architecture and per-layer bit widths (METHOD.md §6), numbers from the "
            "config's search section. Every candidate meets every budget before it is evaluated; fitness is "
            "search-validation mIoU of the cut subnet after BatchNorm recalibration, cached by genome. State is "
            "written after every evaluation and generation; --resume continues after a kill. Writes best.yaml, "
            "evaluations.csv, pareto.csv, baselines.json and search.png to --out. Under torchrun --nproc_per_node N "
            "the N processes share each generation's evaluations and find what one process finds with the same "
            "seed; rank 0 writes every file (set train.threads, e.g. 1, so that N processes do not each take "
            "every CPU).",
            _arguments, _search),
    Command("compare", "fine-tune policies and uniform baselines at equal budget and tabulate them",
            "Train every given policy and the uniform W8A8 / W6A6 / W4A4 baselines with the same epochs "
            "(fine-tuned from --supernet, or from scratch without it), evaluate them, and write the table of "
            "the thesis's Table 4-4 shape (method, precision, mIoU, GBitOps, GMACs, parameters, model size, "
            "predicted and measured INT8 latency) as compare.md and compare.csv. Finished runs are reused.",
            _compare_arguments, _compare),
    Command("sensitivity", "per-layer precision sensitivity of a network cut from the supernet",
            "Cut the reference network (policies/uniform_w8a8.yaml, or --policy) from a trained supernet and, for "
            "every quantized layer, drop its weights or its input activations alone to each smaller bit width of "
            "the space; report the search-validation mIoU change of each (sensitivity.csv) and plot it "
            "(sensitivity.png), so that a searched policy's bits can be checked against where they matter.",
            _sensitivity_arguments, _sensitivity),
]
