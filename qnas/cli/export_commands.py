"""``qnas export``: a trained policy as the file of a registered profile (ONNX, or a brevitas model)."""

from __future__ import annotations

import argparse

from qnas.cli.command import Command, config_argument, context, resolution
from qnas.export.profiles import PROFILES, profile_names
from qnas.pipeline import export
from qnas.space import read_policy

__all__ = ["EXPORT_COMMANDS"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="a finished run folder or its checkpoint.pt (qnas train, baseline or finetune)")
    parser.add_argument("--policy", required=True, metavar="P", help="policy YAML: the subnet to export")
    names = profile_names()
    parser.add_argument("--format", required=True, choices=names,
                        help="; ".join(f"{name}: {PROFILES[name].help}" for name in names))
    parser.add_argument("--out", required=True, metavar="FILE", help="file to write (atomically): ONNX, or for brevitas a .pt state dict")
    parser.add_argument("--height", type=int, default=None, help="input height (default: deploy.height)")
    parser.add_argument("--width", type=int, default=None, help="input width (default: deploy.width)")


def _export(args: argparse.Namespace) -> int:
    ctx = context(args)
    policy = read_policy(args.policy, ctx.space)
    height, width = resolution(args, ctx)
    result = export(ctx, args.checkpoint, policy.genome, args.format, args.out, height, width)
    print(f"wrote {args.out} ({args.format}, {policy.name}, {height}x{width}, {result.size_bytes / 1e6:.2f} MB)")
    inexact = result.inexact_convs
    if inexact:
        shown = ", ".join(inexact[:4]) + (f" and {len(inexact) - 4} more" if len(inexact) > 4 else "")
        print(f"note: {shown}: worst-case integer sums reach 2^24; exact on an integer engine, but an engine "
              "that convolves float32 codes (onnxruntime, the qonnx executor) may round them")
    if result.weights.uint8:
        print(f"note: {result.weights.uint8} of {result.weights.total} convs hold 8-bit weights as uint8: exact on "
              "x86 CPUs without VNNI, but onnxruntime runs them with its slower u8 x u8 kernel (the whole file about "
              "2x slower on a CPU with VNNI); a network fine-tuned with --target ort (weights at most 7 bits) has "
              "int8 weights throughout")
    return 0


EXPORT_COMMANDS = [
    Command("export", "export a policy as an ONNX file or a brevitas model",
            "Cut the policy's subnet from a trained run, recalibrate its BatchNorm as eval does, fold BatchNorm "
            "into the convs and write ONNX. --format qonnx: QONNX for FINN-style flows, every tensor at its searched "
            "bit width; ort: an onnxruntime graph whose every conv runs as an integer kernel (checked in the "
            "optimized graph); trt: symmetric int8 Q/DQ for TensorRT; onnx-fp32: the float twin; brevitas: a brevitas "
            "model (state dict and policy, read back by qnas.export.load_brevitas) for brevitas' own tools and its "
            "QONNX exporter. The file is written atomically.",
            _arguments, _export),
]
