"""Issue 17 measurement: SqueezeNAS's differentiable search (strategy gumbel) against evolution, the time
pruning saves, and SqueezeNAS's MACs-vs-latency experiment on this space.

Parts (``--parts``, comma-separated):

- ``bitops``: for each seed k, an evolution search and a gumbel search (seed k) under the BitOps budget
  (``--bitops-budget``, default 0.5x:uniform_w8a8), each timed; both winners fine-tuned with seed k. The table
  gives wall time, search-val mIoU and fine-tuned mIoU (mean ± std over seeds) and Welch's interval of the
  difference. Equal wall time: evolution evaluates 96 genomes (population 16, 8 + 8 children, 6 generations)
  and ``--steps`` is set so that a gumbel search takes about as long; both times are reported.
- ``latency``: the same under a latency budget from ``--lut`` alone, without the config's BitOps budget
  (``--latency-budget``, default 0.8x:uniform_w8a8: the
  default table gives the smallest genome 0.63x of W8A8's latency, so 0.6x is out of reach).
- ``pruning``: the gumbel search of seed 0 under the BitOps budget again without pruning: the seconds of
  its steps against the pruned search's, and whether both end on the same genome.
- ``proxy`` (SqueezeNAS §5): a gumbel search penalizing MACs (no budget at all, ``search.gumbel.alpha``), then
  one under a latency budget alone equal to the MACs winner's predicted latency; both fine-tuned (seed 0) and their
  exported files measured on the table's runtime (as ``qnas compare --lut`` does); the table gives MACs,
  predicted and measured latency and mIoU.

Usage: python benchmarks/differentiable_search.py --supernet RUN/supernet --lut RUN/lut.yaml --out DIR
       [--seeds 3] [--steps 150] [--parts bitops,latency,pruning,proxy] [--out-md F.md]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from qnas.cost import genome_cost
from qnas.cost.latency import LatencyTable
from qnas.pipeline import Context, compare, search
from qnas.pipeline.gumbel import LOG
from qnas.pipeline.searching import train_seed_run
from qnas.stats import summarize, welch_difference
from search_context import evolution_context


def _timed_search(ctx: Context, args, folder: Path, strategy: str, seed: int, **budgets):
    """The search's best policy and its wall time (kept in the folder, so a rerun reuses a finished search)."""
    record = folder / "wall_seconds.json"
    if (folder / "best.yaml").exists() and record.exists():
        from qnas.space import read_policy
        return read_policy(folder / "best.yaml", ctx.space), json.loads(record.read_text())["seconds"]
    tic = time.perf_counter()
    result = search(ctx, args.supernet, folder, strategy=strategy, seed=seed, lut=args.lut,
                    resume=(folder / "state.json").exists() or (folder / "gumbel_state.pt").exists(), **budgets)
    seconds = time.perf_counter() - tic
    record.write_text(json.dumps({"seconds": seconds}))
    return result.best, seconds


def _finetuned(ctx: Context, args, out: Path, policy, name: str, k: int) -> float:
    run = train_seed_run(ctx, out, replace(policy, name=name), k, args.supernet)
    return json.loads((run / "metrics.json").read_text())["miou"]


def _versus(ctx: Context, args, out: Path, label: str, budgets: dict) -> list[str]:
    rows = {"evolution": [], "gumbel": []}
    for k in range(args.seeds):
        for strategy in ("evolution", "gumbel"):
            policy, seconds = _timed_search(ctx, args, out / f"{strategy}_seed{k}", strategy, k, **budgets)
            miou = _finetuned(ctx, args, out / "finetune", policy, f"{strategy}_seed{k}", k)
            cost = genome_cost(ctx.spec, policy.genome, *ctx.deploy_hw)
            rows[strategy].append((seconds, policy.metrics["search_val_miou"], miou, cost.bitops / 1e9))
            print(f"{label} {strategy} seed {k}: {seconds:.0f} s, search-val {policy.metrics['search_val_miou']:.4f}, "
                  f"fine-tuned {miou:.4f}, {cost.bitops / 1e9:.3f} GBitOps", flush=True)
    lines = [f"### Under {label} ({args.seeds} seeds; search seed k and fine-tuning seed k)", "",
             "| strategy | wall time per search (s, mean) | search-val mIoU | fine-tuned mIoU (mean ± std) | GBitOps per seed | fine-tuned per seed |",
             "|---|---|---|---|---|---|"]
    for strategy, values in rows.items():
        t, sv, ft, gb = zip(*values)
        s = summarize([100 * v for v in ft])
        lines.append(f"| {strategy} | {sum(t) / len(t):.0f} | {100 * sum(sv) / len(sv):.2f} | {s.mean:.2f} ± {s.std:.2f} | "
                     f"{', '.join(f'{v:.3f}' for v in gb)} | {', '.join(f'{100 * v:.2f}' for v in ft)} |")
    diff = welch_difference([v[2] for v in rows["gumbel"]], [v[2] for v in rows["evolution"]])
    lines += ["", f"gumbel - evolution, fine-tuned mIoU: {diff.show()} points (Welch 95%)", ""]
    return lines


def _step_seconds(folder: Path) -> float:
    return sum(json.loads(line)["seconds"] for line in (folder / LOG).read_text().splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--lut", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--bitops-budget", default="0.5x:uniform_w8a8")
    parser.add_argument("--latency-budget", default="0.8x:uniform_w8a8")
    parser.add_argument("--parts", default="bitops,latency,pruning,proxy")
    parser.add_argument("--out-md", default=None, help="also write the tables as Markdown here")
    args = parser.parse_args()
    parts = args.parts.split(",")
    ctx = evolution_context(args.config, gumbel=dict(steps=args.steps))
    out = Path(args.out)
    lines = [f"`python benchmarks/differentiable_search.py --supernet {args.supernet} --lut {args.lut} --out {args.out} "
             f"--seeds {args.seeds} --steps {args.steps} --parts {args.parts}` (config `{args.config}`)", ""]
    if "bitops" in parts:
        lines += _versus(ctx, args, out / "bitops", f"the BitOps budget {args.bitops_budget}",
                         {"bitops_budget": args.bitops_budget})
    if "latency" in parts:
        lines += _versus(evolution_context(args.config, keep_budgets=False, gumbel=dict(steps=args.steps)), args, out / "latency",
                         f"the latency budget {args.latency_budget} (alone)",
                         {"latency_budget": args.latency_budget})
    if "pruning" in parts:
        pruned = out / "bitops" / "gumbel_seed0"
        _timed_search(ctx, args, pruned, "gumbel", 0, bitops_budget=args.bitops_budget)
        unpruned = out / "pruning" / "gumbel_seed0_unpruned"
        _timed_search(evolution_context(args.config, gumbel=dict(steps=args.steps, prune_below=0.0)), args, unpruned, "gumbel", 0,
                      bitops_budget=args.bitops_budget)
        a, b = _step_seconds(pruned), _step_seconds(unpruned)
        last = json.loads((pruned / LOG).read_text().splitlines()[-1])
        same = (pruned / "best.yaml").read_text().split("genome:")[1] == (unpruned / "best.yaml").read_text().split("genome:")[1]
        lines += ["### Pruning (seed 0, BitOps budget)", "",
                  f"- steps with pruning at 0.5%: {a:.0f} s; without: {b:.0f} s ({b / a:.2f}x); live choices at the end "
                  f"{last['live_choices']} of {sum(len(v) for v in last['probs'].values())}; same final genome: {same}", ""]
    if "proxy" in parts:
        macs = evolution_context(args.config, keep_budgets=False, gumbel=dict(steps=args.steps, cost="macs"))
        latency = evolution_context(args.config, keep_budgets=False, gumbel=dict(steps=args.steps))
        mac_policy, _ = _timed_search(macs, args, out / "proxy" / "gumbel_macs", "gumbel", 0)
        table = LatencyTable.read(args.lut)
        predicted = table.predict(ctx.spec, mac_policy.genome)
        lat_policy, _ = _timed_search(latency, args, out / "proxy" / "gumbel_latency", "gumbel", 0,
                                      latency_budget=f"{predicted:.6f}")
        rows = compare(latency, out / "proxy" / "compare",
                       [replace(mac_policy, name="squeezenas_mac"), replace(lat_policy, name="squeezenas_lat")],
                       supernet_run=args.supernet, lut=args.lut, baselines=False, seeds=1)
        lines += ["### MACs as the cost against latency as the cost (SqueezeNAS §5; seed 0, fine-tuned)", "",
                  "| policy | GMACs | GBitOps | predicted latency (ms) | measured latency (ms) | mIoU |", "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['method']} | {r['gmacs']} | {r['gbitops']} | {r.get('latency_pred_ms', '')} | "
                         f"{r.get('latency_meas_ms', '')} | {100 * r['miou']:.2f} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out_md:
        Path(args.out_md).write_text(text + "\n")


if __name__ == "__main__":
    main()
