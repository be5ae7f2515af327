"""The ``trt`` export profile: TensorRT explicit quantization in its canonical Q/DQ form.

The writer is ``qnas.export.qdq.Int8QdqGraph``: int8 weight initializers behind a per-channel
``DequantizeLinear`` (axis 0), per-tensor int8 Q/DQ carrying the real activation scales with zero
point 0, BatchNorm folded, the bias in the ``Conv``, ReLU and a float ``Clip`` to the grid's range
before each ``Q``, opset 13 (see that module for every rule). TensorRT takes each conv's
requantization factor from the Q/DQ scales and runs it as int8 x int8 with int32 accumulation.

What int8 cannot hold is an unsigned 8-bit grid (codes 0..255): such activations, including the
network input, are widened to int8 as 7-bit grids on the same clip (``widen_for_int8``: the ``trt``
target's limits, ``qnas.quant.targets``), which halves their resolution. The ``trt`` file therefore
computes what ``widen_for_int8(model)`` computes. A network searched and fine-tuned with
``--target trt`` already has those grids, and then the file computes the model as it was measured.
"""

from __future__ import annotations

import copy

import onnx
from torch import nn

from qnas.export.qdq import QDQ_OPSET, Int8QdqGraph
from qnas.export.network import network_graph
from qnas.export.ort import FrozenLayers, check_exportable
from qnas.export.profiles import register_profile
from qnas.quant.modules import apply_target
from qnas.supernet.network import SegNet

__all__ = ["widen_for_int8", "export_trt_model", "TRT_OPSET"]

TRT_OPSET = QDQ_OPSET


def widen_for_int8(model: nn.Module) -> nn.Module:
    """A copy of a frozen model with the ``trt`` target's limits (unsigned activation grids at most 7 bits,
    on the same clip): the model a symmetric-int8 engine can run exactly."""
    return apply_target(copy.deepcopy(model), "trt")


@register_profile("trt", suffix="_trt_qdq.onnx", runtime="onnxruntime (TensorRT's Q/DQ form)",
                  reference=widen_for_int8, exact=False,
                  help="TensorRT explicit quantization (symmetric int8 Q/DQ, per-channel weights; unsigned 8-bit "
                       "activations widened to 7-bit, since int8 cannot hold 0..255)")
def export_trt_model(model: SegNet, height: int, width: int) -> onnx.ModelProto:
    """The frozen model, widened where int8 requires it, as a TensorRT Q/DQ graph."""
    widened = widen_for_int8(model)
    check_exportable(widened)
    return network_graph(widened.plan(height, width), FrozenLayers(widened), Int8QdqGraph).model()
