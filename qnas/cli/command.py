"""What every subcommand shares: its description record, the --config option, the context it builds."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from qnas.config import load_config
from qnas.config.schema import SEED_LIMIT
from qnas.errors import ConfigError, QnasError
from qnas.pipeline import Context
from qnas.quant.targets import TARGETS, target_names

__all__ = ["Command", "DEFAULT_CONFIG", "config_argument", "context", "resolution", "print_metric_table",
           "int_between", "seed_int"]

DEFAULT_CONFIG = "configs/digits.yaml"


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    description: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]

    def add_parser(self, sub: argparse._SubParsersAction) -> None:
        parser = sub.add_parser(self.name, help=self.help, description=self.description)
        self.arguments(parser)
        parser.set_defaults(run=self.run)


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {value!r}") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {number}")
        return number

    parse.__name__ = f"integer from {low} to {high}"
    return parse



def seed_int(value: str) -> int:
    """An argparse type: a seed, an integer from 0 to 2**32 - 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seed (an integer from 0 to {SEED_LIMIT - 1}), got {value!r}") from None
    if not 0 <= number < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"a seed is an integer from 0 to {SEED_LIMIT - 1}, got {number}")
    return number


def config_argument(parser: argparse.ArgumentParser, target: bool = True) -> None:
    """``--config``, and ``--target`` for commands that build networks."""
    parser.add_argument("--config", default=DEFAULT_CONFIG, metavar="C",
                        help=f"experiment config YAML (default: {DEFAULT_CONFIG}, the embedded DigitScenes)")
    if target:
        parser.add_argument("--target", choices=target_names(), default=None,
                            help="the runtime the network is for; every network is evaluated, trained and exported "
                                 "with the bit widths it computes exactly (" + "; ".join(
                                     f"{t.name}: {t.describe()}" for t in TARGETS.values())
                                 + "); default: the config's deploy.target (qonnx)")


def non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}") from None
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {value!r}")
    return number


def finetune_arguments(parser: argparse.ArgumentParser) -> None:
    """``--finetune-epochs``, ``--distill`` and ``--teacher``: the fine-tuning recipe (train.finetune_epochs,
    finetune_distill, finetune_teacher)."""
    parser.add_argument("--finetune-epochs", type=int_between(1, 10_000), default=None, metavar="E",
                        help="QAT epochs of fine-tuning (default: train.finetune_epochs; digits: 3; 6 lets "
                             "policies with 4-bit layers recover, see benchmarks/results/evidence_bits.md)")
    parser.add_argument("--distill", type=non_negative_float, default=None, metavar="W",
                        help="weight of distillation from the teacher while fine-tuning (default: "
                             "train.finetune_distill; 0: none)")
    parser.add_argument("--teacher", default=None, metavar="P",
                        help="the subnet fine-tuning distils from: largest (the supernet's) or a policy, e.g. the "
                             "best.yaml of `qnas search --bitops-budget none` (FasterSeg's teacher); default: "
                             "train.finetune_teacher")


def context(args: argparse.Namespace) -> Context:
    """The pipeline context of ``--config`` (with ``--target`` as its deploy.target, ``--finetune-epochs`` /
    ``--distill`` / ``--teacher`` as train.finetune_epochs / finetune_distill / finetune_teacher): named policies
    are looked up in ./policies, then in the policies/ folder beside the config's folder (the repository's)."""
    config = load_config(args.config)
    if getattr(args, "target", None):
        config = replace(config, deploy=replace(config.deploy, target=args.target))
    for option, key in (("distill", "finetune_distill"), ("teacher", "finetune_teacher"),
                        ("finetune_epochs", "finetune_epochs")):
        if getattr(args, option, None) is not None:
            config = replace(config, train=replace(config.train, **{key: getattr(args, option)}))
    if getattr(args, "teacher", None) is not None and config.train.finetune_distill == 0:
        raise ConfigError("--teacher needs a distillation weight: --distill W with W > 0 (train.finetune_distill is 0)")
    beside = Path(args.config).resolve().parent.parent / "policies"
    return Context(config, policy_dirs=[Path("policies"), beside], source=str(args.config))


def resolution(args: argparse.Namespace, ctx: Context) -> tuple[int, int]:
    """``--height`` / ``--width``, defaulting to the deployment resolution; multiples of 32."""
    height = ctx.deploy_hw[0] if args.height is None else args.height  # 0 is a value, refused below
    width = ctx.deploy_hw[1] if args.width is None else args.width
    for name, value in (("--height", height), ("--width", width)):
        if value < 32 or value % 32 or value > 8192:
            raise QnasError(f"{name} must be a multiple of 32 from 32 to 8192, got {value}")
    return height, width


def print_metric_table(title: str, rows: list[tuple[str, str]]) -> None:
    """A two-column rich table (metric, value) on the console."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)
