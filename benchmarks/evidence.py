"""Issue 15 measurement: does the search beat uniform precision beyond seed noise?

From a trained supernet (and its latency table), in ``--out``:

1. one multi-objective search (NSGA-II) under ``--front-budget`` x W8A8 BitOps; from its evaluations
   the best policy within 0.5x, 0.4x, 0.35x, 0.3x W8A8 and within the BitOps of W6A6 and of W4A4;
2. every such policy and the uniform W8A8 / W6A6 / W4A4 fine-tuned from ``--seeds`` seeds
   (``qnas compare``), with mean, std and 95% intervals;
3. evolution, NSGA-II and random search at the 0.5x budget, ``--search-seeds`` seeds each, equal
   evaluations: the best search-validation mIoU of each, mean and std;

and writes ``evidence.md`` with the acceptance figures: the searched policy at 0.5x against W8A8
(difference and Welch 95% interval), the smallest BitOps whose mean mIoU is within one W8A8 standard
deviation of W8A8's mean (and the saving), the front against W6A6 and W4A4 at their BitOps.

Usage: python benchmarks/evidence.py --supernet RUN/supernet --lut RUN/lut.yaml --out runs/evidence
       [--config configs/digits.yaml] [--seeds 3] [--search-seeds 3] [--jobs N]
       [--finetune-epochs E] [--distill W] [--threads T] [--architecture POLICY]

``--jobs N`` runs the fine-tunes and the strategy searches in N processes at once (each on the GPU
when there is one; give each ``--threads``); ``--finetune-epochs`` and ``--distill`` change the
fine-tuning recipe of every policy alike (train.finetune_epochs, train.finetune_distill). ``--architecture
uniform_w8a8`` makes every search a search of the bit widths alone, on that policy's network (``qnas search
--architecture``); a budget no evaluated genome meets then has no winner (the table says so).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

from qnas.config import load_config
from qnas.errors import QnasError
from qnas.pipeline import Context, compare, pick_winners, search
from qnas.pipeline.searching import train_seed_run
from qnas.stats import welch_difference

WINNERS = ("0.5x:uniform_w8a8", "0.4x:uniform_w8a8", "0.35x:uniform_w8a8", "0.3x:uniform_w8a8",
           "1.0x:uniform_w6a6", "1.0x:uniform_w4a4")


def _mious(row: dict) -> list[float]:
    return [float(row[k]) for k in sorted(row) if k.startswith("miou_seed")]


def _context(args: argparse.Namespace) -> Context:
    config = load_config(args.config)
    train = config.train
    train = replace(train, finetune_epochs=args.finetune_epochs or train.finetune_epochs,
                    finetune_distill=train.finetune_distill if args.distill is None else args.distill,
                    threads=args.threads or train.threads)
    return Context(replace(config, train=train), source=args.config)


def _finetune_job(args: argparse.Namespace, policy, out: Path, k: int) -> None:
    train_seed_run(_context(args), out, policy, k, args.supernet)


def _search_job(args: argparse.Namespace, folder: Path, strategy: str, seed: int) -> None:
    if not (folder / "best.yaml").exists():
        search(_context(args), args.supernet, folder, bitops_budget="0.5x:uniform_w8a8", strategy=strategy, seed=seed,
               resume=(folder / "state.json").exists(), architecture=args.architecture)


def _in_parallel(jobs: int, calls: list[tuple]) -> None:
    """Each (function, *arguments) in its own process, ``jobs`` at a time (spawned: safe with CUDA)."""
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        for future in [pool.submit(*call) for call in calls]:
            future.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--lut", default=None)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--search-seeds", type=int, default=3)
    parser.add_argument("--front-budget", default="0.6x:uniform_w8a8",
                        help="the multi-objective search's BitOps budget (covers W6A6's BitOps at 0.57x)")
    parser.add_argument("--no-strategies", action="store_true", help="skip the strategy comparison (part 3)")
    parser.add_argument("--jobs", type=int, default=1, help="fine-tunes and searches run at once")
    parser.add_argument("--finetune-epochs", type=int, default=0, help="default: the config's")
    parser.add_argument("--distill", type=float, default=None, help="default: the config's train.finetune_distill")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process; default: the config's")
    parser.add_argument("--budgets", default=",".join(WINNERS), metavar="B,B",
                        help="the BitOps budgets whose winners are fine-tuned (default: %(default)s); the 0.5x one "
                             "is required")
    parser.add_argument("--architecture", default=None, metavar="POLICY",
                        help="search the bit widths alone, on this policy's network (e.g. uniform_w8a8)")
    args = parser.parse_args()
    budgets = args.budgets.split(",")
    if "0.5x:uniform_w8a8" not in budgets:
        parser.error("--budgets must hold 0.5x:uniform_w8a8 (the acceptance figure)")
    ctx = _context(args)
    out = Path(args.out)
    timings: dict[str, float] = {}

    tic = time.perf_counter()
    front = out / "front_search"
    if not (front / "best.yaml").exists():
        search(ctx, args.supernet, front, bitops_budget=args.front_budget, lut=args.lut, strategy="nsga2",
               resume=(front / "state.json").exists(), architecture=args.architecture)
    winners, missing = [], []
    for budget in budgets:  # a bits-only front may not reach the smallest budgets
        try:
            winners += pick_winners(ctx, front, [budget])
        except QnasError:
            missing.append(budget)
    timings["front search"] = time.perf_counter() - tic

    tic = time.perf_counter()
    if args.jobs > 1:
        policies = winners + [ctx.policy(name) for name in ("uniform_w8a8", "uniform_w6a6", "uniform_w4a4")]
        _in_parallel(args.jobs, [(_finetune_job, args, p, out / "compare", k)
                                 for k in range(args.seeds) for p in policies])
    rows = compare(ctx, out / "compare", winners, supernet_run=args.supernet, lut=args.lut, seeds=args.seeds)
    timings["fine-tuning"] = time.perf_counter() - tic

    tic = time.perf_counter()
    strategies: dict[str, list[float]] = {}
    if args.jobs > 1 and not args.no_strategies:
        _in_parallel(args.jobs, [(_search_job, args, out / "strategies" / f"{strategy}_seed{seed}", strategy, seed)
                                 for strategy in ("evolution", "nsga2", "random") for seed in range(args.search_seeds)])
    for strategy in () if args.no_strategies else ("evolution", "nsga2", "random"):
        for seed in range(args.search_seeds):
            folder = out / "strategies" / f"{strategy}_seed{seed}"
            if not (folder / "best.yaml").exists():
                search(ctx, args.supernet, folder, bitops_budget="0.5x:uniform_w8a8", strategy=strategy, seed=seed,
                       resume=(folder / "state.json").exists(), architecture=args.architecture)
            with open(folder / "evaluations.csv") as f:
                evaluated = list(csv.DictReader(f))
            strategies.setdefault(strategy, []).append(max(float(r["miou"]) for r in evaluated))
    timings["strategy searches"] = time.perf_counter() - tic

    by = {r["method"]: r for r in rows}
    mious = {name: _mious(r) for name, r in by.items()}
    w8, w6, w4 = by["uniform_w8a8"], by["uniform_w6a6"], by["uniform_w4a4"]
    scope = f", bit widths alone on {args.architecture}'s network" if args.architecture else ""
    lines = [f"# Evidence: searched against uniform precision ({ctx.config.data.dataset}, {args.seeds} fine-tuning "
             f"seeds{scope})",
             "", f"Command: `python benchmarks/evidence.py --supernet {args.supernet} --lut {args.lut} --out {args.out} "
             f"--seeds {args.seeds} --search-seeds {args.search_seeds} --jobs {args.jobs}"
             + (f" --finetune-epochs {args.finetune_epochs}" if args.finetune_epochs else "")
             + (f" --distill {args.distill}" if args.distill is not None else "")
             + (f" --architecture {args.architecture}" if args.architecture else "")
             + (" --no-strategies" if args.no_strategies else "")
             + (f" --budgets {args.budgets}" if args.budgets != ",".join(WINNERS) else "")
             + f"` (config `{args.config}`; fine-tuning: {ctx.config.train.finetune_epochs} epochs, distillation "
             f"weight {ctx.config.train.finetune_distill}).", "",
             "## Fine-tuned policies (mIoU in points, mean ± std over seeds; 95% interval of the mean)", "",
             "| policy | GBitOps | x W8A8 | mIoU | 95% interval | seeds |", "|---|---|---|---|---|---|"]
    w8_bitops = float(w8["gbitops"])
    for r in sorted(rows, key=lambda r: -float(r["gbitops"])):
        m = mious[r["method"]]
        lines.append(f"| {r['method']} | {r['gbitops']} | {float(r['gbitops']) / w8_bitops:.2f} | "
                     f"{100 * float(r['miou']):.2f} ± {100 * float(r['miou_std']):.2f} | "
                     f"± {100 * float(r['miou_ci95']):.2f} | {', '.join(f'{100 * v:.2f}' for v in m)} |")
    half = by["searched_0.5x_uniform_w8a8"]
    d = welch_difference(mious[half["method"]], mious["uniform_w8a8"])
    w8_mean, w8_std = float(w8["miou"]), float(w8["miou_std"])
    near = [r for r in rows if not r["method"].startswith("uniform") and float(r["miou"]) >= w8_mean - w8_std]
    smallest = min(near, key=lambda r: float(r["gbitops"])) if near else None
    lines += ["", "## Acceptance figures", "",
              f"- Searched at <= 0.5x W8A8 BitOps ({half['gbitops']} GBitOps, "
              f"{float(half['gbitops']) / w8_bitops:.2f}x): mean mIoU {100 * float(half['miou']):.2f} against W8A8 "
              f"{100 * w8_mean:.2f}; difference {d.show()} points (Welch 95%).",
              ("- Smallest BitOps within one W8A8 std ({:.2f} points) of W8A8's mean: {} at {} GBitOps, a saving of "
               "{:.2f}x (thesis 2.2x).".format(100 * w8_std, smallest["method"], smallest["gbitops"],
                                                w8_bitops / float(smallest["gbitops"]))
               if smallest else f"- No searched policy within one W8A8 std ({100 * w8_std:.2f} points) of W8A8's mean.")]
    if missing:
        lines.append(f"- No evaluated genome within {', '.join(missing)}: no winner there.")
    for uniform, winner in ((w6, "searched_1.0x_uniform_w6a6"), (w4, "searched_1.0x_uniform_w4a4")):
        if winner not in by:
            continue
        r = by[winner]
        diff = welch_difference(mious[winner], mious[uniform["method"]])
        lines.append(f"- At the BitOps of {uniform['method']} ({uniform['gbitops']}): the front's policy "
                     f"({r['gbitops']} GBitOps) {100 * float(r['miou']):.2f} against {100 * float(uniform['miou']):.2f}; "
                     f"difference {diff.show()} points.")
    if strategies:
        evaluations = None
        lines += ["", f"## Search strategies at <= 0.5x W8A8 BitOps ({args.search_seeds} seeds each, equal evaluations)",
                  "", "| strategy | best search-val mIoU, mean ± std | per seed |", "|---|---|---|"]
        for strategy, values in strategies.items():
            std = statistics.stdev(values) if len(values) > 1 else float("nan")
            lines.append(f"| {strategy} | {100 * statistics.mean(values):.2f} ± {100 * std:.2f} | "
                         f"{', '.join(f'{100 * v:.2f}' for v in values)} |")
            state = json.loads((out / "strategies" / f"{strategy}_seed0" / "state.json").read_text())
            evaluations = evaluations or sum(len(g) for g in state["history"])
        lines += ["", f"Each search: {evaluations} candidates."]
    lines += ["", "Wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()) + " (this invocation).", ""]
    text = "\n".join(lines)
    (out / "evidence.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
