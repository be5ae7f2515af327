"""What every subcommand shares: its description record, the --config option, the config loader."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from qnas.config import Config, load_config
from qnas.errors import QnasError
from qnas.space import SearchSpace

__all__ = ["Command", "DEFAULT_CONFIG", "config_argument", "load", "resolution", "print_metric_table"]

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


def config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG, metavar="C",
                        help=f"experiment config YAML (default: {DEFAULT_CONFIG}, the embedded DigitScenes)")


def load(args: argparse.Namespace) -> tuple[Config, SearchSpace]:
    config = load_config(args.config)
    return config, SearchSpace(config.space)


def resolution(args: argparse.Namespace, config: Config) -> tuple[int, int]:
    """``--height`` / ``--width``, defaulting to the deployment resolution; multiples of 32."""
    height = args.height or config.deploy.height
    width = args.width or config.deploy.width
    for name, value in (("--height", height), ("--width", width)):
        if value < 32 or value % 32:
            raise QnasError(f"{name} must be a multiple of 32 and >= 32, got {value}")
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
