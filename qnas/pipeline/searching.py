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
from collections.abc import Sequence
from typing import Any

from qnas.config import config_hash, to_dict
from qnas.cost.bitops import genome_cost, weight_memory_bits, weight_memory_bytes
from qnas.cost.latency import LatencyTable
from qnas.errors import QnasError
from qnas.export.latency import Backend, get_backend
from qnas.pipeline.context import Context, is_main_process
from qnas.pipeline.distributed import barrier, shared_map
from qnas.export.profiles import get_profile
from qnas.pipeline.exporting import export_model, score_file
from qnas.pipeline.parallel import local_map, mapper
from qnas.pipeline.gumbel import LOG as GUMBEL_LOG, STATE as GUMBEL_STATE, gumbel_search
from qnas.pipeline.latency import load_table
from qnas.pipeline.lock import FolderLock, clean_temporary_files
from qnas.pipeline.paths import output_folder
from qnas.pipeline.plots import compare_plot, search_scatter
from qnas.pipeline.progress import SILENT, Reporter
from qnas.pipeline.runs import checkpoint_file, load_trained, saved_config
from qnas.pipeline.training import finetune, train_baseline
from qnas.quant.targets import Target, get_target
from qnas.search.constraints import check_achievable
from qnas.search import STRATEGIES, Candidate, Constraint, Search, SearchSettings, pareto_front, parse_budget
from qnas.space.genome import Genome
from qnas.stats import summarize, welch_difference
from qnas.space.policy import Policy, atomic_write_text, read_policy, write_policy
from qnas.train.subnet import SupernetEvaluator, cut_subnet

__all__ = ["BASELINES", "SearchResult", "budget_constraints", "search", "compare", "compare_table", "target_line",
           "precision",
           "safe_name", "seed_run", "train_seed_run", "file_hash", "write_csv", "pick_winners"]

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
                       table: LatencyTable | None, memory_budget: str | None = None) -> list[Constraint]:
    """The constraints of the budgets: GBitOps at the deployment resolution, milliseconds from the
    latency table and KiB of weight memory, each absolute or ``FACTORx:POLICY``; ``none``: no such budget
    (even where the config sets one)."""
    spec, hw = ctx.spec, ctx.deploy_hw
    bitops_budget, latency_budget, memory_budget = (None if b is not None and b.strip().lower() == "none" else b
                                                    for b in (bitops_budget, latency_budget, memory_budget))

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
    if memory_budget:
        def memory(g: Genome) -> float:
            return weight_memory_bytes(spec, g)

        budget = parse_budget(memory_budget, "memory", lambda n: memory(ctx.policy(n).genome), 1024)
        constraints.append(Constraint("memory", memory, budget, "KiB", 1024))
    return constraints


@dataclass
class SearchResult:
    best: Policy
    search: Search
    history: list[Candidate]
    constraints: list[Constraint]


def search(ctx: Context, supernet_run: str | os.PathLike[str], out: str | os.PathLike[str], *,
           bitops_budget: str | None = None, latency_budget: str | None = None, memory_budget: str | None = None,
           lut: str | os.PathLike[str] | None = None, force_lut: bool = False, strategy: str | None = None,
           seed: int | None = None, resume: bool = False, backend: str | None = None,
           architecture: str | os.PathLike[str] | None = None, reporter: Reporter = SILENT) -> SearchResult:
    """Search ``out`` for the best subnet of a trained supernet under the budgets (default: the config's),
    with a registered strategy (default: the config's); writes best.yaml, evaluations.csv, pareto.csv,
    baselines.json and search.png. ``backend``: the table must have been measured with it. ``architecture``:
    a policy (a file, or a name such as uniform_w8a8) whose shape genes the search keeps, so that it chooses the
    bit widths alone.

    Under ``torchrun`` the ranks share each generation's evaluations and all return the result a single
    process with the same seed finds; rank 0 writes every file (the others read them to resume)."""
    output_folder(out)
    if backend is not None and not lut:
        raise QnasError("--backend names the runtime of the latency table; give the table with --lut")
    table = load_table(lut, backend, force=force_lut, ctx=ctx) if lut else None
    constraints = budget_constraints(ctx, bitops_budget or ctx.config.search.bitops_budget,
                                     latency_budget or ctx.config.search.latency_budget, table,
                                     memory_budget or ctx.config.search.memory_budget)
    settings = SearchSettings(**asdict(ctx.config.search))
    settings = replace(settings, strategy=strategy or settings.strategy,
                       seed=settings.seed if seed is None else seed)
    relaxed = STRATEGIES[settings.strategy].relaxed
    pins = ctx.space.architecture(ctx.policy(architecture).genome) if architecture else {}
    if pins and relaxed:
        raise QnasError(f"--architecture keeps the shape genes of a generation strategy's search (evolution, random, "
                        f"nsga2); strategy {settings.strategy} relaxes every gene")
    space = ctx.space.pinned(pins)
    check_achievable(space, constraints)  # before the folder is made: an impossible budget leaves nothing
    other = [name for name in ((GUMBEL_STATE, GUMBEL_LOG) if not relaxed else ("state.json", "evaluations.jsonl"))
             if (Path(out) / name).exists()]
    if other:
        raise QnasError(f"{out} holds a search of {'strategy gumbel' if not relaxed else 'a generation strategy'} "
                        f"({other[0]}), not of {settings.strategy}; resume it with its strategy, or choose another --out")
    if relaxed and int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun's, before the process group exists
        raise QnasError(f"strategy {settings.strategy} runs in one process; start it without torchrun")
    device = ctx.setup_torch()
    supernet = load_trained(ctx.config, supernet_run)[0].to(device)
    spec, hw = ctx.spec, ctx.deploy_hw

    def costs(g: Genome) -> dict[str, float]:
        cost = genome_cost(spec, g, *hw)
        metrics = {"bitops": float(cost.bitops), "macs": float(cost.macs), "memory": weight_memory_bytes(spec, g)}
        if table is not None:
            metrics["latency_ms"] = table.predict(spec, g)
        return metrics

    evaluator = SupernetEvaluator(supernet, ctx.bn_images, ctx.loader("search"), ctx.num_classes, costs,
                                  ctx.ignore_index)
    cfg = ctx.config
    identity = {"supernet": file_hash(checkpoint_file(supernet_run)), "space": to_dict(cfg.space),
                "data": to_dict(cfg.data), "deploy": to_dict(cfg.deploy),
                "bn_calibration": [cfg.train.batch_size, cfg.train.bn_calib_batches],
                "latency_table": file_hash(lut) if lut else None}
    if pins:  # a search without pins keeps the identity it always had (its state resumes)
        identity["architecture"] = pins
    with FolderLock(out):
        if resume:
            clean_temporary_files(out)
        if relaxed:  # differentiable: qnas.pipeline.gumbel
            run = gumbel_search(ctx, supernet, Path(out), constraints, settings, evaluator, table, identity,
                                resume=resume, reporter=reporter, writer=is_main_process())
            history = list(run.cache.values())
        else:
            with reporter.searching(settings.evaluations) as monitor:
                run = Search(space, constraints, evaluator, settings, out, monitor, identity, mapper=mapper(ctx.jobs),
                             writer=is_main_process())
                history = run.run(resume=resume)
        for warning in run.warnings if is_main_process() else ():
            reporter.message(f"warning: {warning}")
        baselines = _baselines(ctx, evaluator)
        best = _best_policy(ctx, supernet_run, run, constraints, settings, architecture)
        if is_main_process():
            _write_outputs(ctx, Path(out), best, run, history, constraints, baselines)
        barrier()  # every rank returns once the outputs are complete
    return SearchResult(best, run, history, constraints)


def _baselines(ctx: Context, evaluator: SupernetEvaluator) -> dict[str, dict[str, Any]]:
    """The metrics of the uniform baselines that ``ctx`` finds (shared among the ranks like the search's)."""
    references = {}
    for name in BASELINES:
        try:
            references[name] = ctx.policy(name).genome
        except QnasError:
            continue
    return dict(zip(references, shared_map(evaluator, list(references.values()))))


def _best_policy(ctx: Context, supernet_run: str | os.PathLike[str], run: Search, constraints: list[Constraint],
                 settings: SearchSettings, architecture: str | os.PathLike[str] | None = None) -> Policy:
    """The best candidate as a policy, with its metrics and where it came from."""
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
    if architecture:
        provenance["architecture_of"] = str(architecture)  # the search chose the bit widths alone
    if STRATEGIES[settings.strategy].relaxed:
        provenance.update(steps=run.steps, gumbel=asdict(settings.gumbel),
                          chosen="the most probable genome" if best.genome == run.chosen and not run.warnings else
                          ("the most probable genome drawn that meets every budget" if best.genome == run.chosen
                           else "a genome drawn from the final distribution, best on search-val"))
    metrics = {k: (round(v, 6) if k in ("miou", "pixel_acc") else v) for k, v in best.metrics.items()}
    name = f"searched_{settings.strategy}_" + "_".join(f"{c.name}{c.show(c.budget).split()[0]}" for c in constraints)
    return Policy(name.rstrip("_"), best.genome, {"search_val_miou": metrics.pop("miou"), **metrics}, provenance)


def _write_outputs(ctx: Context, out: Path, policy: Policy, run: Search, history: list[Candidate],
                   constraints: list[Constraint], baselines: dict[str, dict[str, Any]]) -> None:
    """evaluations.csv, pareto.csv, baselines.json, search.png and, last, best.yaml."""
    best = run.best()
    rows = [{"index": i, "generation": c.generation, **c.metrics,
             "genome": json.dumps(dict(c.genome), separators=(",", ":"))} for i, c in enumerate(run.cache.values())]
    write_csv(out / "evaluations.csv", rows)
    fronts: dict[str, list[Candidate]] = {"bitops": pareto_front(history, lambda c: c.metrics["bitops"])}
    if any("latency_ms" in c.metrics for c in history):
        fronts["latency_ms"] = pareto_front(history, lambda c: c.metrics["latency_ms"])
    write_csv(out / "pareto.csv", [{"front": axis, "generation": c.generation, **c.metrics,
                                    "genome": json.dumps(dict(c.genome), separators=(",", ":"))}
                                   for axis, front in fronts.items() for c in front])
    atomic_write_text(out / "baselines.json", json.dumps(baselines, indent=2) + "\n")
    search_scatter(list(run.cache.values()), fronts, baselines, best, out / "search.png",
                   budgets={c.name: c.budget for c in constraints})
    write_policy(out / "best.yaml", policy, ctx.space)  # last: the search's outputs are complete once it exists


def pick_winners(ctx: Context, folder: str | os.PathLike[str], budgets: list[str]) -> list[Policy]:
    """From one finished search in ``folder``: for each BitOps budget (GBitOps or FACTORx:POLICY), the
    evaluated genome with the best search-validation mIoU within it, written to ``folder/winners/``."""
    folder = Path(folder)
    with open(folder / "evaluations.csv") as f:
        rows = list(csv.DictReader(f))
    base = read_policy(folder / "best.yaml", ctx.space)
    winners = []
    for text in budgets:
        constraints = budget_constraints(ctx, text, None, None)
        if not constraints:
            raise QnasError(f"a winner's BitOps budget cannot be {text!r}; give GBitOps or FACTORx:POLICY")
        budget = constraints[0].budget
        within = [r for r in rows if float(r["bitops"]) <= budget]
        if not within:
            raise QnasError(f"the search in {folder} evaluated nothing within the bitops budget {text!r} "
                            f"({budget / 1e9:.4g} GBitOps)")
        best = max(within, key=lambda r: float(r["miou"]))
        name = "searched_" + safe_name(text.replace(":", "_"))
        policy = Policy(name, ctx.space.validate(json.loads(best["genome"])),
                        {"search_val_miou": round(float(best["miou"]), 6), "bitops": float(best["bitops"])},
                        {**base.provenance, "picked_from": str(folder / "evaluations.csv"),
                         "bitops_budget": text, "bitops_budget_value": budget})
        write_policy(folder / "winners" / f"{name}.yaml", policy, ctx.space)
        winners.append(policy)
    return winners


# -- compare --------------------------------------------------------------------------------------------------
def precision(genome: Genome) -> str:
    wbits = {v for k, v in genome.items() if k.endswith(".wbits")}
    abits = {v for k, v in genome.items() if k.endswith(".abits")}
    if len(wbits) == len(abits) == 1:
        return f"uniform W{wbits.pop()}A{abits.pop()}"
    return "mixed " + "/".join(str(b) for b in sorted(wbits | abits))


def seed_run(out: str | os.PathLike[str], policy: Policy, seed: int) -> Path:
    """The run folder of ``policy`` trained with seed index ``seed`` in a comparison folder."""
    return Path(out) / "runs" / safe_name(policy.name) / f"seed{seed}"


def train_seed_run(ctx: Context, out: str | os.PathLike[str], policy: Policy, k: int,
                   supernet_run: str | os.PathLike[str] | None, reporter: Reporter = SILENT) -> Path:
    """``policy``'s run with seed index ``k`` in comparison folder ``out`` (seed: the config's + k), fine-tuned
    from ``supernet_run`` or trained from scratch without it; resumed if interrupted, kept if finished."""
    run = seed_run(out, policy, k)
    if (run / "metrics.json").exists():
        saved = saved_config(run / "config.yaml")
        if saved is not None and saved.deploy.target != ctx.config.deploy.target:
            raise QnasError(f"{run} was trained for target {saved.deploy.target!r}, not {ctx.config.deploy.target!r}; "
                            f"compare into another --out, or pass --target {saved.deploy.target}")
        recipe = (("finetune_epochs", "finetune_distill", "finetune_teacher") if supernet_run is not None
                  else ("baseline_float_epochs", "baseline_qat_epochs"))
        for key in recipe if saved is not None else ():  # a finished run of another recipe is not this one's
            was, now = getattr(saved.train, key), getattr(ctx.config.train, key)
            if was != now:
                raise QnasError(f"{run} was trained with train.{key} {was}, not {now}; compare into another --out")
    else:
        resume, seed = (run / "checkpoint.pt").exists(), ctx.config.seed + k
        if supernet_run is not None:
            finetune(ctx, supernet_run, policy, run, resume=resume, reporter=reporter, seed=seed)
        else:
            train_baseline(ctx, policy, run, resume=resume, reporter=reporter, seed=seed)
    return run


def compare(ctx: Context, out: str | os.PathLike[str], policies: list[Policy], *,
            supernet_run: str | os.PathLike[str] | None = None, lut: str | os.PathLike[str] | None = None,
            force_lut: bool = False, baselines: bool = True, seeds: int | None = None,
            backends: Sequence[str] = (), reporter: Reporter = SILENT) -> list[dict[str, Any]]:
    """Train every policy (and the uniform baselines) with equal epochs from ``seeds`` seeds (default:
    compare.seeds), fine-tuned from ``supernet_run`` or from scratch without it; write compare.csv (every
    seed's mIoU, mean, std, 95% interval), compare.md (mean ± std, differences with their intervals) and
    compare.png (mIoU against GBitOps with error bars). ``backends``: latency backends (runtimes) on which
    each policy's exported INT8 file is also measured (``latency_meas_<backend>_ms``)."""
    seeds = seeds or ctx.config.compare.seeds
    engines = {name: get_backend(name, 1) for name in dict.fromkeys(backends)}  # unknown names fail here
    output_folder(out)
    policies = list(policies) + ([ctx.policy(name) for name in BASELINES] if baselines else [])
    if not policies:
        raise QnasError("nothing to compare: give policy files, or leave the uniform baselines on")
    names = [safe_name(p.name) for p in policies]
    if len(set(names)) != len(names):
        raise QnasError(f"policy names must be distinct, got {[p.name for p in policies]}")
    table = load_table(lut, force=force_lut, ctx=ctx) if lut else None
    if supernet_run is not None:
        load_trained(ctx.config, supernet_run)  # refuse a wrong --supernet before anything is written
    out = Path(out)
    with FolderLock(out):
        clean_temporary_files(out)
        return _compare(ctx, out, policies, supernet_run, table, seeds, engines, reporter)


def _compare(ctx: Context, out: Path, policies: list[Policy], supernet_run: str | os.PathLike[str] | None,
             table: LatencyTable | None, seeds: int, engines: dict[str, Backend],
             reporter: Reporter) -> list[dict[str, Any]]:
    rows, mious = [], {}
    target = get_target(ctx.config.deploy.target)
    _train_in_parallel(ctx, out, [(p, k) for p in policies for k in range(seeds)], supernet_run, reporter)
    for policy in policies:
        values = []
        for k in range(seeds):
            run = train_seed_run(ctx, out, policy, k, supernet_run, reporter)
            values.append(json.loads((run / "metrics.json").read_text())["miou"])
        mious[policy.name] = values
        metrics = json.loads((seed_run(out, policy, 0) / "metrics.json").read_text())
        summary = summarize(values)
        row = {"method": policy.name, "precision": precision(policy.genome), "miou": round(summary.mean, 4)}
        if seeds > 1:
            row.update(miou_std=round(summary.std, 4), miou_ci95=round(summary.half_width, 4), seeds=seeds,
                       **{f"miou_seed{k}": round(v, 4) for k, v in enumerate(values)})
        if target.file_scored:
            files = [_deployed_score(ctx, seed_run(out, policy, k), policy, target) for k in range(seeds)]
            deployed = summarize([f["miou"] for f in files])
            row["miou_deployed"] = round(deployed.mean, 4)
            if seeds > 1:
                row["miou_deployed_std"] = round(deployed.std, 4)
            row["agreement_deployed"] = round(min(f["agreement"] for f in files), 5)
        row.update(gbitops=round(metrics["bitops"] / 1e9, 3), gmacs=round(metrics["macs"] / 1e9, 4),
                   params_m=round(metrics["params"] / 1e6, 4),
                   size_kb=round(weight_memory_bits(ctx.spec, policy.genome) / 8 / 1e3, 1),
                   memory_kib=round(weight_memory_bytes(ctx.spec, policy.genome) / 1024, 1))
        if table is not None:
            row["latency_pred_ms"] = round(table.predict(ctx.spec, policy.genome), 3)
            row["latency_meas_ms"] = round(_measured_latency(ctx, seed_run(out, policy, 0), policy, table), 3)
        for name, engine in engines.items():
            hw = table.resolution if table is not None else ctx.deploy_hw
            row[f"latency_meas_{name}_ms"] = round(_measured_on(ctx, seed_run(out, policy, 0), policy, engine, hw), 3)
        rows.append(row)
    write_csv(out / "compare.csv", rows)
    compare_plot(rows, out / "compare.png", title=f"{ctx.config.data.dataset}, {seeds} seed(s) per policy")
    training = f"fine-tuned from {supernet_run}" if supernet_run else "trained from scratch"
    text = (f"# Comparison ({ctx.config.data.dataset}, {training}, equal epochs, {seeds} seed(s))\n\n"
            + target_line(target) + "\n\n" + compare_table(rows) + "\n\n"
            f"mIoU on the validation split{' (mean ± std over seeds)' if seeds > 1 else ''}; GBitOps and GMACs at "
            f"{ctx.deploy_hw[0]}x{ctx.deploy_hw[1]}; memory_kib = weights at their bit widths + 32-bit scale and "
            "bias per channel, in KiB (what --memory-budget limits; size_kb in compare.csv: the same in kB); latency: INT8 on the table's runtime (predicted: table sum; measured: the exported integer "
            "model)" + "".join(f"; latency_meas_{n}_ms: the exported file measured on {n}" for n in engines)
            + (f"; miou_deployed: the `{target.profile}` file of every seed run in {get_profile(target.profile).runtime} "
               "on the validation split, agreement_deployed: the lowest share of pixels whose class it agrees on with "
               "the model" if target.file_scored else "") + ".\n"
            + differences(rows, mious) + "\n![mIoU against GBitOps](compare.png)\n")
    atomic_write_text(out / "compare.md", text)
    return rows


def _train_in_parallel(ctx: Context, out: Path, runs: list[tuple[Policy, int]],
                       supernet_run: str | os.PathLike[str] | None, reporter: Reporter) -> None:
    """Train the comparison's unfinished seed runs in worker processes (``Context.jobs``) when there is more than
    one; a finished run is only checked (``train_seed_run``), and with one job ``_compare`` trains each in turn."""
    pending = []
    for policy, k in runs:
        if (seed_run(out, policy, k) / "metrics.json").exists():
            train_seed_run(ctx, out, policy, k, supernet_run, reporter)  # checks that it is this recipe's
        else:
            pending.append((policy, k))
    jobs, threads = ctx.jobs(len(pending))
    if jobs == 1:
        return
    what = "fine-tune" if supernet_run is not None else "train"
    with reporter.steps(f"{what} ({jobs} at once)") as progress:
        progress(pending[0][0].name, 0, len(pending))
        trained = local_map(lambda run: train_seed_run(ctx, out, run[0], run[1], supernet_run), pending, jobs, threads)
        for i, ((policy, k), _) in enumerate(zip(pending, trained)):
            progress(f"{policy.name} seed {k}", i + 1, len(pending))


def target_line(target: Target) -> str:
    """What the comparison's numerics are: the target, its limits and why."""
    return f"Target `{target.name}` ({target.describe()}): {target.why}."


SHOWN = ("method", "precision", "miou", "miou_deployed", "agreement_deployed", "gbitops", "gmacs", "params_m", "memory_kib", "latency_pred_ms",
         "latency_meas_ms")


def compare_table(rows: list[dict[str, Any]]) -> str:
    """The comparison as a Markdown table, mIoU as 'mean ± std' when there are several seeds."""
    header = [h for h in SHOWN if h in rows[0]] + [h for h in rows[0] if h.startswith("latency_meas_") and h not in SHOWN]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [f"{r[h]} ± {r[h + '_std']}" if h in ("miou", "miou_deployed") and r.get(h + "_std") not in (None, "")
                 else str(r[h]) for h in header]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def differences(rows: list[dict[str, Any]], mious: dict[str, list[float]]) -> str:
    """Each searched policy against each uniform one: mean mIoU difference (points) with Welch's 95% interval."""
    uniform = [r for r in rows if r["precision"].startswith("uniform")]
    others = [r for r in rows if not r["precision"].startswith("uniform")]
    if not uniform or not others or min(len(v) for v in mious.values()) < 2:
        return ""
    lines = ["", "Differences in mean mIoU (points) with Welch's 95% interval; 'within noise' when it contains 0:",
             "", "| policy | GBitOps | " + " | ".join(f"vs {u['method']} ({u['gbitops']})" for u in uniform) + " |",
             "|---|---|" + "---|" * len(uniform)]
    for r in others:
        cells = [welch_difference(mious[r["method"]], mious[u["method"]]).show() for u in uniform]
        lines.append(f"| {r['method']} | {r['gbitops']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _deployed_score(ctx: Context, run: Path, policy: Policy, target: Target) -> dict[str, float]:
    """The score of the target's file of one trained run on the validation split, kept in the run folder."""
    record = run / f"deployed_{safe_name(target.name)}.json"
    if record.exists():
        return json.loads(record.read_text())
    supernet, _ = load_trained(ctx.config, run)
    result = score_file(ctx, cut_subnet(supernet, policy.genome, ctx.bn_images), target.profile)
    atomic_write_text(record, json.dumps({"target": target.name, "profile": target.profile, **result}, indent=2) + "\n")
    return result


def _measured_on(ctx: Context, run: Path, policy: Policy, backend: Backend, hw: tuple[int, int],
                 warmup: int = 5, repeats: int = 30) -> float:
    """Median latency (ms) of the trained policy's exported file (the backend's profile) on ``backend``."""
    supernet, _ = load_trained(ctx.config, run)
    model = export_model(cut_subnet(supernet, policy.genome, ctx.bn_images), backend.profile, *hw)
    return backend.measure(model, warmup, repeats).median_ms


def _measured_latency(ctx: Context, run: Path, policy: Policy, table: LatencyTable) -> float:
    backend = get_backend(table.fingerprint.get("backend", "ort-cpu"), int(table.fingerprint.get("threads", 1)))
    method = table.method or {}
    return _measured_on(ctx, run, policy, backend, table.resolution, int(method.get("warmup", 5)),
                        int(method.get("repeats", 30)))