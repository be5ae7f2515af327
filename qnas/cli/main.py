"""The ``qnas`` command: argument parsing and user-facing error handling over ``qnas.pipeline``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from qnas.cli.command import Command
from qnas.cli.data_commands import DATA_COMMANDS
from qnas.cli.export_commands import EXPORT_COMMANDS
from qnas.cli.latency_commands import LATENCY_COMMANDS
from qnas.cli.run_command import RUN_COMMANDS
from qnas.cli.search_commands import SEARCH_COMMANDS
from qnas.cli.space_commands import SPACE_COMMANDS
from qnas.cli.train_commands import TRAIN_COMMANDS
from qnas.errors import QnasError

__all__ = ["main", "build_parser", "COMMANDS"]

COMMANDS: list[Command] = [*RUN_COMMANDS, *DATA_COMMANDS, *SPACE_COMMANDS, *TRAIN_COMMANDS, *LATENCY_COMMANDS,
                           *SEARCH_COMMANDS, *EXPORT_COMMANDS]

DESCRIPTION = """\
qnas: quantization-aware mixed-precision neural architecture search for segmentation.

A weight-sharing supernet whose layers each pick kernel size, expand ratio, depth and
weight/activation bit widths (4/6/8); an evolutionary search under BitOps and measured
INT8-latency budgets; export of the winner as quantized ONNX.
"""


class _Parser(argparse.ArgumentParser):
    """A bad option is one line (``qnas CMD: error: ...``) and exit code 2, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def one_line(message: str) -> str:
    """A message as one line: a line break that user data brought in (a key, a file name) is shown as \\n."""
    return "\\n".join(message.splitlines())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qnas", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except QnasError as exc:
        print(f"qnas {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the user named could not be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"qnas {args.command}: error: {one_line(f'{where}{exc.strerror or exc}')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"qnas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
