"""Every subcommand, in the order ``qnas --help`` lists them."""

from __future__ import annotations

from qnas.cli.command import Command
from qnas.cli.export_commands import EXPORT_COMMANDS
from qnas.cli.latency_commands import LATENCY_COMMANDS
from qnas.cli.run_command import RUN_COMMANDS
from qnas.cli.search_commands import SEARCH_COMMANDS
from qnas.cli.space_commands import SPACE_COMMANDS
from qnas.cli.train_commands import TRAIN_COMMANDS

__all__ = ["COMMANDS"]

COMMANDS: list[Command] = [*RUN_COMMANDS, *SPACE_COMMANDS, *TRAIN_COMMANDS, *LATENCY_COMMANDS, *SEARCH_COMMANDS, *EXPORT_COMMANDS]
