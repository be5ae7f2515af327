"""Issue 18, point 4: FasterSeg's genes (zoomed blocks, searchable head branches) measured by the runtime and
by search.

Parts (``--parts``, comma-separated):

- ``latency``: every MBConv block shape of ``--config``'s space at the deployment resolution, plain and zoomed
  (its depthwise conv at half resolution), as the latency table's integer unit graphs; each pair timed side by
  side on each ``--backends`` runtime (1 thread), ``--rounds`` interleaved rounds of ``--repeats`` runs, the
  medians of the round medians compared. The table gives the zoomed/plain latency ratio per block shape next to
  the MACs ratio: does the runtime turn the zoomed block's 4x fewer depthwise MACs into speed?
- ``search``: for each seed k, an evolution search (96 evaluations, seed k) on ``--supernet`` (trained on the
  config's space, with the new genes) and on ``--plain-supernet`` (trained on the space without them), under
  the BitOps budget and under the latency budget (``--lut``, each alone), each winner fine-tuned with seed k;
  mean ± std of the fine-tuned mIoU, Welch's interval of the difference, and what the winners use (zoomed
  blocks, head branches).

Usage: python benchmarks/fasterseg_space.py --config configs/digits-fasterseg.yaml --parts latency
       python benchmarks/fasterseg_space.py --parts search --supernet RUN/supernet --plain-supernet RUN0/supernet
              --lut LUT --out DIR [--seeds 3] [--plain-config configs/digits.yaml]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from qnas.config import load_config
from qnas.cost import genome_cost
from qnas.export.latency import get_backend
from qnas.export.network import RandomLayers, unit_graph
from qnas.pipeline import Context, search
from qnas.pipeline.searching import train_seed_run
from qnas.space import read_policy, space_units
from qnas.stats import summarize, welch_difference
from search_context import evolution_context

def _latency(args) -> list[str]:
    cfg = load_config(args.config)
    spec = replace(cfg.space, zoom=(0, 1))
    hw = (cfg.deploy.height, cfg.deploy.width)
    units = {unit.key: (unit, plan) for unit, plan in space_units(spec, *hw)}
    pairs = [(units[key[:-3]], units[key]) for key in units if key.endswith(" z1")]
    lines = [f"`python benchmarks/fasterseg_space.py --config {args.config} --parts latency --rounds {args.rounds} "
             f"--repeats {args.repeats} --backends {args.backends}` ({hw[0]}x{hw[1]}, 1 thread, {args.rounds} "
             f"interleaved rounds of {args.repeats} runs per graph)", ""]
    for name in args.backends.split(","):
        backend = get_backend(name, 1)
        lines += [f"#### {name}", "", "| block | plain (ms) | zoomed (ms) | zoomed / plain latency | zoomed / plain MACs |",
                  "|---|---|---|---|---|"]
        ratios = []
        for i, ((plain, plain_plan), (zoomed, zoomed_plan)) in enumerate(pairs):
            models = [unit_graph(p, u.label, RandomLayers(i), backend.writer).model()
                      for u, p in ((plain, plain_plan), (zoomed, zoomed_plan))]
            for model, unit in zip(models, (plain, zoomed)):
                backend.assert_integer(model, unit.key)
            rounds = [[], []]
            for _ in range(args.rounds):
                for side, model in enumerate(models):
                    rounds[side].append(backend.measure(model, 3, args.repeats).median_ms)
            a, b = statistics.median(rounds[0]), statistics.median(rounds[1])
            macs = [sum(o.macs for o in p.convs() if o.unit == u.label)
                    for u, p in ((plain, plain_plan), (zoomed, zoomed_plan))]
            ratios.append(b / a)
            lines.append(f"| `{plain.key}` | {a:.3f} | {b:.3f} | {b / a:.2f} | {macs[1] / macs[0]:.2f} |")
            print(name, plain.key, f"{a:.3f} {b:.3f} {b / a:.2f}", flush=True)
        lines += ["", f"{name}: median zoomed/plain latency ratio {statistics.median(ratios):.2f} "
                      f"(range {min(ratios):.2f}-{max(ratios):.2f}) over {len(ratios)} block shapes", ""]
    return lines


def _searched(ctx: Context, supernet: str, lut: str, folder: Path, seed: int, budgets: dict):
    if not (folder / "best.yaml").exists():
        tic = time.perf_counter()
        search(ctx, supernet, folder, strategy="evolution", seed=seed, lut=lut,
               resume=(folder / "state.json").exists(), **budgets)
        (folder / "wall_seconds.json").write_text(json.dumps({"seconds": time.perf_counter() - tic}))
    return read_policy(folder / "best.yaml", ctx.space)


def _uses(genome) -> str:
    """How many blocks are zoomed (of those with a 3x3 and a 5x5 kernel) and which stages the head fuses."""
    blocks = [label[:-2] for label in genome if label.endswith(".k")]
    zoomed = {k: sum(1 for b in blocks if genome[f"{b}.k"] == k and genome.get(f"{b}.zoom")) for k in (3, 5)}
    total = {k: sum(1 for b in blocks if genome[f"{b}.k"] == k) for k in (3, 5)}
    mask = genome.get("head.branches")
    stages = "all" if mask is None else "+".join(f"s{s}" for s in range(1, 4) if mask >> (s - 1) & 1)
    return f"zoomed k3 {zoomed[3]}/{total[3]}, k5 {zoomed[5]}/{total[5]}; head {stages}"


def _search(args) -> list[str]:
    spaces = {"with": (evolution_context(args.config, keep_budgets=False), args.supernet),
              "without": (evolution_context(args.plain_config, keep_budgets=False), args.plain_supernet)}
    budgets = {"BitOps 0.5x:uniform_w8a8": {"bitops_budget": args.bitops_budget},
               f"latency {args.latency_budget}": {"latency_budget": args.latency_budget}}
    out = Path(args.out)
    lines = [f"`python benchmarks/fasterseg_space.py --parts search --config {args.config} --supernet {args.supernet} "
             f"--plain-config {args.plain_config} --plain-supernet {args.plain_supernet} --lut {args.lut} --out {args.out} "
             f"--seeds {args.seeds}` (evolution, 96 evaluations per search; search seed k, fine-tuning seed k)", ""]
    for label, budget in budgets.items():
        key = next(iter(budget))
        results = {}
        for name, (ctx, supernet) in spaces.items():
            rows = []
            for k in range(args.seeds):
                folder = out / name / key / f"evolution_seed{k}"
                policy = _searched(ctx, supernet, args.lut, folder, k, budget)
                run = train_seed_run(ctx, out / name / key / "finetune", replace(policy, name=f"evolution_seed{k}"), k,
                                     supernet)
                miou = json.loads((run / "metrics.json").read_text())["miou"]
                gbitops = genome_cost(ctx.spec, policy.genome, *ctx.deploy_hw).bitops / 1e9
                rows.append((miou, gbitops, _uses(policy.genome), policy.metrics["search_val_miou"]))
                print(label, name, k, rows[-1], flush=True)
            results[name] = rows
        lines += [f"### Under the {label} budget", "",
                  "| space | fine-tuned mIoU (mean ± std) | per seed | GBitOps per seed | search-val mIoU per seed | winners use |",
                  "|---|---|---|---|---|---|"]
        for name, rows in results.items():
            s = summarize([100 * r[0] for r in rows])
            lines.append(f"| {name} the new genes | {s.mean:.2f} ± {s.std:.2f} | {', '.join(f'{100 * r[0]:.2f}' for r in rows)} | "
                         f"{', '.join(f'{r[1]:.3f}' for r in rows)} | {', '.join(f'{100 * r[3]:.2f}' for r in rows)} | "
                         f"{'; '.join(r[2] for r in rows)} |")
        diff = welch_difference([r[0] for r in results["with"]], [r[0] for r in results["without"]])
        lines += ["", f"with - without, fine-tuned mIoU: {diff.show()} points (Welch 95%)", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits-fasterseg.yaml")
    parser.add_argument("--plain-config", default="configs/digits.yaml")
    parser.add_argument("--parts", default="latency")
    parser.add_argument("--backends", default="ort-cpu,ov-cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--supernet")
    parser.add_argument("--plain-supernet")
    parser.add_argument("--lut")
    parser.add_argument("--out")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bitops-budget", default="0.5x:uniform_w8a8")
    parser.add_argument("--latency-budget", default="0.8x:uniform_w8a8")
    parser.add_argument("--out-md", default=None)
    args = parser.parse_args()
    lines = []
    if "latency" in args.parts.split(","):
        lines += _latency(args)
    if "search" in args.parts.split(","):
        lines += _search(args)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out_md:
        Path(args.out_md).write_text(text)


if __name__ == "__main__":
    main()
