"""Search and comparison stages: a policy under budgets, and policies against the uniform baselines."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from qnas.config import config_hash
from qnas.cost.bitops import genome_cost, weight_memory_bits
from qnas.cost.latency import LatencyTable
from qnas.errors import QnasError
from qnas.export.latency import get_backend
from qnas.pipeline.context import Context
from qnas.pipeline.exporting import export_model
from qnas.pipeline.latency import load_table
from qnas.pipeline.plots import search_scatter
from qnas.pipeline.progress import SILENT, Reporter
from qnas.pipeline.runs import checkpoint_file, load_trained
from qnas.pipeline.training import finetune, train_baseline
from qnas.search import Candidate, Constraint, Search, SearchSettings, pareto_front, parse_budget
from qnas.space.genome import Genome
from qnas.space.policy import Policy, atomic_write_text, write_policy
from qnas.train.subnet import SupernetEvaluator, cut_subnet

__all__ = ["BASELINES", "SearchResult", "budget_constraints", "search", "compare", "precision", "safe_name",
           "file_hash", "write_csv"]

BASELINES = ("uniform_w8a8", "uniform_w6a6", "uniform_w4a4")


def file_hash(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def safe_name(name: str) -> str:
    """``name`` as a file name that stays inside its folder: separators and other characters outside
    ``[A-Za-z0-9._-]`` become '_', leading dots are dropped, at most 100 characters, never empty."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:100]
    return cleaned or "policy"


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def budget_constraints(ctx: Context, bitops_budget: str | None, latency_budget: str | None,
                       table: LatencyTable | None) -> list[Constraint]:
    """The constraints of the budgets: GBitOps at the deployment resolution and milliseconds from the
    latency table, each absolute or ``FACTORx:POLICY``."""
    spec, hw = ctx.spec, ctx.deploy_hw

    def bitops(g: Genome) -> float:
        return float(genome_cost(spec, g, *hw).bitops)

    constraints = []
    if bitops_budget:
        budget = parse_budget(bitops_budget, "bitops", lambda n: bitops(ctx.policy(n).genome), 1e9)
        constraints.append(Constraint("bitops", bitops, budget, "GBitOps", 1e9))
    if latency_budget:
        if table is None:
            raise QnasError("a latency budget needs --lut (a table from qnas latency-table)")

        def latency(g: Genome) -> float:
            return table.predict(spec, g)

        budget = parse_budget(latency_budget, "latency", lambda n: latency(ctx.policy(n).genome))
        constraints.append(Constraint("latency_ms", latency, budget, "ms"))
    return constraints


@dataclass
class SearchResult:
    best: Policy
    search: Search
    history: list[Candidate]
    constraints: list[Constraint]


def search(ctx: Context, supernet_run: str | os.PathLike[str], out: str | os.PathLike[str], *,
           bitops_budget: str | None = None, latency_budget: str | None = None,
           lut: str | os.PathLike[str] | None = None, force_lut: bool = False, strategy: str = "evolution",
           seed: int | None = None, resume: bool = False, reporter: Reporter = SILENT) -> SearchResult:
    """Search ``out`` for the best subnet of a trained supernet under the budgets (default: the config's);
    writes best.yaml, evaluations.csv, pareto.csv, baselines.json and search.png."""
    table = load_table(lut, force=force_lut) if lut else None
    constraints = budget_constraints(ctx, bitops_budget or ctx.config.search.bitops_budget,
                                     latency_budget or ctx.config.search.latency_budget, table)
    settings = SearchSettings(**asdict(ctx.config.search), strategy=strategy)
    if seed is not None:
        settings = replace(settings, seed=seed)
    ctx.setup_torch()
    supernet, _ = load_trained(ctx.config, supernet_run)
    spec, hw = ctx.spec, ctx.deploy_hw

    def costs(g: Genome) -> dict[str, float]:
        cost = genome_cost(spec, g, *hw)
        metrics = {"bitops": float(cost.bitops), "macs": float(cost.macs)}
        if table is not None:
            metrics["latency_ms"] = table.predict(spec, g)
        return metrics

    evaluator = SupernetEvaluator(supernet, ctx.bn_images, ctx.loader("search"), ctx.num_classes, costs,
                                  ctx.ignore_index)
    with reporter.searching(settings.evaluations) as monitor:
        run = Search(ctx.space, constraints, evaluator, settings, out, monitor)
        history = run.run(resume=resume)
    best = _write_outputs(ctx, Path(out), supernet_run, run, history, constraints, evaluator, settings)
    return SearchResult(best, run, history, constraints)


def _write_outputs(ctx: Context, out: Path, supernet_run: str | os.PathLike[str], run: Search,
                   history: list[Candidate], constraints: list[Constraint], evaluator: SupernetEvaluator,
                   settings: SearchSettings) -> Policy:
    best = run.best()
    checkpoint = checkpoint_file(supernet_run)
    provenance = {
        "searched_by": f"qnas search --strategy {settings.strategy}",
        "config_hash": config_hash(ctx.config),
        "supernet_checkpoint": str(checkpoint),
        "supernet_checkpoint_hash": file_hash(checkpoint),
        "budgets": {c.name: c.budget for c in constraints},
        "seed": settings.seed,
        "evaluations": len(run.cache),
    }
    metrics = {k: (round(v, 6) if k in ("miou", "pixel_acc") else v) for k, v in best.metrics.items()}
    name = f"searched_{settings.strategy}_" + "_".join(f"{c.name}{c.show(c.budget).split()[0]}" for c in constraints)
    policy = Policy(name.rstrip("_"), best.genome, {"search_val_miou": metrics.pop("miou"), **metrics}, provenance)
    write_policy(out / "best.yaml", policy, ctx.space)
    rows = [{"index": i, "generation": c.generation, **c.metrics,
             "genome": json.dumps(dict(c.genome), separators=(",", ":"))} for i, c in enumerate(run.cache.values())]
    write_csv(out / "evaluations.csv", rows)
    fronts: dict[str, list[Candidate]] = {"bitops": pareto_front(history, lambda c: c.metrics["bitops"])}
    if any("latency_ms" in c.metrics for c in history):
        fronts["latency_ms"] = pareto_front(history, lambda c: c.metrics["latency_ms"])
    write_csv(out / "pareto.csv", [{"front": axis, "generation": c.generation, **c.metrics,
                                    "genome": json.dumps(dict(c.genome), separators=(",", ":"))}
                                   for axis, front in fronts.items() for c in front])
    baselines = {}
    for name in BASELINES:
        try:
            reference = ctx.policy(name)
        except QnasError:
            continue
        baselines[name] = evaluator(reference.genome)
    atomic_write_text(out / "baselines.json", json.dumps(baselines, indent=2) + "\n")
    search_scatter(list(run.cache.values()), fronts, baselines, best, out / "search.png",
                   budgets={c.name: c.budget for c in constraints})
    return policy


# -- compare --------------------------------------------------------------------------------------------------
def precision(genome: Genome) -> str:
    wbits = {v for k, v in genome.items() if k.endswith(".wbits")}
    abits = {v for k, v in genome.items() if k.endswith(".abits")}
    if len(wbits) == len(abits) == 1:
        return f"uniform W{wbits.pop()}A{abits.pop()}"
    return "mixed " + "/".join(str(b) for b in sorted(wbits | abits))


def compare(ctx: Context, out: str | os.PathLike[str], policies: list[Policy], *,
            supernet_run: str | os.PathLike[str] | None = None, lut: str | os.PathLike[str] | None = None,
            force_lut: bool = False, baselines: bool = True, reporter: Reporter = SILENT) -> list[dict[str, Any]]:
    """Train every policy (and the uniform baselines) with equal epochs, fine-tuned from ``supernet_run``
    or from scratch without it; write compare.csv and compare.md (the thesis's Table 4-4 shape)."""
    policies = list(policies) + ([ctx.policy(name) for name in BASELINES] if baselines else [])
    if not policies:
        raise QnasError("nothing to compare: give policy files, or leave the uniform baselines on")
    names = [safe_name(p.name) for p in policies]
    if len(set(names)) != len(names):
        raise QnasError(f"policy names must be distinct, got {[p.name for p in policies]}")
    table = load_table(lut, force=force_lut) if lut else None
    if supernet_run is not None:
        load_trained(ctx.config, supernet_run)  # refuse a wrong --supernet before anything is written
    out = Path(out)
    rows = []
    for policy, name in zip(policies, names):
        run = out / "runs" / name
        if not (run / "metrics.json").exists():
            resume = (run / "checkpoint.pt").exists()
            if supernet_run is not None:
                finetune(ctx, supernet_run, policy, run, resume=resume, reporter=reporter)
            else:
                train_baseline(ctx, policy, run, resume=resume, reporter=reporter)
        metrics = json.loads((run / "metrics.json").read_text())
        row = {"method": policy.name, "precision": precision(policy.genome), "miou": round(metrics["miou"], 4),
               "gbitops": round(metrics["bitops"] / 1e9, 3), "gmacs": round(metrics["macs"] / 1e9, 4),
               "params_m": round(metrics["params"] / 1e6, 4),
               "size_kb": round(weight_memory_bits(ctx.spec, policy.genome) / 8 / 1e3, 1)}
        if table is not None:
            row["latency_pred_ms"] = round(table.predict(ctx.spec, policy.genome), 3)
            row["latency_meas_ms"] = round(_measured_latency(ctx, run, policy, table), 3)
        rows.append(row)
    write_csv(out / "compare.csv", rows)
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[k]) for k in header) + " |" for r in rows]
    training = f"fine-tuned from {supernet_run}" if supernet_run else "trained from scratch"
    text = (f"# Comparison ({ctx.config.data.dataset}, {training}, equal epochs)\n\n" + "\n".join(lines) + "\n\n"
            f"GBitOps and GMACs at {ctx.deploy_hw[0]}x{ctx.deploy_hw[1]}; size = weights at their bit "
            "widths + 32-bit scale and bias per channel; latency: INT8 onnxruntime (predicted: table sum; "
            "measured: the exported integer model).\n")
    atomic_write_text(out / "compare.md", text)
    return rows


def _measured_latency(ctx: Context, run: Path, policy: Policy, table: LatencyTable) -> float:
    supernet, _ = load_trained(ctx.config, run)
    h, w = table.resolution
    model = export_model(cut_subnet(supernet, policy.genome, ctx.bn_images), "ort", h, w)
    backend = get_backend(table.fingerprint.get("backend", "ort-cpu"), int(table.fingerprint.get("threads", 1)))
    method = table.method or {}
    return backend.measure(model, int(method.get("warmup", 5)), int(method.get("repeats", 30))).median_ms
