"""FPGA front ends on trained policies: qonnx's channels-last preparation, hls4ml's parse and C simulation.

For each policy (its subnet cut from a trained run and BN-recalibrated, as ``qnas eval`` does):

1. the ``qonnx`` file at ``--size``: qonnx's ``cleanup_model``, ``ConvertToChannelsLastAndClean`` and
   ``InferDataTypes`` (timed; the transposes left and the convs not channels-last are counted), then the
   result executed by qonnx's executor on ``--images`` validation scenes (centre crops) against the model;
2. the ``qonnx-hls4ml`` file at ``--size``: hls4ml's QONNX converter (``io_stream``, ``--backend``) at each
   ``--precision`` (hls4ml's type wherever the file fixes none), timed; then its C simulation (``compile()``
   with g++, ``predict()``) on the same scenes against the model.

``--channels-first`` also runs step 1 on the file as the ``qonnx`` writer wrote it before it was
channels-last between convs.

Usage: python benchmarks/fpga_frontends.py --checkpoint RUN [--size 32] [--images 4]
           [--precision fixed<64,32> ...] [--channels-first] [--skip-hls4ml] [--out FILE] POLICY.yaml [...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from qnas.config import load_config
from qnas.export.fpga import PRECISION, export_hls4ml_model, to_channels_last, to_hls4ml
from qnas.export.network import network_graph
from qnas.export.ort import FrozenLayers
from qnas.export.qonnx import QonnxGraph, export_qonnx_model
from qnas.pipeline import Context, load_trained
from qnas.space import read_policy
from qnas.train import cut_subnet


def _agreement(outs: list[np.ndarray], refs: list[np.ndarray]) -> tuple[float, float]:
    """Max |logit difference| and the share of pixels whose class agrees."""
    diff = max(float(np.abs(o - r).max()) for o, r in zip(outs, refs))
    agree = np.mean([np.mean(o.argmax(1) == r.argmax(1)) for o, r in zip(outs, refs)])
    return diff, float(agree)


class _ChannelsFirst(QonnxGraph):
    """The qonnx writer as it was before it wrote channels-last tensors between convs."""

    channels_last = False


def _qonnx_row(name: str, subnet, size: int, xs: list[torch.Tensor], refs: list[np.ndarray],
               channels_first: bool = False) -> str:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.util.cleanup import cleanup_model

    if channels_first:
        name += " (channels-first file)"
        model = network_graph(subnet.plan(size, size), FrozenLayers(subnet), _ChannelsFirst).model()
    else:
        model = export_qonnx_model(subnet, size, size)
    tic = time.perf_counter()
    wrapper = cleanup_model(ModelWrapper(model)).transform(ConvertToChannelsLastAndClean()).transform(InferDataTypes())
    seconds = time.perf_counter() - tic
    convs = wrapper.get_nodes_by_op_type("Conv")
    flat = sum(n.domain != "qonnx.custom_op.channels_last" for n in convs)
    transposes = len(wrapper.get_nodes_by_op_type("Transpose"))
    inp, out = wrapper.graph.input[0].name, wrapper.graph.output[0].name
    try:
        outs = [execute_onnx(wrapper, {inp: x.numpy()})[out] for x in xs]
    except Exception as error:  # noqa: BLE001 - the channels-first file's converted graph may not execute
        result = f"fails: {type(error).__name__}: {str(error).splitlines()[0][:120]} |"
    else:
        diff, agree = _agreement(outs, refs)
        result = f"{diff:.3g} | {agree:.5f} |"
    counts = f"{len(model.graph.node)} | {seconds:.1f} | {len(convs) - flat}/{len(convs)} | {transposes}"
    return f"| {name} | {counts} | {result}"


def _hls4ml_rows(name: str, subnet, size: int, xs: list[torch.Tensor], refs: list[np.ndarray],
                 precisions: list[str], backend: str, workdir: Path) -> list[str]:
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper

    prepared = to_channels_last(export_hls4ml_model(subnet, size, size)).model.SerializeToString()
    rows = []
    for precision in precisions:
        tic = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # hls4ml prints every layer it reads
            hls = to_hls4ml(ModelWrapper(onnx.load_from_string(prepared)), workdir / f"{name}_{precision[6:-1]}",
                            precision=precision, backend=backend)
        parsed = time.perf_counter() - tic
        tic = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            hls.compile()
        built = time.perf_counter() - tic
        outs = [np.asarray(hls.predict(np.ascontiguousarray(x.numpy()))).reshape(r.shape) for x, r in zip(xs, refs)]
        diff, agree = _agreement(outs, refs)
        layers = len(list(hls.get_layers()))
        rows.append(f"| {name} | {precision} | {layers} | {parsed:.1f} | {built:.1f} | {diff:.3g} | {agree:.5f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--size", type=int, default=32, help="square input size (a multiple of the network's stride)")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--precision", action="append", default=None,
                        help=f"hls4ml default precision(s) to simulate (default: fixed<32,16> and {PRECISION})")
    parser.add_argument("--backend", default="Vitis")
    parser.add_argument("--channels-first", action="store_true",
                        help="also run the qonnx steps on the file as the writer wrote it before (channels-first)")
    parser.add_argument("--skip-hls4ml", action="store_true")
    parser.add_argument("--out", default=None, help="also write the tables as Markdown here")
    parser.add_argument("policies", nargs="+")
    args = parser.parse_args()
    precisions = args.precision or ["fixed<32,16>", PRECISION]
    torch.set_num_threads(2)
    ctx = Context(load_config(args.config))
    supernet, _ = load_trained(ctx.config, args.checkpoint)
    dataset = ctx.loader("val").dataset
    qonnx_rows = ["| policy | nodes | cleanup + channels-last + datatypes s | channels-last convs | transposes left | "
                  "max abs diff | argmax agreement |", "|---|---|---|---|---|---|---|"]
    hls_rows = ["| policy | hls4ml default precision | hls4ml layers | parse s | g++ build s | max abs diff | "
                "argmax agreement |", "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.policies:
            policy = read_policy(path, ctx.space)
            subnet = cut_subnet(supernet, policy.genome, ctx.bn_images)
            xs = []
            for i in range(args.images):
                image = dataset[i][0]
                top, left = (image.shape[1] - args.size) // 2, (image.shape[2] - args.size) // 2
                xs.append(image[None, :, top:top + args.size, left:left + args.size].contiguous())
            with torch.no_grad():
                refs = [subnet(x).numpy() for x in xs]
            for first in (False, True) if args.channels_first else (False,):
                qonnx_rows.append(_qonnx_row(policy.name, subnet, args.size, xs, refs, channels_first=first))
                print(qonnx_rows[-1], flush=True)
            if args.skip_hls4ml:
                continue
            hls_rows += _hls4ml_rows(policy.name, subnet, args.size, xs, refs, precisions, args.backend, Path(tmp))
    text = (f"qonnx file at {args.size}x{args.size}, {args.images} validation scenes (centre crops), "
            "compared with the model:\n\n" + "\n".join(qonnx_rows) +
            f"\n\nqonnx-hls4ml file at {args.size}x{args.size} through hls4ml (io_stream, {args.backend}), "
            "C simulation compared with the model:\n\n" + "\n".join(hls_rows) + "\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
