"""``qnas search``: evolution (or the random control) under BitOps and INT8-latency budgets."""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from qnas.cli.command import Command, config_argument, load
from qnas.cli.runs import bn_images, load_trained, search_val_loader, setup_torch, train_dataset
from qnas.config import Config, config_hash
from qnas.cost import genome_cost
from qnas.cost.latency import LatencyTable
from qnas.errors import QnasError
from qnas.search import Candidate, Constraint, Search, SearchSettings, pareto_front, parse_budget
from qnas.space import Genome, Policy, SearchSpace, atomic_write_text, read_policy, write_policy
from qnas.train import SupernetEvaluator

__all__ = ["SEARCH_COMMANDS", "reference_policy", "reference_policy_path", "file_hash", "model_size_bytes"]

BASELINES = ("uniform_w8a8", "uniform_w6a6", "uniform_w4a4")


def file_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def reference_policy_path(name: str, config_path: str) -> Path:
    """A named policy for relative budgets: a path, or NAME in ./policies or beside the config's repo."""
    candidates = [Path(name), Path("policies") / f"{name}.yaml",
                  Path(config_path).resolve().parent.parent / "policies" / f"{name}.yaml"]
    for path in candidates:
        if path.is_file():
            return path
    raise QnasError(f"reference policy {name!r} not found (looked for {', '.join(str(p) for p in candidates)})")


def reference_policy(name: str, space: SearchSpace, config_path: str) -> Policy:
    return read_policy(reference_policy_path(name, config_path), space)


def _arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--supernet", required=True, metavar="RUN_DIR", help="a finished qnas train run folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="search output folder")
    parser.add_argument("--bitops-budget", metavar="G", default=None,
                        help="BitOps budget at the deployment resolution: GBitOps (e.g. 7.5) or relative to a "
                             "policy (e.g. 0.5x:uniform_w8a8); default: search.bitops_budget")
    parser.add_argument("--latency-budget", metavar="MS", default=None,
                        help="INT8 latency budget from --lut: milliseconds or FACTORx:POLICY; "
                             "default: search.latency_budget")
    parser.add_argument("--lut", metavar="L", default=None, help="latency table (qnas latency-table)")
    parser.add_argument("--force-lut", action="store_true", help="use a table measured on another device")
    parser.add_argument("--strategy", choices=["evolution", "random"], default="evolution",
                        help="evolution (default) or random search with the same number of evaluations (control)")
    parser.add_argument("--seed", type=int, default=None, help="search seed (default: search.seed)")
    parser.add_argument("--resume", action="store_true", help="continue the search in --out after a kill")
    parser.add_argument("--quiet", action="store_true", help="no live table")


def _constraints(args: argparse.Namespace, config: Config, space: SearchSpace,
                 table: LatencyTable | None) -> list[Constraint]:
    spec, hw = config.space, (config.deploy.height, config.deploy.width)

    def bitops(g: Genome) -> float:
        return float(genome_cost(spec, g, *hw).bitops)

    constraints = []
    text = args.bitops_budget or config.search.bitops_budget
    if text:
        budget = parse_budget(text, "bitops", lambda n: bitops(reference_policy(n, space, args.config).genome), 1e9)
        constraints.append(Constraint("bitops", bitops, budget, "GBitOps", 1e9))
    text = args.latency_budget or config.search.latency_budget
    if text:
        if table is None:
            raise QnasError("a latency budget needs --lut (a table from qnas latency-table)")

        def latency(g: Genome) -> float:
            return table.predict(spec, g)

        budget = parse_budget(text, "latency", lambda n: latency(reference_policy(n, space, args.config).genome))
        constraints.append(Constraint("latency_ms", latency, budget, "ms"))
    return constraints


class _LiveMonitor:
    """A rich live view: evaluation progress and the best genome so far per generation."""

    def __init__(self, total: int, enabled: bool) -> None:
        from rich.console import Group
        from rich.live import Live
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Table

        self.table = Table(title="best so far")
        for name in ("generation", "best mIoU", "GBitOps", "latency ms", "parents' mean mIoU"):
            self.table.add_column(name, justify="right")
        self.progress = Progress(TextColumn("evaluations"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self.task = self.progress.add_task("eval", total=total)
        self.live = Live(Group(self.progress, self.table), refresh_per_second=2) if enabled else None

    def __enter__(self) -> _LiveMonitor:
        if self.live:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.live.stop()

    def evaluated(self, candidate: Candidate, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done)

    def generation_done(self, generation: int, parents: list[Candidate], best: Candidate) -> None:
        mean = sum(p.fitness for p in parents) / len(parents)
        latency = best.metrics.get("latency_ms")
        self.table.add_row(str(generation), f"{best.fitness:.4f}", f"{best.metrics['bitops'] / 1e9:.3f}",
                           "-" if latency is None else f"{latency:.3f}", f"{mean:.4f}")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _search(args: argparse.Namespace) -> int:
    config, space = load(args)
    table = None
    if args.lut:
        from qnas.cli.latency_commands import load_table

        table = load_table(args.lut, force=args.force_lut)
    constraints = _constraints(args, config, space, table)
    s = config.search
    settings = SearchSettings(**asdict(s), strategy=args.strategy)
    if args.seed is not None:
        settings = replace(settings, seed=args.seed)
    out = Path(args.out)
    setup_torch(config)
    supernet, _ = load_trained(config, args.supernet)
    spec, hw = config.space, (config.deploy.height, config.deploy.width)

    def costs(g: Genome) -> dict[str, float]:
        cost = genome_cost(spec, g, *hw)
        metrics = {"bitops": float(cost.bitops), "macs": float(cost.macs)}
        if table is not None:
            metrics["latency_ms"] = table.predict(spec, g)
        return metrics

    evaluator = SupernetEvaluator(supernet, bn_images(config, train_dataset(config)), search_val_loader(config),
                                  spec.num_classes, costs)
    tic = time.perf_counter()
    with _LiveMonitor(settings.evaluations, not args.quiet) as monitor:
        search = Search(space, constraints, evaluator, settings, out, monitor)
        history = search.run(resume=args.resume)
    best = search.best()
    _write_outputs(args, config, space, search, history, constraints, evaluator, settings)
    for c in constraints:
        print(f"{c.name} budget {c.show(c.budget)}: best uses {c.show(best.metrics.get(c.name, c.measure(best.genome)))}")
    print(f"best of {len(search.cache)} evaluated genomes ({len(history)} candidates, "
          f"{time.perf_counter() - tic:.0f} s this invocation): search-val mIoU {best.fitness:.4f}; "
          f"wrote {out / 'best.yaml'}")
    return 0


def _write_outputs(args: argparse.Namespace, config: Config, space: SearchSpace, search: Search,
                   history: list[Candidate], constraints: list[Constraint], evaluator: SupernetEvaluator,
                   settings: SearchSettings) -> None:
    out = Path(args.out)
    best = search.best()
    checkpoint = Path(args.supernet)
    checkpoint = checkpoint / "checkpoint.pt" if checkpoint.is_dir() else checkpoint
    provenance = {
        "searched_by": f"qnas search --strategy {settings.strategy}",
        "config_hash": config_hash(config),
        "supernet_checkpoint": str(checkpoint),
        "supernet_checkpoint_hash": file_hash(checkpoint),
        "budgets": {c.name: c.budget for c in constraints},
        "seed": settings.seed,
        "evaluations": len(search.cache),
    }
    metrics = {k: (round(v, 6) if k in ("miou", "pixel_acc") else v) for k, v in best.metrics.items()}
    name = f"searched_{settings.strategy}_" + "_".join(f"{c.name}{c.show(c.budget).split()[0]}" for c in constraints)
    write_policy(out / "best.yaml", Policy(name.rstrip("_"), best.genome, {"search_val_miou": metrics.pop("miou"),
                                                                           **metrics}, provenance), space)
    rows = [{"index": i, "generation": c.generation, **c.metrics,
             "genome": json.dumps(dict(c.genome), separators=(",", ":"))} for i, c in enumerate(search.cache.values())]
    _write_csv(out / "evaluations.csv", rows)
    fronts: dict[str, list[Candidate]] = {"bitops": pareto_front(history, lambda c: c.metrics["bitops"])}
    if any("latency_ms" in c.metrics for c in history):
        fronts["latency_ms"] = pareto_front(history, lambda c: c.metrics["latency_ms"])
    _write_csv(out / "pareto.csv", [{"front": axis, "generation": c.generation, **c.metrics,
                                     "genome": json.dumps(dict(c.genome), separators=(",", ":"))}
                                    for axis, front in fronts.items() for c in front])
    baselines = {}
    for name in BASELINES:
        try:
            policy = reference_policy(name, space, args.config)
        except QnasError:
            continue
        baselines[name] = evaluator(policy.genome)
    atomic_write_text(out / "baselines.json", json.dumps(baselines, indent=2) + "\n")
    from qnas.cli.plots import search_scatter

    search_scatter(list(search.cache.values()), fronts, baselines, best, out / "search.png",
                   budgets={c.name: c.budget for c in constraints})


# -- qnas compare -------------------------------------------------------------------------------------
def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the runs and compare.md / compare.csv")
    parser.add_argument("--supernet", metavar="RUN_DIR", default=None,
                        help="fine-tune every policy from this supernet (qnas finetune, equal epochs); without it "
                             "every policy is trained from scratch (qnas baseline, equal epochs)")
    parser.add_argument("--lut", metavar="L", default=None, help="latency table: predicted and measured INT8 latency")
    parser.add_argument("--force-lut", action="store_true", help="use a table measured on another device")
    parser.add_argument("--no-baselines", action="store_true", help="do not add the uniform W8A8/W6A6/W4A4 baselines")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("policies", nargs="*", metavar="POLICY", help="policy YAML files (e.g. searched best.yaml)")


def _precision(genome: Genome) -> str:
    wbits = {v for k, v in genome.items() if k.endswith(".wbits")}
    abits = {v for k, v in genome.items() if k.endswith(".abits")}
    if len(wbits) == len(abits) == 1:
        return f"uniform W{wbits.pop()}A{abits.pop()}"
    return "mixed " + "/".join(str(b) for b in sorted(wbits | abits))


def model_size_bytes(config: Config, genome: Genome) -> float:
    """Weights at their bit widths plus a 32-bit scale and bias per output channel (BN folded)."""
    from qnas.space import conv_layers

    total = 0.0
    for layer in conv_layers(config.space, genome, config.deploy.height, config.deploy.width):
        weights = layer.out_channels * (layer.in_channels // layer.groups) * layer.kernel ** 2
        total += weights * layer.wbits / 8 + layer.out_channels * 8
    return total


def _compare(args: argparse.Namespace) -> int:
    from qnas.cli.main import main as qnas_main

    config, space = load(args)
    policies = [read_policy(p, space) for p in args.policies]
    paths = list(args.policies)
    if not args.no_baselines:
        for name in BASELINES:
            path = reference_policy_path(name, args.config)
            policies.append(read_policy(path, space))
            paths.append(str(path))
    if not policies:
        raise QnasError("nothing to compare: give policy files, or leave the uniform baselines on")
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise QnasError(f"policy names must be distinct, got {names}")
    table = None
    if args.lut:
        from qnas.cli.latency_commands import load_table

        table = load_table(args.lut, force=args.force_lut)
    out = Path(args.out)
    rows = []
    for policy, path in zip(policies, paths):
        run = out / "runs" / policy.name
        if not (run / "metrics.json").exists():
            command = (["finetune", "--supernet", args.supernet] if args.supernet else ["baseline"])
            resume = ["--resume"] if (run / "checkpoint.pt").exists() else []
            code = qnas_main([*command, "--config", args.config, "--policy", path, "--out", str(run), *resume,
                              *(["--quiet"] if args.quiet else [])])
            if code:
                raise QnasError(f"training {policy.name} failed (exit {code}); see {run / 'train.log'}")
        metrics = json.loads((run / "metrics.json").read_text())
        row = {"method": policy.name, "precision": _precision(policy.genome), "miou": round(metrics["miou"], 4),
               "gbitops": round(metrics["bitops"] / 1e9, 3), "gmacs": round(metrics["macs"] / 1e9, 4),
               "params_m": round(metrics["params"] / 1e6, 4),
               "size_kb": round(model_size_bytes(config, policy.genome) / 1e3, 1)}
        if table is not None:
            row["latency_pred_ms"] = round(table.predict(config.space, policy.genome), 3)
            row["latency_meas_ms"] = round(_measured_latency(config, run, policy, table), 3)
        rows.append(row)
    _write_csv(out / "compare.csv", rows)
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[k]) for k in header) + " |" for r in rows]
    training = f"fine-tuned from {args.supernet}" if args.supernet else "trained from scratch"
    text = (f"# Comparison ({config.data.dataset}, {training}, equal epochs)\n\n" + "\n".join(lines) + "\n\n"
            f"GBitOps and GMACs at {config.deploy.height}x{config.deploy.width}; size = weights at their bit "
            "widths + 32-bit scale and bias per channel; latency: INT8 onnxruntime (predicted: table sum; "
            "measured: the exported integer model).\n")
    atomic_write_text(out / "compare.md", text)
    print(text)
    return 0


def _measured_latency(config: Config, run: Path, policy: Policy, table: LatencyTable) -> float:
    from qnas.cli.export_commands import export_policy
    from qnas.export.latency import get_backend

    supernet, _ = load_trained(config, run)
    h, w = table.resolution
    model = export_policy(config, supernet, policy.genome, "ort", h, w, bn_images(config, train_dataset(config)))
    backend = get_backend(table.fingerprint.get("backend", "ort-cpu"), int(table.fingerprint.get("threads", 1)))
    method = table.method or {}
    return backend.measure(model, int(method.get("warmup", 5)),
                           int(method.get("repeats", 30))).median_ms


SEARCH_COMMANDS = [
    Command("search", "search a policy under BitOps / INT8-latency budgets",
            "Evolutionary search over architecture and per-layer bit widths (METHOD.md §6), numbers from the "
            "config's search section. Every candidate meets every budget before it is evaluated; fitness is "
            "search-validation mIoU of the cut subnet after BatchNorm recalibration, cached by genome. State is "
            "written after every evaluation and generation; --resume continues after a kill. Writes best.yaml, "
            "evaluations.csv, pareto.csv, baselines.json and search.png to --out.",
            _arguments, _search),
    Command("compare", "fine-tune policies and uniform baselines at equal budget and tabulate them",
            "Train every given policy and the uniform W8A8 / W6A6 / W4A4 baselines with the same epochs "
            "(fine-tuned from --supernet, or from scratch without it), evaluate them, and write the table of "
            "the thesis's Table 4-4 shape (method, precision, mIoU, GBitOps, GMACs, parameters, model size, "
            "predicted and measured INT8 latency) as compare.md and compare.csv. Finished runs are reused.",
            _compare_arguments, _compare),
]
