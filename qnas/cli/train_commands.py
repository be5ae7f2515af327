"""``qnas train``, ``qnas eval``, ``qnas baseline`` and ``qnas finetune``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from qnas.cli.command import Command, config_argument, context, finetune_arguments, print_metric_table
from qnas.cli.progress import RichReporter
from qnas.pipeline import evaluate_policy, finetune, is_main_process, train_baseline, train_supernet
from qnas.space import read_policy

__all__ = ["TRAIN_COMMANDS"]


def _out_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--out", required=True, metavar="DIR",
                        help=f"output folder for the {what}: config.yaml, checkpoint.pt, train.log, metrics")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint (same config required)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _print_metrics(title: str, metrics: dict[str, Any]) -> None:
    print_metric_table(title, [("mIoU", f"{metrics['miou']:.4f}"), ("pixel accuracy", f"{metrics['pixel_acc']:.4f}"),
                               ("GMACs", f"{metrics['macs'] / 1e9:.4f}"), ("GBitOps", f"{metrics['bitops'] / 1e9:.3f}")])


# -- qnas train ------------------------------------------------------------------------------------
def _train_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    _out_arguments(parser, "supernet run")


def _train(args: argparse.Namespace) -> int:
    summary = train_supernet(context(args), args.out, resume=args.resume, reporter=RichReporter(args.quiet))
    for name, metrics in summary.items():
        print(f"{name} subnet (BN recalibrated): mIoU {metrics['miou']:.4f}")
    if is_main_process():
        print(f"supernet written to {args.out}/checkpoint.pt")
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
    ctx = context(args)
    policy = read_policy(args.policy, ctx.space)
    metrics = evaluate_policy(ctx, args.supernet, policy.genome)
    if args.json:
        print(json.dumps(metrics))
    else:
        _print_metrics(f"{policy.name} from {args.supernet} (BN recalibrated, {ctx.config.data.dataset} val)", metrics)
    return 0


# -- qnas baseline / finetune ----------------------------------------------------------------------
def _baseline_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--policy", required=True, metavar="P", help="policy YAML, e.g. policies/uniform_w8a8.yaml")
    _out_arguments(parser, "baseline")


def _baseline(args: argparse.Namespace) -> int:
    ctx = context(args)
    policy = read_policy(args.policy, ctx.space)
    metrics = train_baseline(ctx, policy, args.out, resume=args.resume, reporter=RichReporter(args.quiet))
    if metrics:
        _print_metrics(f"baseline {policy.name}", metrics)
    return 0


def _finetune_arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--supernet", required=True, metavar="RUN_DIR", help="a finished qnas train run folder")
    parser.add_argument("--policy", required=True, metavar="P", help="policy YAML: the subnet to fine-tune")
    finetune_arguments(parser)
    _out_arguments(parser, "fine-tuned subnet")


def _finetune(args: argparse.Namespace) -> int:
    ctx = context(args)
    policy = read_policy(args.policy, ctx.space)
    metrics = finetune(ctx, args.supernet, policy, args.out, resume=args.resume, reporter=RichReporter(args.quiet))
    if metrics:
        _print_metrics(f"finetune {policy.name}", metrics)
    return 0


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
