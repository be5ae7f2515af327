"""Training step time idle and beside one busy single-threaded process, with OpenMP's default wait and
torch's threads (before) and with what the ``qnas`` command chooses (after): the OpenMP wait policy from
the load at start and the idle CPUs' thread count (issue 16, point 5).

Usage: python benchmarks/steady_under_load.py [--rounds 3] [--steps 6]

Each measurement is a fresh process that times ``--steps`` supernet training steps of the default
config (configs/digits.yaml: the sandwich of largest, smallest and a random subnet with in-place
distillation, batch 16 at 64x64, QAT) after one warm-up step, and prints their median:

- before: no choice made: OpenMP's wait policy left to its default (spin a while, then sleep), torch's
  default thread count (one per core);
- after: what the CLI does now: ``import qnas.cli`` measures the load and, where another process keeps a
  CPU busy, sets ``OMP_WAIT_POLICY=PASSIVE`` before torch loads (``qnas.cpus``); the thread count is the
  CPUs idle at start (``qnas.pipeline.threads.idle_threads``).

"busy" runs ``python -c 'while True: pass'`` beside the measurement, started a second before it; "busy
later" starts it from the measuring process once the policy and threads are chosen, before the first step
(a job that starts after ``qnas`` did). Rounds interleave the cases; the table gives each case's median
over rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

WORKER = r"""
import sys, time, statistics
mode, steps, later = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "later"
if mode == "after":
    import qnas.cli  # sets OMP_WAIT_POLICY before torch loads, as the qnas command does
import torch
from qnas.config import load_config
from qnas.data import DigitScenes
from qnas.supernet import build_supernet
from qnas.train import Trainer, supernet_stages
if mode == "after":
    from qnas.pipeline.threads import idle_threads
    torch.set_num_threads(idle_threads())
config = load_config("configs/digits.yaml")
torch.manual_seed(0)
net = build_supernet(config.space)
data = DigitScenes("train", 64, *config.data.train_size, seed=0)
trainer = Trainer(net, supernet_stages(config.train, net.space), config.train, data, seed=0, checkpoint_path="/dev/null")
stage = [s for s in trainer.stages if s.quantize][-1]
net.set_quantization(True)
if later:
    import subprocess
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(1.0)
images = torch.stack([data[i][0] for i in range(config.train.batch_size)])
labels = torch.stack([data[i][1] for i in range(config.train.batch_size)])
times = []
try:
    for i in range(steps + 1):
        trainer.position = trainer.position.__class__(step=i)
        tic = time.perf_counter()
        trainer.step(stage, images, labels, 1e-3)
        times.append(time.perf_counter() - tic)
finally:
    if later:
        spinner.kill()
        spinner.wait()
print(torch.get_num_threads(), statistics.median(times[1:]))
"""


MACHINES = {"idle": "idle", "busy": "one busy process beside it", "later": "one busy process started after it"}


def measure(mode: str, machine: str, steps: int) -> tuple[int, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if machine == "busy" else None
    try:
        if spinner:
            time.sleep(1.0)
        out = subprocess.run([sys.executable, "-c", WORKER, mode, str(steps), machine], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
    finally:
        if spinner:
            spinner.kill()
            spinner.wait()
    return int(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    cases = [(mode, machine) for machine in MACHINES for mode in ("before", "after")]
    results: dict[tuple[str, str], list[float]] = {c: [] for c in cases}
    threads: dict[tuple[str, str], int] = {}
    for r in range(args.rounds):
        for case in cases:
            threads[case], seconds = measure(*case, args.steps)
            results[case].append(seconds)
            print(f"round {r + 1}: {case[0]:6s} {case[1]}: {threads[case]} threads, "
                  f"{seconds * 1000:.0f} ms per step", flush=True)
    print("\n| machine | before: default OpenMP wait, torch's threads | after: the qnas command's choice | "
          "after / before |")
    print("|---|---|---|---|")
    for machine, title in MACHINES.items():
        b, a = (statistics.median(results[(m, machine)]) for m in ("before", "after"))
        print(f"| {title} | {b * 1000:.0f} ms ({threads[('before', machine)]} threads) "
              f"| {a * 1000:.0f} ms ({threads[('after', machine)]} threads) | {a / b:.2f} |")


if __name__ == "__main__":
    main()
