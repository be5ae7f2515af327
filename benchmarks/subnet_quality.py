"""Issue 3 measurement: how good are subnets cut from a trained supernet?

Evaluates (after BN recalibration, on the validation split) the largest subnet at 8 bits, the
smallest at the lowest bits, N random subnets, and the reference architecture at uniform
W8A8 / W6A6 / W4A4, and prints them beside any standalone baselines given with --baseline.

Usage: python benchmarks/subnet_quality.py --supernet runs/sn [--baseline runs/b8 ...] [--random 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from qnas.config import load_config
from qnas.pipeline import Context, load_trained
from qnas.space import read_policy
from qnas.train import evaluate_subnet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--baseline", nargs="*", default=[], help="baseline / finetune run folders to list")
    parser.add_argument("--random", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ctx = Context(load_config(args.config))
    space, spec = ctx.space, ctx.spec
    supernet, _ = load_trained(ctx.config, args.supernet)
    loader = ctx.loader("val")

    def miou(genome) -> float:
        return evaluate_subnet(supernet, genome, ctx.bn_images, loader, spec.num_classes)["miou"]

    tic = time.perf_counter()
    rows: dict[str, float] = {
        "largest (W8A8)": miou(space.largest()),
        f"smallest (W{min(spec.bits)}A{min(spec.bits)})": miou(space.smallest()),
    }
    for bits in sorted(spec.bits, reverse=True):
        rows[f"reference k3 e6 d3, cut, W{bits}A{bits}"] = miou(space.uniform(bits, 3, 6, 3))
    rng = np.random.default_rng(args.seed)
    randoms = [miou(space.sample(rng)) for _ in range(args.random)]
    rows[f"mean of {args.random} random subnets"] = statistics.mean(randoms)
    rows[f"min / max of {args.random} random"] = (min(randoms), max(randoms))  # type: ignore[assignment]
    for folder in args.baseline:
        metrics = json.loads((Path(folder) / "metrics.json").read_text())
        policy = read_policy(Path(folder) / "policy.yaml", space)
        kind = "fine-tuned from the supernet" if "finetune" in policy.provenance else "standalone"
        rows[f"{kind} {policy.name} ({folder})"] = metrics["miou"]
    width = max(len(k) for k in rows)
    for name, value in rows.items():
        shown = f"{value[0]:.4f} / {value[1]:.4f}" if isinstance(value, tuple) else f"{value:.4f}"
        print(f"{name:<{width}}  mIoU {shown}")
    print(f"({time.perf_counter() - tic:.0f} s for {len(rows) - 2 + args.random} evaluations)")
    if args.json:
        Path(args.json).write_text(json.dumps({**rows, "random": randoms}, indent=2) + "\n")


if __name__ == "__main__":
    main()
