"""The same search in one process and shared by two processes under torchrun: wall times and their ratio.

Usage: python benchmarks/search_scaling.py [--supernet RUN] [--config tests/cli/tiny.yaml] [--rounds 2]
       [--population 16 --parents 8 --mutants 8 --crossovers 8 --generations 4] [--search-scenes 48]
       [--work runs/search_scaling]

Without ``--supernet`` a supernet is trained on ``--config`` into WORK/supernet (once). Each round runs,
one after the other, with the config's search replaced by the numbers above and ``data.calib_scenes``
(the search-validation split of DigitScenes) by ``--search-scenes``:

- ``1 process x 2 threads``: ``python benchmarks/search_scaling.py --worker ...`` (train.threads 2),
- ``torchrun 2 processes x 1 thread``: ``python -m torch.distributed.run --standalone --nproc_per_node 2
  benchmarks/search_scaling.py --worker ...`` (train.threads 1 in each),
- ``1 process x 1 thread``: the reference a perfect split halves.

Each worker times ``qnas.pipeline.search`` (data, the supernet, every evaluation, the baselines, the
outputs; rank 0 reports it after the final barrier) and, within it, the generations alone (every
candidate evaluated and logged); the command's wall time (Python, torch and the process group
starting) is printed beside them. It also prints whether the log (evaluations.jsonl) of the torchrun
run and that of the 2-thread run equal the 1-thread run's byte for byte.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
MODES = {  # name: (processes, threads per process)
    "1 process x 2 threads": (1, 2),
    "torchrun 2 processes x 1 thread": (2, 1),
    "1 process x 1 thread": (1, 1),
}


def worker(args: argparse.Namespace) -> None:
    """One search (under torchrun: this rank's part of it); rank 0 writes how long ``search`` took."""
    from qnas.config import load_config
    from qnas.pipeline import Context, Reporter, search
    from qnas.pipeline.distributed import barrier, rank_and_world

    class Timed(Reporter):
        """Times the generations: from the first proposal to the last candidate logged."""

        generations_s = 0.0

        @contextlib.contextmanager
        def searching(self, total: int) -> Iterator[Any]:
            tic = time.perf_counter()
            with super().searching(total) as monitor:
                yield monitor
            self.generations_s = time.perf_counter() - tic

    ctx = Context(load_config(args.config), policy_dirs=[ROOT / "policies"])
    ctx.setup_torch()  # the process group, before the clock starts
    barrier()
    tic = time.perf_counter()
    reporter = Timed()
    search(ctx, args.supernet, args.out, reporter=reporter)  # ends with a barrier: rank 0 has written everything
    seconds = time.perf_counter() - tic
    rank, world = rank_and_world()
    if rank == 0:
        import torch

        Path(args.timing).write_text(json.dumps({"search_s": seconds, "generations_s": reporter.generations_s,
                                                 "world": world, "threads": torch.get_num_threads()}))


def search_config(args: argparse.Namespace, threads: int) -> Path:
    doc = yaml.safe_load(Path(args.config).read_text())
    doc.setdefault("train", {})["threads"] = threads
    doc.setdefault("search", {}).update(population=args.population, parents=args.parents, mutants=args.mutants,
                                        crossovers=args.crossovers, generations=args.generations)
    doc.setdefault("data", {})["calib_scenes"] = args.search_scenes
    path = Path(args.work) / f"search_{threads}thread.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def supernet(args: argparse.Namespace) -> Path:
    if args.supernet:
        return Path(args.supernet)
    run = Path(args.work) / "supernet"
    if not (run / "summary.json").exists():
        print(f"training a supernet on {args.config} into {run}", flush=True)
        subprocess.run([sys.executable, "-m", "qnas.cli.main", "train", "--config", args.config, "--out", str(run),
                        "--quiet"] + (["--resume"] if (run / "checkpoint.pt").exists() else []), cwd=ROOT, check=True)
    return run


def run_mode(args: argparse.Namespace, name: str, net: Path, out: Path) -> dict[str, float]:
    processes, threads = MODES[name]
    shutil.rmtree(out, ignore_errors=True)
    timing = out.parent / f"{out.name}.json"
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
                if processes > 1 else [sys.executable])
    command = launcher + [str(Path(__file__).resolve()), "--worker", "--config", str(search_config(args, threads)),
                          "--supernet", str(net), "--out", str(out), "--timing", str(timing)]
    # OpenMP waits passively, as the qnas command does beside a busy process (qnas.cpus): two processes of
    # torchrun share the cores
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    tic = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - tic
    measured = json.loads(timing.read_text())
    assert measured["world"] == processes and measured["threads"] == threads, measured
    return {"search_s": measured["search_s"], "generations_s": measured["generations_s"], "command_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tests/cli/tiny.yaml")
    parser.add_argument("--supernet", default=None, help="a trained supernet run (default: train one on --config)")
    parser.add_argument("--work", default="runs/search_scaling")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--parents", type=int, default=8)
    parser.add_argument("--mutants", type=int, default=8)
    parser.add_argument("--crossovers", type=int, default=8)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--search-scenes", type=int, default=48, help="data.calib_scenes: the search-validation split")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--timing", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    Path(args.work).mkdir(parents=True, exist_ok=True)
    net = supernet(args)
    times: dict[str, list[dict[str, float]]] = {name: [] for name in MODES}
    for r in range(args.rounds):  # interleaved, so that a change of the machine's load hits every mode alike
        for i, name in enumerate(MODES):
            times[name].append(run_mode(args, name, net, Path(args.work) / f"mode{i}"))
            t = times[name][-1]
            print(f"round {r + 1} {name}: search {t['search_s']:.1f} s (generations {t['generations_s']:.1f} s), "
                  f"command {t['command_s']:.1f} s", flush=True)
    logs = [(Path(args.work) / f"mode{i}" / "evaluations.jsonl").read_bytes() for i in range(len(MODES))]
    evaluations = len(logs[0].splitlines())
    print(f"\n{evaluations} evaluated genomes (+3 uniform baselines); medians of {args.rounds} round(s):")
    def median(name: str, key: str) -> float:
        return statistics.median(t[key] for t in times[name])

    first = next(iter(MODES))
    print(f"| mode | search s (rounds) | search s | generations s (rounds) | generations s | command s | "
          f"search / {first} | generations / {first} |")
    print("|---|---|---|---|---|---|---|---|")
    for name in MODES:
        rounds = {key: ", ".join(f"{t[key]:.1f}" for t in times[name]) for key in ("search_s", "generations_s")}
        print(f"| {name} | {rounds['search_s']} | {median(name, 'search_s'):.1f} | {rounds['generations_s']} | "
              f"{median(name, 'generations_s'):.1f} | {median(name, 'command_s'):.1f} | "
              f"{median(name, 'search_s') / median(first, 'search_s'):.2f} | "
              f"{median(name, 'generations_s') / median(first, 'generations_s'):.2f} |")
    print(f"\nthe torchrun log equals the 1-process 1-thread log: {logs[1] == logs[2]}; "
          f"the 2-thread log equals it: {logs[0] == logs[2]}")


if __name__ == "__main__":
    main()
