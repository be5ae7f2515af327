"""The ``qnas`` command: argument parsing and user-facing error handling."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from qnas.errors import QnasError

__all__ = ["main", "build_parser"]

DESCRIPTION = """\
qnas: quantization-aware mixed-precision neural architecture search for segmentation.

A weight-sharing supernet whose layers each pick kernel size, expand ratio, depth and
weight/activation bit widths (4/6/8); an evolutionary search under BitOps and measured
INT8-latency budgets; export of the winner as quantized ONNX.
"""


def build_parser() -> argparse.ArgumentParser:
    from qnas.cli import commands  # imported here so `qnas --help` stays quick to build

    parser = argparse.ArgumentParser(
        prog="qnas", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands.COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except QnasError as exc:
        print(f"qnas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"qnas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
