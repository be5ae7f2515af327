"""The ``qonnx`` export profile: every tensor at its searched bit width, as QONNX ``Quant`` nodes.

For FPGA flows such as FINN. Each conv reads integer codes: the real input is divided by its
grid's scale and passed through a unit-scale ``Quant`` of the layer's activation bit width
(signed narrow or unsigned), the weights are integer codes behind a unit-scale ``Quant`` of the
layer's weight bit width, the folded BatchNorm bias is an integer on the accumulator grid, and one
``Mul`` by ``s_in * s_w[c]`` rescales the sum. This is literally what the evaluated PyTorch model
computes (``qnas.supernet.ops.integer_conv2d``): the integer sums are exact in float32, and every
other step is the same single float operation on the same operands, so executing the file with
``qonnx.core.onnx_exec`` reproduces the model's logits bit for bit. ``qonnx.util.inference_cost``
reads the unit-scale Quant nodes as INTb / UINTb tensors and counts the same BitOps as ``qnas cost``.

Brevitas' own QONNX export puts dequantized (scaled) tensors through the Conv, whose float sums
then depend on summation order; that is why this writer emits the integer form itself.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from qnas.export.graph import OPSET, FTensor, GraphWriter, Grid, LayerParams, QTensor, conv_out_shape
from qnas.export.network import network_graph
from qnas.export.ort import FrozenLayers, check_exportable
from qnas.space import SpaceSpec

__all__ = ["QUANT_DOMAIN", "QonnxGraph", "export_qonnx_model"]

QUANT_DOMAIN = "qonnx.custom_op.general"


class QonnxGraph(GraphWriter):
    """A QONNX writer: a ``QTensor`` is integer codes held in float32 (a unit-scale Quant's output)."""

    opsets = (("", OPSET), (QUANT_DOMAIN, 1))

    def _quant(self, x: str, bits: int, signed: bool, narrow: bool, stem: str) -> str:
        f32 = np.float32
        return self._node("Quant", [x, self._const("one", f32(1.0)), self._const("zero", f32(0.0)),
                                    self._const("bits", f32(bits))], stem, domain=QUANT_DOMAIN,
                          signed=int(signed), narrow=int(narrow), rounding_mode="ROUND")

    def quantize(self, x: FTensor, grid: Grid) -> QTensor:
        """``Quant(x / s)`` at the grid's bit width: the codes PACT computes (a Relu first on a rectified grid)."""
        src = self._node("Relu", [x.name], "relu") if grid.rectified else x.name
        scaled = self._node("Div", [src, self._const("act_scale", np.float32(grid.scale))], "scaled")
        return QTensor(self._quant(scaled, grid.bits, grid.signed, grid.signed, "codes"), grid, x.shape)

    def _conv(self, x: QTensor, layer: LayerParams, stride: int, groups: int, bias: np.ndarray | None) -> str:
        if not isinstance(x, QTensor):
            raise TypeError("a conv reads integer codes; quantize its float input first")
        k = layer.codes.shape[-1]
        weights = self._quant(self._const("w_codes", layer.codes.astype(np.float32)), layer.weight_bits,
                              True, True, "w")
        inputs = [x.name, weights] + ([] if bias is None else [self._const("b_codes", bias.astype(np.float32))])
        acc = self._node("Conv", inputs, "acc", kernel_shape=[k, k], strides=[stride, stride],
                         pads=[k // 2] * 4, group=groups)
        return self._node("Mul", [acc, self._const("step", self._channel(layer.accumulator_step()))], "conv")

    def conv(self, x: QTensor, layer: LayerParams, stride: int, groups: int, out: Grid) -> QTensor:
        """Integer conv with the int32 bias inside the sum, rescaled, then quantized onto ``out``."""
        y = self._conv(x, layer, stride, groups, layer.bias_codes())
        return self.quantize(FTensor(y, conv_out_shape(x, layer.codes.shape[0], layer.codes.shape[-1], stride)), out)

    def conv_to_float(self, x: QTensor, layer: LayerParams, stride: int, groups: int, relu: bool) -> FTensor:
        """Integer conv rescaled to float, then the float bias (and ReLU): the classifier's logits."""
        y = self._conv(x, layer, stride, groups, None)
        if layer.bias is not None:
            y = self._node("Add", [y, self._const("bias", self._channel(layer.bias))], "biased")
        if relu:
            y = self._node("Relu", [y], "relu")
        return FTensor(y, conv_out_shape(x, layer.codes.shape[0], layer.codes.shape[-1], stride))

    def dequantize(self, x: QTensor) -> FTensor:
        return FTensor(self._node("Mul", [x.name, self._const("act_scale", np.float32(x.grid.scale))], "real"),
                       x.shape)


def export_qonnx_model(model, spec: SpaceSpec, genome: Mapping[str, int], height: int, width: int) -> onnx.ModelProto:
    """The frozen, quantized model as a QONNX graph (float image in, logits at input size out), with
    every tensor's shape recorded so that qonnx and FINN tools can take it as it is."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    check_exportable(model)
    graph = network_graph(spec, genome, height, width, FrozenLayers(model), QonnxGraph).model()
    return ModelWrapper(graph).transform(InferShapes()).model
