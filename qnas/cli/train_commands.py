"""``qnas train``, ``qnas eval``, ``qnas baseline`` and ``qnas finetune``."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from qnas.cli.command import Command, config_argument, load, print_metric_table
from qnas.cli.runs import (
    RichMonitor,
    RunDir,
    bn_images,
    is_main_process,
    load_trained,
    new_supernet,
    run_state,
    setup_torch,
    train_dataset,
    val_loader,
)
from qnas.config import Config, config_hash
from qnas.cost import genome_cost
from qnas.errors import QnasError
from qnas.space import Genome, Policy, SearchSpace, atomic_write_text, read_policy, write_policy
from qnas.supernet import Supernet
from qnas.train import Stage, Trainer, baseline_stages, evaluate_subnet, finetune_stages, supernet_stages

__all__ = ["TRAIN_COMMANDS", "measure"]


def _out_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--out", required=True, metavar="DIR",
                        help=f"output folder for the {what}: config.yaml, checkpoint.pt, train.log, metrics")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint (same config required)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def measure(config: Config, supernet: Supernet, genome: Genome, bn: list, loader: Any) -> dict[str, Any]:
    """mIoU etc. of a BN-recalibrated subnet on ``loader``, and its cost at the deployment size."""
    result: dict[str, Any] = dict(evaluate_subnet(supernet, genome, bn, loader, config.space.num_classes))
    cost = genome_cost(config.space, genome, config.deploy.height, config.deploy.width)
    result.update(macs=cost.macs, bitops=cost.bitops, params=cost.params, bitops_searchable=cost.bitops_searchable)
    return result


def _train_run(config: Config, run: RunDir, supernet: Supernet, stages: list[Stage], state: dict[str, Any],
               resume: bool, quiet: bool, title: str) -> list:
    """Train, and return the BN recalibration batches (drawn from the same training set)."""
    dataset = train_dataset(config)
    trainer = Trainer(supernet, stages, config.train, dataset, seed=config.seed, checkpoint_path=run.checkpoint,
                      log=run.log, extra_state=state, device=supernet_device(supernet))
    run.log(f"{title}: {len(dataset)} training images, stages {[s.name for s in stages]}")
    tic = time.perf_counter()
    with RichMonitor(title, enabled=not quiet and is_main_process()) as monitor:
        trainer.monitor = monitor
        trainer.run(resume=resume)
    run.log(f"{title}: training finished in {time.perf_counter() - tic:.0f} s (this invocation)")
    return bn_images(config, dataset)


def supernet_device(supernet: Supernet) -> Any:
    return next(supernet.parameters()).device


def _print_metrics(title: str, metrics: dict[str, Any]) -> None:
    print_metric_table(title, [("mIoU", f"{metrics['miou']:.4f}"), ("pixel accuracy", f"{metrics['pixel_acc']:.4f}"),
                               ("GMACs", f"{metrics['macs'] / 1e9:.4f}"), ("GBitOps", f"{metrics['bitops'] / 1e9:.3f}")])


# -- qnas train ------------------------------------------------------------------------------------
def _train_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    _out_arguments(parser, "supernet run")


def _train(args: argparse.Namespace) -> int:
    config, space = load(args)
    run = RunDir(args.out)
    run.prepare(config, args.resume)
    device = setup_torch(config)
    supernet = new_supernet(config).to(device)
    bn = _train_run(config, run, supernet, supernet_stages(config.train, space), run_state(config, "supernet"),
                    args.resume, args.quiet, "supernet")
    if is_main_process():
        supernet.eval()
        loader = val_loader(config)
        summary = {name: measure(config, supernet, genome, bn, loader)
                   for name, genome in (("largest", space.largest()), ("smallest", space.smallest()))}
        atomic_write_text(run.path / "summary.json", json.dumps(summary, indent=2) + "\n")
        for name, metrics in summary.items():
            run.log(f"{name} subnet after BN recalibration: mIoU {metrics['miou']:.4f}")
            print(f"{name} subnet (BN recalibrated): mIoU {metrics['miou']:.4f}")
        print(f"supernet written to {run.checkpoint}")
    return 0


# -- qnas eval -------------------------------------------------------------------------------------
def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--supernet", required=True, metavar="RUN_DIR",
                        help="a finished run folder (qnas train, baseline or finetune) or its checkpoint.pt")
    parser.add_argument("--policy", required=True, metavar="P", help="policy YAML: the subnet to evaluate")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object: miou, per_class_iou, pixel_acc, macs, bitops (mIoU in [0, 1])")


def _eval(args: argparse.Namespace) -> int:
    config, space = load(args)
    policy = read_policy(args.policy, space)
    setup_torch(config)
    supernet, _ = load_trained(config, args.supernet)
    metrics = measure(config, supernet, policy.genome, bn_images(config, train_dataset(config)), val_loader(config))
    if args.json:
        print(json.dumps(metrics))
    else:
        _print_metrics(f"{policy.name} from {args.supernet} (BN recalibrated, {config.data.dataset} val)", metrics)
    return 0


# -- qnas baseline / finetune ----------------------------------------------------------------------
def _finish_single(config: Config, space: SearchSpace, run: RunDir, supernet: Supernet, policy: Policy,
                   bn: list, kind: str, extra: dict[str, Any]) -> None:
    if not is_main_process():
        return
    supernet.eval()
    metrics = measure(config, supernet, policy.genome, bn, val_loader(config))
    atomic_write_text(run.path / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    provenance = {**policy.provenance, kind: {"config_hash": config_hash(config), **extra}}
    write_policy(run.path / "policy.yaml", Policy(policy.name, policy.genome, {
        "miou": round(metrics["miou"], 6), "pixel_acc": round(metrics["pixel_acc"], 6),
        "macs": metrics["macs"], "bitops": metrics["bitops"], "params": metrics["params"]}, provenance), space)
    run.log(f"{kind} {policy.name}: mIoU {metrics['miou']:.4f}")
    _print_metrics(f"{kind} {policy.name}", metrics)


def _baseline_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--policy", required=True, metavar="P", help="policy YAML, e.g. policies/uniform_w8a8.yaml")
    _out_arguments(parser, "baseline")


def _train_single(args: argparse.Namespace, kind: str, start: Callable[[Config], Supernet],
                  stages: Callable[..., list], extra: Callable[[Config], dict[str, Any]]) -> int:
    """Train the policy's network alone from ``start(config)`` through ``stages``, then evaluate it."""
    config, space = load(args)
    policy = read_policy(args.policy, space)
    run = RunDir(args.out)
    run.prepare(config, args.resume)
    device = setup_torch(config)
    supernet = start(config).to(device)
    bn = _train_run(config, run, supernet, stages(config.train, policy.genome), run_state(config, kind, policy.genome),
                    args.resume, args.quiet, f"{kind} {policy.name}")
    _finish_single(config, space, run, supernet, policy, bn, kind, extra(config))
    return 0


def _baseline(args: argparse.Namespace) -> int:
    return _train_single(args, "baseline", new_supernet, baseline_stages,
                         lambda c: {"epochs": c.train.baseline_float_epochs + c.train.baseline_qat_epochs})


def _finetune_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--supernet", required=True, metavar="RUN_DIR", help="a finished qnas train run folder")
    parser.add_argument("--policy", required=True, metavar="P", help="policy YAML: the subnet to fine-tune")
    _out_arguments(parser, "fine-tuned subnet")


def _finetune(args: argparse.Namespace) -> int:
    def start(config: Config) -> Supernet:
        supernet, state = load_trained(config, args.supernet)
        if state.get("kind") != "supernet":
            raise QnasError(f"--supernet {args.supernet} holds a {state.get('kind')} run, not a supernet")
        return supernet

    return _train_single(args, "finetune", start, finetune_stages,
                         lambda c: {"supernet": str(args.supernet), "epochs": c.train.finetune_epochs})


TRAIN_COMMANDS = [
    Command("train", "train the quantization-aware supernet",
            "Train the weight-sharing supernet: a float warm-up of the largest network, then the "
            "progressive-shrinking phases of the config (train.phases) with quantization on. Every step "
            "trains the largest subnet at the highest bit widths, the smallest at the lowest, and "
            "train.random_subnets random ones, distilling the largest's output into the others. "
            "Checkpoints are written atomically every train.checkpoint_every steps; --resume continues. "
            "Runs unchanged under `torchrun --nproc_per_node N qnas train ...` (gloo on CPU, nccl on GPU).",
            _train_arguments, _train),
    Command("eval", "mIoU and cost of a policy cut from a trained run",
            "Cut the policy's subnet out of a trained supernet (or a baseline / fine-tuned run), "
            "recalibrate its BatchNorm statistics on train.bn_calib_batches training batches, and "
            "evaluate it on the validation split. Cost is counted at the deployment resolution.",
            _eval_arguments, _eval),
    Command("baseline", "train one fixed network (e.g. a uniform baseline) from scratch",
            "Train the policy's network alone: train.baseline_float_epochs of float training, then "
            "train.baseline_qat_epochs of QAT at the policy's bit widths; then evaluate it. Writes "
            "checkpoint.pt, metrics.json and policy.yaml (with measured metrics) to --out.",
            _baseline_arguments, _baseline),
    Command("finetune", "fine-tune a subnet cut from the supernet with QAT",
            "Start from the supernet's weights for the policy's subnet and fine-tune it alone with QAT "
            "at its bit widths for train.finetune_epochs; then evaluate it. Writes checkpoint.pt, "
            "metrics.json and policy.yaml to --out.",
            _finetune_arguments, _finetune),
]
