"""``qnas run``: the whole pipeline on one config, each stage skipped when its output is complete."""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Callable
from pathlib import Path

from qnas.cli.command import Command, config_argument, load
from qnas.config import config_hash
from qnas.cost.latency import LatencyTable
from qnas.errors import QnasError
from qnas.space import atomic_write_text, read_policy
from qnas.train import load_checkpoint

__all__ = ["RUN_COMMANDS"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="run folder (default: runs/<config name>); every stage writes below it")
    parser.add_argument("--resume", action="store_true",
                        help="continue a run folder: finished stages are skipped, interrupted ones resumed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars from the stages")


class _Pipeline:
    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        self.args, self.out = args, out
        self.times: dict[str, float] = {}
        self.skipped: list[str] = []

    def call(self, argv: list[str]) -> None:
        from qnas.cli.main import main

        code = main([*argv, "--config", self.args.config])
        if code:
            raise QnasError(f"stage command `qnas {' '.join(argv)}` failed with exit code {code}")

    def stage(self, name: str, done: Callable[[], bool], run: Callable[[], None]) -> None:
        from rich.console import Console

        console = Console()
        if done():
            self.skipped.append(name)
            console.print(f"[green]✓[/] {name}: already complete, skipped")
            return
        console.rule(f"{name}")
        tic = time.perf_counter()
        run()
        self.times[name] = time.perf_counter() - tic
        console.print(f"[green]✓[/] {name}: {self.times[name]:.0f} s")


def _finished(checkpoint: Path) -> bool:
    try:
        return bool(load_checkpoint(checkpoint).get("finished"))
    except QnasError:
        return False


def _table_complete(path: Path, spec) -> bool:
    try:
        return path.exists() and not LatencyTable.read(path).missing(spec)
    except QnasError:
        return False


def _search_done(folder: Path, generations: int) -> bool:
    state = folder / "state.json"
    return (folder / "best.yaml").exists() and state.exists() and \
        json.loads(state.read_text()).get("generation") == generations


def _run(args: argparse.Namespace) -> int:
    config, space = load(args)
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise QnasError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    quiet = ["--quiet"] if args.quiet else []
    p = _Pipeline(args, out)
    sn, lut, search, cmp, export = out / "supernet", out / "lut.yaml", out / "search", out / "compare", out / "export"
    tic = time.perf_counter()

    p.stage("train supernet", lambda: _finished(sn / "checkpoint.pt"),
            lambda: p.call(["train", "--out", str(sn), *(["--resume"] if (sn / "checkpoint.pt").exists() else []),
                            *quiet]))
    p.stage("latency table", lambda: _table_complete(lut, config.space),
            lambda: p.call(["latency-table", "--out", str(lut)]))
    p.stage("latency check", lambda: (out / "lut_check.json").exists(),
            lambda: p.call(["latency-check", "--lut", str(lut), "--samples", "30", "--plot",
                            str(out / "lut_check.png"), "--json"]))
    budgets = []
    if config.search.bitops_budget:
        budgets += ["--bitops-budget", config.search.bitops_budget]
    if config.search.latency_budget:
        budgets += ["--latency-budget", config.search.latency_budget]
    p.stage("search", lambda: _search_done(search, config.search.generations),
            lambda: p.call(["search", "--supernet", str(sn), "--lut", str(lut), "--out", str(search), *budgets,
                            *(["--resume"] if (search / "state.json").exists() else []), *quiet]))
    best = search / "best.yaml"
    policy = read_policy(best, space)
    p.stage("fine-tune and compare", lambda: (cmp / "compare.md").exists(),
            lambda: p.call(["compare", "--supernet", str(sn), "--lut", str(lut), "--out", str(cmp), *quiet,
                            str(best)]))
    files = {"qonnx": export / f"{policy.name}_qonnx.onnx", "ort": export / f"{policy.name}_int8.onnx",
             "trt": export / f"{policy.name}_trt_qdq.onnx", "onnx-fp32": export / f"{policy.name}_fp32.onnx"}
    for fmt, path in files.items():
        p.stage(f"export {fmt}", path.exists,
                lambda fmt=fmt, path=path: p.call(["export", "--checkpoint", str(cmp / "runs" / policy.name),
                                                   "--policy", str(best), "--format", fmt, "--out", str(path)]))
    _report(config, out, policy, files, p, time.perf_counter() - tic)
    print(f"report: {out / 'report.md'}")
    return 0


def _policy_summary(config, genome) -> str:
    """The searched network in a few lines: architecture per stage and where its MACs run at which bits."""
    from collections import Counter
    from itertools import groupby

    from qnas.space import conv_layers, mbconv_blocks

    spec = config.space
    stages = []
    for s, stage in groupby(mbconv_blocks(spec, genome), key=lambda b: b.stage):
        blocks = [f"k{b.kernel} e{b.expand}" for b in stage]
        stages.append(f"stage {s}: depth {len(blocks)} ({', '.join(blocks)})")
    layers = conv_layers(spec, genome, config.deploy.height, config.deploy.width)
    macs = Counter()
    for layer in layers:
        macs[(layer.wbits, layer.abits)] += layer.macs
    total = sum(macs.values())
    shares = ", ".join(f"W{w}A{a} {100 * m / total:.0f}%" for (w, a), m in sorted(macs.items(), key=lambda kv: -kv[1]))
    return "Architecture: " + "; ".join(stages) + f".\n\nShare of MACs by bit widths: {shares}."


def _report(config, out: Path, policy, files: dict[str, Path], p: _Pipeline, seconds: float) -> None:
    with open(out / "compare" / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    check = json.loads((out / "lut_check.json").read_text())
    header = ["method", "precision", "miou", "gbitops", "gmacs", "params_m", "size_kb", "latency_pred_ms",
              "latency_meas_ms"]
    header = [h for h in header if h in rows[0]]
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(r[h] for h in header) + " |" for r in rows]
    stages = "\n".join(f"| {name} | {sec:.0f} |" for name, sec in p.times.items())
    exported = "\n".join(f"- `{fmt}`: [{path.name}](export/{path.name}) ({path.stat().st_size / 1e6:.2f} MB)"
                         for fmt, path in files.items())
    text = f"""# qnas run: {config.data.dataset}

Config `{p.args.config}` (hash `{config_hash(config)}`), run folder `{out}`.

## Comparison (every policy fine-tuned from the supernet with the same epochs)

{chr(10).join(table)}

GBitOps and GMACs at {config.deploy.height}x{config.deploy.width}. mIoU on the validation split.

## Searched policy

[`search/best.yaml`](search/best.yaml): `{policy.name}`, budgets {json.dumps(policy.provenance.get("budgets"))}.

{_policy_summary(config, policy.genome)}

![search](search/search.png)

## Latency table

{check["samples"]} whole networks measured against the table's prediction: MAPE {check["mape"] * 100:.1f}%,
Kendall tau {check["kendall_tau"]:.3f} (MACs alone: {check["macs_kendall_tau"]:.3f}).

![latency](lut_check.png)

## Exported files

{exported}

## Stages run by this invocation ({seconds:.0f} s in all; skipped: {", ".join(p.skipped) or "none"})

| stage | seconds |
|---|---|
{stages}
"""
    atomic_write_text(out / "report.md", text)


RUN_COMMANDS = [
    Command("run", "the whole pipeline on the embedded default (or any config)",
            "Train the supernet, measure the latency table and check it, search under the config's budgets, "
            "fine-tune the winner and the uniform baselines at equal budget, export the winner (qonnx, ort, trt, onnx-fp32) "
            "and write report.md. Each stage is skipped when its output is already complete, so a rerun with "
            "--resume after a crash continues where it stopped.",
            _arguments, _run),
]
