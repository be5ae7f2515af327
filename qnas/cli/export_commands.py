"""``qnas export``: a trained policy as an ONNX file that runs (``qonnx``, ``ort``, ``trt`` profiles, float twin)."""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

from qnas.cli.command import Command, config_argument, load, resolution
from qnas.cli.runs import bn_images, load_trained, setup_torch, train_dataset
from qnas.errors import QnasError
from qnas.space import atomic_write_bytes, read_policy
from qnas.train import cut_subnet

__all__ = ["EXPORT_COMMANDS", "FORMATS", "export_policy", "export_subnet", "inexact_convs"]

FORMATS = ("qonnx", "ort", "trt", "onnx-fp32")


def _arguments(parser: argparse.ArgumentParser) -> None:
    config_argument(parser)
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="a finished run folder or its checkpoint.pt (qnas train, baseline or finetune)")
    parser.add_argument("--policy", required=True, metavar="P", help="policy YAML: the subnet to export")
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="qonnx: QONNX Quant nodes at every searched bit width (FPGA flows such as FINN), "
                             "equal to the evaluated model bit for bit; "
                             "ort: onnxruntime graph whose every conv is an integer kernel (QLinearConv / "
                             "ConvInteger), computing what the evaluated model computes; "
                             "trt: TensorRT explicit quantization (symmetric int8 Q/DQ, per-channel weights; "
                             "unsigned 8-bit activations widened to 7-bit, since int8 cannot hold 0..255); "
                             "onnx-fp32: the float twin (quantizers off) for speed comparisons")
    parser.add_argument("--out", required=True, metavar="FILE", help="ONNX file to write (atomically)")
    parser.add_argument("--height", type=int, default=None, help="input height (default: deploy.height)")
    parser.add_argument("--width", type=int, default=None, help="input width (default: deploy.width)")


def export_policy(config, supernet, genome, fmt: str, height: int, width: int, bn: list):
    """The ONNX model (``onnx.ModelProto``) of the policy's subnet (BatchNorm recalibrated as it was evaluated)."""
    return export_subnet(config, cut_subnet(supernet, genome, bn), genome, fmt, height, width)


def export_subnet(config, subnet, genome, fmt: str, height: int, width: int):
    """The ONNX model (``onnx.ModelProto``) of an already cut (and BN-recalibrated) subnet; ``subnet`` is
    left as it is."""
    import copy

    import onnx
    import torch

    if fmt == "qonnx":
        from qnas.export.qonnx import export_qonnx_model

        return export_qonnx_model(subnet, config.space, genome, height, width)
    if fmt == "trt":
        from qnas.export.trt import export_trt_model

        return export_trt_model(subnet, config.space, genome, height, width)
    if fmt == "ort":
        from qnas.export.latency import assert_integer, get_backend
        from qnas.export.ort import export_ort_model

        model = export_ort_model(subnet, config.space, genome, height, width)
        assert_integer(get_backend("ort-cpu", 1), model, "ort export")
        return model
    if fmt == "onnx-fp32":
        subnet = copy.deepcopy(subnet)
        subnet.set_quantization(False)
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shapes are static at export
            warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False is deliberate (STYLE.md)
            path = os.path.join(tmp, "fp32.onnx")
            torch.onnx.export(subnet, (torch.zeros(1, config.space.in_channels, height, width),), path,
                              input_names=["image"], output_names=["logits"], opset_version=17, dynamo=False)
            return onnx.load(path)
    raise QnasError(f"unknown export format {fmt!r}; allowed: {list(FORMATS)}")


def _export(args: argparse.Namespace) -> int:
    config, space = load(args)
    policy = read_policy(args.policy, space)
    height, width = resolution(args, config)
    setup_torch(config)
    supernet, _ = load_trained(config, args.checkpoint)
    model = export_policy(config, supernet, policy.genome, args.format, height, width,
                          bn_images(config, train_dataset(config)))
    data = model.SerializeToString()
    atomic_write_bytes(Path(args.out), data)
    print(f"wrote {args.out} ({args.format}, {policy.name}, {height}x{width}, {len(data) / 1e6:.2f} MB)")
    inexact = inexact_convs(model)
    if inexact:
        shown = ", ".join(inexact[:4]) + (f" and {len(inexact) - 4} more" if len(inexact) > 4 else "")
        print(f"note: {shown}: worst-case integer sums reach 2^24; exact on an integer engine, but an engine "
              "that convolves float32 codes (onnxruntime, the qonnx executor) may round them")
    return 0


def inexact_convs(model) -> list[str]:
    """The convs an exported model lists as possibly rounded by float32 execution (see qnas.export.codes)."""
    from qnas.export.graph import INEXACT_CONVS_KEY

    props = {p.key: p.value for p in model.metadata_props}
    return [label for label in props.get(INEXACT_CONVS_KEY, "").split(",") if label]


EXPORT_COMMANDS = [
    Command("export", "export a policy as an ONNX file",
            "Cut the policy's subnet from a trained run, recalibrate its BatchNorm as eval does, fold BatchNorm "
            "into the convs and write ONNX. --format qonnx: QONNX for FINN-style flows, every tensor at its searched "
            "bit width; ort: an onnxruntime graph whose every conv runs as an integer kernel (checked in the "
            "optimized graph); trt: symmetric int8 Q/DQ for TensorRT; onnx-fp32: the float twin. The file is "
            "written atomically.",
            _arguments, _export),
]
