"""Training stages: the supernet, a subnet's evaluation, a baseline from scratch, fine-tuning a subnet."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from qnas.config import Config, config_hash
from qnas.cost.bitops import genome_cost
from qnas.errors import QnasError
from qnas.pipeline.context import Context, is_main_process
from qnas.pipeline.lock import FolderLock
from qnas.pipeline.paths import output_folder
from qnas.pipeline.progress import SILENT, Reporter
from qnas.pipeline.runs import RunDir, load_trained, new_supernet, run_state
from qnas.space.genome import Genome
from qnas.space.policy import Policy, atomic_write_text, write_policy
from qnas.supernet.network import SegNet, Supernet
from qnas.train.schedule import Stage, baseline_stages, finetune_stages, supernet_stages
from qnas.train.subnet import cut_subnet, evaluate_subnet
from qnas.train.trainer import Trainer

__all__ = ["measure", "train_supernet", "evaluate_policy", "train_baseline", "finetune", "metrics_row"]


def measure(ctx: Context, supernet: Supernet, genome: Genome, split: str = "val") -> dict[str, Any]:
    """mIoU etc. of the BN-recalibrated subnet on ``split``, and its cost at the deployment size."""
    result: dict[str, Any] = dict(evaluate_subnet(supernet, genome, ctx.bn_images, ctx.loader(split),
                                                  ctx.num_classes, ctx.ignore_index))
    cost = genome_cost(ctx.spec, genome, *ctx.deploy_hw)
    result.update(macs=cost.macs, bitops=cost.bitops, params=cost.params, bitops_searchable=cost.bitops_searchable)
    return result


def _train(ctx: Context, run: RunDir, supernet: Supernet, stages: list[Stage], state: dict[str, Any],
           resume: bool, title: str, reporter: Reporter, seed: int | None = None,
           teacher: SegNet | None = None) -> None:
    dataset = ctx.train_dataset
    trainer = Trainer(supernet, stages, ctx.config.train, dataset, seed=ctx.config.seed if seed is None else seed,
                      checkpoint_path=run.checkpoint, log=run.log, extra_state=state,
                      device=next(supernet.parameters()).device, teacher=teacher,
                      teacher_weight=ctx.config.train.finetune_distill, augment=ctx.augmentation,
                      workers=ctx.loader_workers)
    run.log(f"{title}: {len(dataset)} training images, stages {[s.name for s in stages]}, "
            f"{torch.get_num_threads()} threads, {ctx.loader_workers} loader processes"
            + (f", augmented ({ctx.config.data.augment})" if ctx.augmentation else ""))
    tic = time.perf_counter()
    with reporter.training(title) as monitor:
        trainer.monitor = monitor
        trainer.run(resume=resume)
    run.log(f"{title}: training finished in {time.perf_counter() - tic:.0f} s (this invocation)")


def train_supernet(ctx: Context, out: str | os.PathLike[str], *, resume: bool = False,
                   reporter: Reporter = SILENT) -> dict[str, dict[str, Any]]:
    """Train the supernet into run folder ``out`` (float warm-up, then the progressive-shrinking QAT
    phases); returns and writes ``summary.json``: the largest and smallest subnets' metrics."""
    output_folder(out)
    with FolderLock(out):
        return _train_supernet(ctx, RunDir(out), resume, reporter)


def _train_supernet(ctx: Context, run: RunDir, resume: bool, reporter: Reporter) -> dict[str, dict[str, Any]]:
    run.prepare(ctx.config, resume)
    device = ctx.setup_torch()
    supernet = new_supernet(ctx.config).to(device)
    _train(ctx, run, supernet, supernet_stages(ctx.config.train, ctx.space), run_state(ctx.config, "supernet"),
           resume, "supernet", reporter)
    summary: dict[str, dict[str, Any]] = {}
    if is_main_process():
        supernet.eval()
        summary = {name: measure(ctx, supernet, genome)
                   for name, genome in (("largest", ctx.space.largest()), ("smallest", ctx.space.smallest()))}
        atomic_write_text(run.path / "summary.json", json.dumps(summary, indent=2) + "\n")
        for name, metrics in summary.items():
            run.log(f"{name} subnet after BN recalibration: mIoU {metrics['miou']:.4f}")
    return summary


def evaluate_policy(ctx: Context, checkpoint: str | os.PathLike[str], genome: Genome) -> dict[str, Any]:
    """mIoU, per-class IoU, pixel accuracy and cost of ``genome`` cut from a trained run (BN recalibrated)."""
    device = ctx.setup_torch()
    supernet = load_trained(ctx.config, checkpoint)[0].to(device)
    return measure(ctx, supernet, genome)


def metrics_row(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics a trained policy's ``policy.yaml`` records."""
    return {"miou": round(metrics["miou"], 6), "pixel_acc": round(metrics["pixel_acc"], 6), "macs": metrics["macs"],
            "bitops": metrics["bitops"], "params": metrics["params"]}


def _train_single(ctx: Context, policy: Policy, out: str | os.PathLike[str], resume: bool, kind: str,
                  start: Callable[[Config], Supernet], stages: list[Stage], extra: dict[str, Any],
                  reporter: Reporter, seed: int | None, distill: bool = False) -> dict[str, Any]:
    """Train the policy's network alone from ``start``, then evaluate it; writes metrics.json and policy.yaml.
    With ``distill``, it learns from the soft output of a subnet of the starting network too (the teacher:
    ``train.finetune_teacher``, its largest or a policy)."""
    run = RunDir(output_folder(out))
    teacher_genome = teacher_of(ctx) if distill else None  # a missing teacher policy fails before the folder is made
    supernet = start(ctx.config)  # refuses a wrong --supernet before the folder is made
    teacher = cut_subnet(supernet, teacher_genome, ctx.bn_images) if distill else None
    with FolderLock(out):
        return _train_alone(ctx, run, supernet, teacher, policy, resume, kind, stages, extra, reporter, seed)


def teacher_of(ctx: Context) -> Genome:
    """The genome fine-tuning distils from: the supernet's largest subnet, or the policy ``train.finetune_teacher``."""
    name = ctx.config.train.finetune_teacher
    return ctx.space.largest() if name == "largest" else ctx.policy(name).genome


def _train_alone(ctx: Context, run: RunDir, supernet: Supernet, teacher: SegNet | None, policy: Policy,
                 resume: bool, kind: str, stages: list[Stage], extra: dict[str, Any], reporter: Reporter,
                 seed: int | None) -> dict[str, Any]:
    run.prepare(ctx.config, resume)
    device = ctx.setup_torch()
    supernet = supernet.to(device)
    state = run_state(ctx.config, kind, policy.genome)
    if seed is not None:
        state["seed"] = seed
    _train(ctx, run, supernet, stages, state, resume, f"{kind} {policy.name}", reporter, seed, teacher)
    if not is_main_process():
        return {}
    supernet.eval()
    metrics = measure(ctx, supernet, policy.genome)
    atomic_write_text(run.path / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    provenance = {**policy.provenance, kind: {"config_hash": config_hash(ctx.config), **extra}}
    write_policy(run.path / "policy.yaml", Policy(policy.name, policy.genome, metrics_row(metrics), provenance),
                 ctx.space)
    run.log(f"{kind} {policy.name}: mIoU {metrics['miou']:.4f}")
    return metrics


def train_baseline(ctx: Context, policy: Policy, out: str | os.PathLike[str], *, resume: bool = False,
                   reporter: Reporter = SILENT, seed: int | None = None) -> dict[str, Any]:
    """Train the policy's network alone from scratch: float epochs, then QAT at its bit widths."""
    cfg = ctx.config.train
    return _train_single(ctx, policy, out, resume, "baseline", new_supernet, baseline_stages(cfg, policy.genome),
                         {"epochs": cfg.baseline_float_epochs + cfg.baseline_qat_epochs}, reporter, seed)


def finetune(ctx: Context, supernet_run: str | os.PathLike[str], policy: Policy, out: str | os.PathLike[str], *,
             resume: bool = False, reporter: Reporter = SILENT, seed: int | None = None) -> dict[str, Any]:
    """QAT fine-tuning of the policy's subnet, starting from the supernet's weights."""

    def start(config: Config) -> Supernet:
        supernet, state = load_trained(config, supernet_run)
        if state.get("kind") != "supernet":
            raise QnasError(f"--supernet {supernet_run} holds a {state.get('kind')} run, not a supernet")
        return supernet

    cfg = ctx.config.train
    extra = {"supernet": str(Path(supernet_run)), "epochs": cfg.finetune_epochs, "distill": cfg.finetune_distill}
    if cfg.finetune_distill > 0:
        extra["teacher"] = cfg.finetune_teacher
    return _train_single(ctx, policy, out, resume, "finetune", start, finetune_stages(cfg, policy.genome), extra,
                         reporter, seed, distill=cfg.finetune_distill > 0)
