"""Writers whose convs sum integer codes exactly: the shared form of the ``qonnx`` and ``trt`` profiles.

Each conv reads its input as integer codes (the real value divided by the grid's scale, rounded
and clipped to the grid), its weights as integer codes, the folded BatchNorm bias as an integer
on the accumulator grid, and one ``Mul`` by ``s_in * s_w[c]`` rescales the sum. This is literally
what the evaluated PyTorch model computes (``qnas.supernet.ops.integer_conv2d``): sums of integer
products are exact in float32 while no partial sum reaches 2^24, and every other step is the
same single float operation on the same operands, so any engine that executes the file
reproduces the model's logits bit for bit. A conv whose worst case reaches 2^24 (wide layers at
8 bits) is still exact on an integer engine, but a float executor may round its sums: such
convs are listed in the file's metadata (``INEXACT_CONVS_KEY``) and by ``qnas export``.
A writer only decides how codes are represented: QONNX ``Quant`` nodes, or int8 Q/DQ pairs.

Torch-free (numpy + onnx).
"""

from __future__ import annotations

import numpy as np

from qnas.export.graph import FTensor, GraphWriter, Grid, LayerParams, QTensor, conv_attributes, conv_shape
from qnas.quant.grids import float32_exact
from qnas.space.plan import Conv

__all__ = ["IntegerCodesGraph"]


class IntegerCodesGraph(GraphWriter):
    """Division by the scale, codes, integer conv, one rescale; subclasses say how codes are held."""

    # -- what a subclass provides ----------------------------------------------------------------
    def _codes(self, scaled: str, grid: Grid) -> str:
        """Codes on ``grid`` from a tensor already divided by the grid's scale (rounded, clipped)."""
        raise NotImplementedError

    def _float_codes(self, x: QTensor) -> str:
        """The codes of ``x`` as a float32 tensor of integers (what the Conv reads)."""
        raise NotImplementedError

    def _weight_codes(self, layer: LayerParams) -> str:
        """The layer's weight codes as a float32 tensor of integers."""
        raise NotImplementedError

    # -- the shared form -------------------------------------------------------------------------
    def quantize(self, x: FTensor, grid: Grid) -> QTensor:
        """``codes(x / s)`` at the grid's bit width: the codes PACT computes."""
        scaled = self._node("Div", [x.name, self._const("act_scale", np.float32(grid.scale))], "scaled")
        return QTensor(self._codes(scaled, grid), grid, x.shape)

    def dequantize(self, x: QTensor) -> FTensor:
        return FTensor(self._node("Mul", [self._float_codes(x), self._const("act_scale", np.float32(x.grid.scale))],
                                  "real"), x.shape)

    def _conv(self, x: QTensor, layer: LayerParams, op: Conv, bias: np.ndarray | None) -> str:
        self._conv_inputs(x, layer, op)
        if not float32_exact(layer.worst_case_sum(with_bias=bias is not None)):
            self.inexact_convs.append(layer.label)
        inputs = [self._conv_input(self._float_codes(x)), self._weight_codes(layer)]
        if bias is not None:
            inputs.append(self._const("b_codes", bias.astype(np.float32)))
        acc = self._conv_output(self._node("Conv", inputs, "acc", **conv_attributes(op)))
        return self._rescaled(acc, layer)

    def conv(self, x: QTensor, layer: LayerParams, op: Conv, out: Grid) -> QTensor:
        """Integer conv with the int32 bias inside the sum, rescaled, then quantized onto ``out``."""
        y = self._conv(x, layer, op, layer.bias_codes())
        return self.quantize(FTensor(y, conv_shape(x, op)), out)

    def conv_to_float(self, x: QTensor, layer: LayerParams, op: Conv) -> FTensor:
        """Integer conv rescaled to float, then the float bias (and ReLU): the classifier's logits."""
        y = self._float_tail(self._conv(x, layer, op, None), layer, op.relu)
        return FTensor(y, conv_shape(x, op))
