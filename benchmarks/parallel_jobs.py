"""Independent work in one process with all threads against worker processes of one thread each (train.jobs).

Usage: python benchmarks/parallel_jobs.py --supernet RUN/supernet [--config configs/digits.yaml]
       [--evaluations 16] [--rounds 2] [--threads 2]

Times, on a trained supernet, in interleaved rounds (medians):
- evaluations: that many random subnets cut, BN-recalibrated and scored on the search split (what a
  search generation and the precision sensitivity do);
- fine-tunes: uniform W8A8 and W4A4 fine-tuned one epoch each (what a comparison does);
each with ``train.jobs`` 1 (one process, ``--threads`` threads) and ``--threads`` (one thread per process).
The mIoU of every evaluation must be the same both ways (printed).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from qnas.config import load_config
from qnas.pipeline.context import Context
from qnas.pipeline.parallel import local_map
from qnas.pipeline.runs import load_trained
from qnas.pipeline.searching import compare
from qnas.train.subnet import SupernetEvaluator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--evaluations", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    config = load_config(args.config)
    contexts = {jobs: Context(replace(config, train=replace(config.train, jobs=jobs, threads=args.threads,
                                                            finetune_epochs=1)))
                for jobs in (1, args.threads)}
    ctx = contexts[1]
    ctx.setup_torch()
    supernet = load_trained(ctx.config, args.supernet)[0]
    rng = np.random.default_rng(0)
    genomes = [ctx.space.sample(rng) for _ in range(args.evaluations)]
    evaluator = SupernetEvaluator(supernet, ctx.bn_images, ctx.loader("search"), ctx.num_classes)
    times: dict[tuple[str, int], list[float]] = {}
    mious: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for jobs in (1, args.threads) if r % 2 == 0 else (args.threads, 1):
                torch.set_num_threads(args.threads)
                tic = time.perf_counter()
                mious[jobs] = [m["miou"] for m in local_map(evaluator, genomes, *contexts[jobs].jobs(len(genomes)))]
                times.setdefault(("evaluations", jobs), []).append(time.perf_counter() - tic)
                c = contexts[jobs]
                tic = time.perf_counter()
                compare(c, Path(tmp) / f"r{r}j{jobs}", [c.policy("uniform_w8a8"), c.policy("uniform_w4a4")],
                        supernet_run=args.supernet, baselines=False, seeds=1)
                times.setdefault(("fine-tunes", jobs), []).append(time.perf_counter() - tic)
                print(f"round {r} jobs {jobs}: " + ", ".join(f"{k[0]} {v[-1]:.1f} s" for k, v in times.items()
                                                           if k[1] == jobs), flush=True)
    print(f"\nthe same mIoU both ways: {mious[1] == mious[args.threads]}")
    print(f"\n{args.rounds} interleaved rounds, medians ({args.evaluations} evaluations; 2 fine-tunes of 1 epoch):\n")
    print(f"| work | 1 process, {args.threads} threads | {args.threads} processes, 1 thread | speed-up |")
    print("|---|---|---|---|")
    for work in ("evaluations", "fine-tunes"):
        one, many = (statistics.median(times[(work, j)]) for j in (1, args.threads))
        print(f"| {work} | {one:.1f} s | {many:.1f} s | {one / many:.2f}x |")


if __name__ == "__main__":
    main()
