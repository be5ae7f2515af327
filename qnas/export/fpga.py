"""FPGA front ends: qonnx's channels-last preparation, and the ``qonnx-hls4ml`` profile for hls4ml.

hls4ml and FINN ingest a QONNX file after qonnx's ``cleanup_model`` and ``ConvertToChannelsLastAndClean``
(``to_channels_last`` here). The ``qonnx`` file is channels-last between convs as written
(``qnas.export.qonnx``), so both take it and the result still computes the model's logits.

hls4ml's QONNX converter (1.3) reads a subset of that, so the ``qonnx-hls4ml`` profile writes the same
network with two exact rewrites (``Hls4mlGraph``):

* a nearest ``Resize`` takes integer ``scales`` [1, s, s, 1] (channels-last) and a constant ``roi``, not
  ``sizes``: hls4ml refuses ``sizes`` ("Sizes parameter is not supported by hls4ml") and drops the roi
  after testing ``if roi:``, which numpy >= 2.2 refuses for the usual empty roi ("The truth value of an
  empty array is ambiguous"); the roi is [0.0], which ONNX reads only in ``tf_crop_and_resize`` mode.
  Input sizes must be multiples of the network's stride (otherwise the resize keeps ``sizes``, with a
  warning, and hls4ml will refuse it);
* a concatenation of k tensors is k - 1 concatenations of two (hls4ml's ``Concatenate`` takes two).

hls4ml 1.3's conv templates have no dilation, so a policy with zoomed blocks (dilated depthwise convs) is
refused by this profile (the ``qonnx`` file holds it exactly).

``to_hls4ml`` follows hls4ml's documented QONNX path (``config_from_onnx_model``,
``convert_from_onnx_model``, ``io_stream``) with one configuration setting: each depthwise conv gets an
int32 output type (``ACCUMULATOR``), because hls4ml 1.3 would otherwise fold the rescale after it into
its weights as a per-pixel array and fail ("operands could not be broadcast"). ``compile()`` and
``predict()`` then run hls4ml's C simulation with g++ (no vendor tools). hls4ml is optional
(``pip install qnas[fpga]``) and imported only by ``to_hls4ml``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from qnas.errors import QnasError
from qnas.export.network import network_graph
from qnas.export.ort import FrozenLayers, check_exportable
from qnas.export.profiles import register_profile
from qnas.export.qonnx import QonnxGraph, qonnx_runner
from qnas.supernet.network import SegNet

__all__ = ["ACCUMULATOR", "PRECISION", "Hls4mlGraph", "export_hls4ml_model", "to_channels_last", "to_hls4ml"]

ACCUMULATOR = "fixed<32,32>"  # an int32 accumulator: every conv's integer sum fits (qnas.quant.grids)
# hls4ml's type wherever the file fixes none: the image, each per-channel rescale factor s_in * s_w[c]
# (~1e-4 .. 1e-1) and 1 / s_out, and each conv's bias codes. 32 fractional bits hold the factors to ~1e-6 of
# their value and 32 integer bits the bias codes; at hls4ml's usual fixed<16,6> or fixed<32,16> the smallest
# factors are off by up to 10% (benchmarks/results/fpga_frontends.md)
PRECISION = "fixed<64,32>"


class Hls4mlGraph(QonnxGraph):
    """The ``qonnx`` writer with resizes by integer scales and concatenations of two tensors at a time."""

    def _resize(self, x: str, shape: Sequence[int], out: Sequence[int]) -> str:
        factors = [o / i for i, o in zip(shape[2:], out[2:])]
        if any(f != int(f) for f in factors):  # still exact QONNX, but hls4ml refuses ``sizes``
            warnings.warn(f"qonnx-hls4ml: resize {list(shape[2:])} -> {list(out[2:])} is not by an integer factor, "
                          "which hls4ml cannot read; use an input size divisible by the network's total stride",
                          stacklevel=2)
            return super()._resize(x, shape, out)
        scales = self._const("scales", np.array(self._layout([1, 1, *factors]), np.float32))
        roi = self._const("roi", np.zeros(1, np.float32))  # read only in tf_crop_and_resize mode
        return self._node("Resize", [x, roi, scales], "resize", mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor")

    def _concat(self, names: Sequence[str]) -> str:
        out = names[0]
        for name in names[1:]:
            out = self._node("Concat", [out, name], "concat", axis=self._channel_axis)
        return out


def to_channels_last(model: onnx.ModelProto) -> Any:
    """``model`` as hls4ml's and FINN's QONNX front ends take it: qonnx's ``cleanup_model``, then
    ``ConvertToChannelsLastAndClean``, then ``cleanup_model`` again (a qonnx ``ModelWrapper``)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.util.cleanup import cleanup_model

    wrapper = cleanup_model(ModelWrapper(model))
    wrapper = wrapper.transform(ConvertToChannelsLastAndClean())
    return cleanup_model(wrapper)


@register_profile("qonnx-hls4ml", suffix="_hls4ml_qonnx.onnx", runtime="qonnx.core.onnx_exec", runner=qonnx_runner,
                  help="the qonnx file in the form hls4ml's QONNX converter reads (resizes by integer scales, "
                       "two-input concatenations), equal to the evaluated model bit for bit")
def export_hls4ml_model(model: SegNet, height: int, width: int) -> onnx.ModelProto:
    """The frozen, quantized model as a QONNX graph that hls4ml's converter parses (float image in, logits
    at input size out); ``height`` and ``width`` should be multiples of the network's stride."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    check_exportable(model)
    plan = model.plan(height, width)
    dilated = [op.label for op in plan.convs() if op.dilation != 1]
    if dilated:
        raise QnasError(f"qonnx-hls4ml: hls4ml 1.3 computes every conv without dilation, and {dilated[0]} (a zoomed "
                        f"block) has dilation 2; export this policy as qonnx, or pick one without zoomed blocks")
    graph = network_graph(plan, FrozenLayers(model), Hls4mlGraph).model()
    return ModelWrapper(graph).transform(InferShapes()).model


def _group(node: onnx.NodeProto) -> int:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)


def to_hls4ml(model: Any, output_dir: str | Path, *, precision: str = PRECISION, io_type: str = "io_stream",
              backend: str = "Vitis") -> Any:
    """hls4ml's model of a ``qonnx-hls4ml`` file (a ``ModelProto``, or its ``to_channels_last`` form), converted
    as hls4ml documents it, with ``precision`` wherever the file fixes no type. ``compile()`` then
    ``predict(x)`` (x: N, C, H, W) run its C simulation; the output is the logits, flattened."""
    import hls4ml

    wrapper = to_channels_last(model) if isinstance(model, onnx.ModelProto) else model
    config = hls4ml.utils.config_from_onnx_model(wrapper.model, granularity="name", backend=backend,
                                                 default_precision=precision)
    for node in wrapper.graph.node:
        if node.op_type == "Conv" and _group(node) > 1:  # see the module doc
            config["LayerName"][node.name]["Precision"]["result"] = ACCUMULATOR
    return hls4ml.converters.convert_from_onnx_model(wrapper.model, output_dir=str(output_dir), io_type=io_type,
                                                     backend=backend, hls_config=config)
