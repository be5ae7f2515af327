"""``qnas run``: the whole pipeline on one config, each stage skipped when its output is complete."""

from __future__ import annotations

import argparse
from pathlib import Path

from qnas.cli.command import Command, config_argument, context
from qnas.cli.progress import RichReporter
from qnas.export.latency import backend_names
from qnas.pipeline import run
from qnas.quant.targets import get_target

__all__ = ["RUN_COMMANDS"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="run folder (default: runs/<config name>); every stage writes below it")
    parser.add_argument("--resume", action="store_true",
                        help="continue a run folder: finished stages are skipped, interrupted ones resumed")
    parser.add_argument("--backend", choices=backend_names(), default=None,
                        help="the INT8 runtime whose latency table the run measures, checks and reports, and on which "
                             "compare measures the exported files (ort-cpu: onnxruntime; ov-cpu: OpenVINO); default: "
                             "the target's (--target openvino: ov-cpu), else ort-cpu")
    parser.add_argument("--quiet", action="store_true", help="no progress bars from the stages")


def _run(args: argparse.Namespace) -> int:
    out = Path("runs") / Path(args.config).stem if args.out is None else args.out
    ctx = context(args)
    backend = args.backend or get_target(ctx.config.deploy.target).backend or "ort-cpu"
    report = run(ctx, out, resume=args.resume, backend=backend, reporter=RichReporter(args.quiet))
    print(f"report: {report}")
    return 0


RUN_COMMANDS = [
    Command("run", "the whole pipeline on the embedded default (or any config)",
            "Train the supernet, measure the latency table and check it, search under the config's budgets, "
            "fine-tune the winner and the uniform baselines at equal budget, export the winner (qonnx, ort, trt, openvino, onnx-fp32) "
            "and write report.md. Each stage is skipped when its output is already complete, so a rerun with "
            "--resume after a crash continues where it stopped.",
            _arguments, _run),
]
