"""``qnas data-check``: a dataset's split sizes and class frequencies, and every defect of its files."""

from __future__ import annotations

import argparse

from qnas.cli.command import Command, config_argument
from qnas.cli.progress import RichReporter
from qnas.config import load_config
from qnas.errors import DataError
from qnas.pipeline import DataCheck, check_data

__all__ = ["DATA_COMMANDS", "MAX_SHOWN"]

MAX_SHOWN = 100  # defects printed one per line; the rest are counted


def _arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser, target=False)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _print_frequencies(check: DataCheck) -> None:
    from rich.console import Console
    from rich.table import Table

    read = [s for s in check.splits if s.read]
    table = Table(title=f"{check.dataset}: pixel share per class (split: images read)")
    table.add_column("id", justify="right")
    table.add_column("class")
    for split in read:
        table.add_column(f"{split.name}: {split.read}", justify="right")
    shares = [split.shares() for split in read]
    for i, name in enumerate((*check.class_names, "(ignored)")):
        table.add_row(str(i) if i < len(check.class_names) else str(check.ignore_index), name,
                      *(f"{100 * s[i]:.2f}%" for s in shares))
    Console().print(table)


def _data_check(args: argparse.Namespace) -> int:
    check = check_data(load_config(args.config), reporter=RichReporter(args.quiet))
    print("split sizes: " + ", ".join(f"{s.name} {s.items}" for s in check.splits))
    if any(s.read for s in check.splits):
        _print_frequencies(check)
    absent = check.absent("train")
    if absent:
        print(f"note: no train pixels of {', '.join(absent)}")
    for line in check.defects[:MAX_SHOWN]:
        print(line)
    if len(check.defects) > MAX_SHOWN:
        print(f"... and {len(check.defects) - MAX_SHOWN} more defects")
    if not check.clean:
        raise DataError(f"{len(check.defects)} defect(s) in data.dataset {check.dataset!r} "
                        "(listed above, one per line)")
    print(f"{check.dataset}: no defects")
    return 0


DATA_COMMANDS = [
    Command("data-check", "check a dataset's files; print its split sizes and class frequencies",
            "Read every image and mask of the config's dataset once (train, search and val splits): print each "
            "split's size and every class's share of its pixels, and one line per defect naming the file (an image "
            "without a mask, a mask without an image, a file that cannot be read, a mask of another size than its "
            f"image, ids that are neither a class nor data.ignore_index; the first {MAX_SHOWN} are printed). "
            "Exit code 0 when there are none, 2 otherwise. Writes nothing.",
            _arguments, _data_check),
]
