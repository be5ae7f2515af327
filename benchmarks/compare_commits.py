"""Time the hot paths of two commits side by side: interleaved rounds, medians, ratios.

Each commit is checked out in a temporary git worktree; every round runs one fresh subprocess per
commit (alternating which goes first) that times, on the digits config at its training size:

- a QAT training step of the sandwich (largest, smallest, one random subnet; forward, backward, Adam),
- cut + BatchNorm recalibration + evaluation of one subnet on 64 validation scenes,
- building the plan-independent parts once is excluded (supernet construction, data generation).

Usage: python benchmarks/compare_commits.py OLD NEW [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r'''
import json, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
from qnas.config import load_config
from qnas.data import DigitScenes, make_loader
from qnas.space import SearchSpace
from qnas.supernet import build_supernet
from qnas.train import Trainer, evaluate_subnet, supernet_stages
config = load_config("configs/digits.yaml")
space = SearchSpace(config.space)
torch.manual_seed(0)
supernet = build_supernet(config.space)
data = DigitScenes("train", 64, 64, 64, seed=0)
val = make_loader(DigitScenes("val", 64, 64, 64, seed=0), 32, shuffle=False, seed=0)
stages = supernet_stages(config.train, space)
trainer = Trainer(supernet, stages, config.train, data, seed=0, checkpoint_path="/dev/null")
step = getattr(trainer, "step", None) or getattr(trainer, "_step")
stage = stages[1]  # the first QAT phase: a sandwich of three subnets
supernet.set_quantization(True)
images = torch.stack([data[i][0] for i in range(16)]); labels = torch.stack([data[i][1] for i in range(16)])
times = []
for i in range(6):
    tic = time.perf_counter(); step(stage, images, labels, 1e-3); times.append(time.perf_counter() - tic)
train_ms = 1000 * float(np.median(times[1:]))
bn = [images[:8], images[8:]]
genome = space.sample(np.random.default_rng(0))
supernet.eval()
times = []
for i in range(4):
    tic = time.perf_counter(); evaluate_subnet(supernet, genome, bn, val, config.space.num_classes, *([255] if "ignore_index" in evaluate_subnet.__code__.co_varnames else [])); times.append(time.perf_counter() - tic)
eval_ms = 1000 * float(np.median(times[1:]))
print(json.dumps({"train_step_ms": train_ms, "cut_bn_eval_ms": eval_ms}))
'''


def _worktree(rev: str, parent: Path) -> Path:
    path = parent / rev.replace("/", "_")
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(path), rev], cwd=ROOT, check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {args.old: [], args.new: []}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {rev: _worktree(rev, Path(tmp)) for rev in (args.old, args.new)}
        try:
            for r in range(args.rounds):
                order = (args.old, args.new) if r % 2 == 0 else (args.new, args.old)
                for rev in order:
                    done = subprocess.run([sys.executable, "-c", PROBE, str(args.threads)], cwd=trees[rev],
                                          env={"PYTHONPATH": str(trees[rev]), "PATH": "/usr/bin:/bin"},
                                          capture_output=True, text=True, check=True)
                    results[rev].append(json.loads(done.stdout.strip().splitlines()[-1]))
                    print(rev, results[rev][-1], flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    print(f"\n{args.rounds} interleaved rounds, {args.threads} threads, medians:\n")
    print(f"| metric | {args.old} | {args.new} | new / old |\n|---|---|---|---|")
    for key in ("train_step_ms", "cut_bn_eval_ms"):
        old = statistics.median(r[key] for r in results[args.old])
        new = statistics.median(r[key] for r in results[args.new])
        print(f"| {key} | {old:.1f} | {new:.1f} | {new / old:.3f} |")


if __name__ == "__main__":
    main()
