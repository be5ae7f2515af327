"""The ``trt`` export profile: TensorRT explicit quantization with symmetric int8 Q/DQ only.

Every quantized tensor is ``QuantizeLinear`` / ``DequantizeLinear`` with an int8 zero point of 0
(no uint8 anywhere), weights are int8 initializers dequantized per output channel on axis 0,
BatchNorm is folded into the conv, and opset 13. There is no integer Clip: a grid narrower than
int8 (4- and 6-bit activations, the narrow-range signed 8-bit grid) is kept exact by a float
``Clip`` to the grid's real range in front of its ``QuantizeLinear`` (TensorRT fuses it as an
activation; it also plays the ReLU), so its codes stay within the quantizer's range.

What int8 cannot hold is an unsigned 8-bit grid (codes 0..255): such activations, including the
network input, are widened to int8 as 7-bit grids on the same clip (``widen_for_int8``), which
halves their resolution. The ``trt`` file therefore computes what ``widen_for_int8(model)``
computes, and the accuracy this costs is measured against the model as searched.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import onnx
from torch import nn

from qnas.export.graph import OPSET, FTensor, GraphWriter, Grid, LayerParams, QTensor, conv_out_shape
from qnas.export.network import network_graph
from qnas.export.ort import FrozenLayers, check_exportable
from qnas.quant import PACTActivationQuant
from qnas.space import SpaceSpec

__all__ = ["TrtGraph", "widen_for_int8", "export_trt_model", "TRT_OPSET"]

TRT_OPSET = OPSET


class TrtGraph(GraphWriter):
    """A TensorRT Q/DQ writer: a ``QTensor`` is an int8 ``QuantizeLinear`` output (zero point 0)."""

    opsets = (("", TRT_OPSET),)

    def _scale_zp(self, grid: Grid) -> list[str]:
        return [self._const("scale", np.float32(grid.scale)), self._const("zp", np.int8(0))]

    def quantize(self, x: FTensor, grid: Grid) -> QTensor:
        """Float Clip to the grid's range, then int8 QuantizeLinear on the grid's scale."""
        lo, hi = grid.lo - grid.zero_point, grid.hi - grid.zero_point
        if lo < -127 or hi > 127:
            raise ValueError(f"a grid with codes {lo}..{hi} does not fit symmetric int8; widen it first "
                             "(qnas.export.trt.widen_for_int8)")
        low, high = grid.real_range()
        clipped = self._node("Clip", [x.name, self._const("lo", low), self._const("hi", high)], "clip")
        return QTensor(self._node("QuantizeLinear", [clipped, *self._scale_zp(grid)], "q"), grid, x.shape)

    def dequantize(self, x: QTensor) -> FTensor:
        return FTensor(self._node("DequantizeLinear", [x.name, *self._scale_zp(x.grid)], "dq"), x.shape)

    def _conv(self, x: QTensor, layer: LayerParams, stride: int, groups: int) -> str:
        if not isinstance(x, QTensor):
            raise TypeError("a conv reads a quantized tensor; quantize its float input first")
        cout, k = layer.codes.shape[0], layer.codes.shape[-1]
        weights = self._node("DequantizeLinear", [self._const("w", layer.codes.astype(np.int8)),
                                                  self._const("w_scale", np.asarray(layer.scale, np.float32)),
                                                  self._const("w_zp", np.zeros(cout, np.int8))], "w", axis=0)
        inputs = [self.dequantize(x).name, weights]
        if layer.bias is not None:
            inputs.append(self._const("bias", np.asarray(layer.bias, np.float32)))
        return self._node("Conv", inputs, "conv", kernel_shape=[k, k], strides=[stride, stride],
                          pads=[k // 2] * 4, group=groups)

    def conv(self, x: QTensor, layer: LayerParams, stride: int, groups: int, out: Grid) -> QTensor:
        y = self._conv(x, layer, stride, groups)
        return self.quantize(FTensor(y, conv_out_shape(x, layer.codes.shape[0], layer.codes.shape[-1], stride)), out)

    def conv_to_float(self, x: QTensor, layer: LayerParams, stride: int, groups: int, relu: bool) -> FTensor:
        y = self._conv(x, layer, stride, groups)
        if relu:
            y = self._node("Relu", [y], "relu")
        return FTensor(y, conv_out_shape(x, layer.codes.shape[0], layer.codes.shape[-1], stride))


def _seven_bit(quant: PACTActivationQuant) -> PACTActivationQuant:
    widened = PACTActivationQuant((7,), signed=False)
    widened.alpha = nn.Parameter(quant.active_alpha().detach().reshape(1).clone(), requires_grad=False)
    widened.enabled = quant.enabled
    return widened


def widen_for_int8(model: nn.Module) -> nn.Module:
    """A copy of a frozen model whose unsigned 8-bit activation quantizers are 7-bit on the same
    clip: the model a symmetric-int8 engine can run exactly."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, PACTActivationQuant) and not child.signed and child.active_bits == 8:
                setattr(parent, name, _seven_bit(child))
    return model


def export_trt_model(model, spec: SpaceSpec, genome: Mapping[str, int], height: int, width: int) -> onnx.ModelProto:
    """The frozen model, widened where int8 requires it, as a TensorRT Q/DQ graph."""
    widened = widen_for_int8(model)
    check_exportable(widened)
    return network_graph(spec, genome, height, width, FrozenLayers(widened), TrtGraph).model()
