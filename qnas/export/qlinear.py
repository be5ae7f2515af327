"""A small writer for ONNX graphs whose every conv is an integer kernel in onnxruntime.

A conv whose output goes to exactly one other conv is a ``QLinearConv`` (uint8 activations,
per-channel weights, int32 bias) that writes its result straight onto the consumer's
input grid (plus an integer Clip for grids narrower than 8 bits). A conv whose output is needed
as a real number (a residual operand, a tensor several convs read at different grids) has an
8-bit output quantizer in the model: it is a ``QLinearConv`` onto that grid, dequantized, and
each reader quantizes the number onto its own grid. The logits come from exact int32 sums (a
``MatMulInteger`` for the pointwise classifier, else a ``ConvInteger``) rescaled to float. Nearest
resizing and concatenation of same-grid tensors copy codes, so they are exact on integers. What an
INT8 engine runs is written down explicitly instead of being left to a fusion pass, and it computes what the fake-quantized PyTorch model computes.

Torch-free (numpy + onnx): the latency table builds blocks from architecture alone, and the
``ort`` export profile fills the same graphs with a trained network's codes and scales.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from onnx import ModelProto, TensorProto, helper

from qnas.export.graph import (NCHW_TO_NHWC, NHWC_TO_NCHW, OPSET, FTensor, GraphWriter, Grid, LayerParams, QTensor,
                               conv_attributes, conv_shape)
from qnas.space.plan import Conv

__all__ = ["Grid", "QTensor", "FTensor", "QLinearGraph", "OPSET", "unsigned_weights", "held_weights",
           "uint8_weight_convs", "WeightKinds"]


# u8 x s8 products are summed in pairs into int16 by x86 CPUs without VNNI (onnxruntime's AVX2 kernels use
# vpmaddubsw, which saturates at 32767); two products of a code above 129 and a weight of 127 overflow.
INT16_PAIR_LIMIT = 32767


def unsigned_weights(grid: Grid, codes: np.ndarray) -> bool:
    """Whether a QLinearConv must hold its weights as uint8 (zero point 128) to be exact everywhere:
    true when two products of the input's largest raw uint8 code and the largest weight code can
    overflow an int16 pair sum. onnxruntime then sums u8 x u8 products in int32 (exact on every CPU)."""
    largest = int(np.abs(codes.astype(np.int64)).max(initial=0))
    return 2 * grid.hi * largest > INT16_PAIR_LIMIT


def held_weights(grid: Grid, codes: np.ndarray) -> tuple[np.ndarray, np.integer]:
    """Weight codes as an integer kernel holds them, and their zero point: int8 (0), or uint8 with zero
    point 128 where u8 x s8 pair sums could saturate (``unsigned_weights``)."""
    if unsigned_weights(grid, codes):
        return (codes.astype(np.int16) + 128).astype(np.uint8), np.uint8(128)
    return codes.astype(np.int8), np.int8(0)


class WeightKinds(NamedTuple):
    """How a file's integer convs hold their weights."""

    uint8: int  # uint8 with zero point 128 (``held_weights``): onnxruntime's u8 x u8 kernel
    total: int  # every QLinearConv and MatMulInteger


WEIGHT_INPUT = {"QLinearConv": 3, "MatMulInteger": 1}


def uint8_weight_convs(model: ModelProto) -> WeightKinds:
    """How many of a file's integer convs (``QLinearConv``, the classifier's ``MatMulInteger``) hold uint8
    weights, of how many. onnxruntime runs those with its u8 x u8 kernel, about half as fast as u8 x s8 on
    CPUs with VNNI."""
    uint8 = {t.name for t in model.graph.initializer if t.data_type == TensorProto.UINT8}
    convs = [n for n in model.graph.node if n.op_type in WEIGHT_INPUT]
    return WeightKinds(sum(n.input[WEIGHT_INPUT[n.op_type]] in uint8 for n in convs), len(convs))


class QLinearGraph(GraphWriter):
    """Build a QLinear graph node by node; ``model()`` returns the ONNX ModelProto."""

    def _grid_consts(self, grid: Grid) -> tuple[str, str]:
        return (self._const("scale", np.array(grid.scale, dtype=np.float32)),
                self._const("zp", np.array(grid.zero_point, dtype=np.uint8)))

    def _clip(self, x: QTensor) -> QTensor:
        """An integer Clip to the grid's codes (sub-8-bit or narrow grids); the tensor stays uint8."""
        if not x.grid.clipped:
            return x
        lo, hi = self._const("lo", np.array(x.grid.lo, np.uint8)), self._const("hi", np.array(x.grid.hi, np.uint8))
        return QTensor(self._node("Clip", [x.name, lo, hi], "clip"), x.grid, x.shape)

    def quantized_input(self, name: str, shape: Sequence[int], grid: Grid) -> QTensor:
        """An input that is already uint8 codes on ``grid`` (for measuring one block alone)."""
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.UINT8, list(shape)))
        return QTensor(name, grid, tuple(shape))

    def output(self, x: QTensor | FTensor, name: str) -> None:
        """A graph output: float tensors as they are, integer codes as uint8."""
        if isinstance(x, FTensor):
            return super().output(x, name)
        self.nodes.append(helper.make_node("Identity", [x.name], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.UINT8, list(x.shape)))

    # -- operators ------------------------------------------------------------------------------
    def quantize(self, x: FTensor, grid: Grid) -> QTensor:
        """QuantizeLinear (round half to even, saturate) then the grid's integer Clip."""
        return self._clip(QTensor(self._node("QuantizeLinear", [x.name, *self._grid_consts(grid)], "q"), grid, x.shape))

    def conv(self, x: QTensor, layer: LayerParams, op: Conv, out: Grid) -> QTensor:
        """``QLinearConv`` with 'same' padding onto grid ``out``: weight codes [O, I/g, k, k] as int8, or
        as uint8 with zero point 128 where int8 could saturate (``unsigned_weights``), per-channel
        scale [O], the bias as int32 on the accumulator grid (s_in * s_w)."""
        self._conv_inputs(x, layer, op)
        cout = op.cout
        w_scale = np.asarray(layer.scale, dtype=np.float32).reshape(cout)
        weights, zero_point = held_weights(x.grid, layer.codes)
        w_zp = np.full(cout, zero_point, weights.dtype)
        inputs = [x.name, *self._grid_consts(x.grid), self._const("w", weights),
                  self._const("w_scale", w_scale), self._const("w_zp", w_zp), *self._grid_consts(out)]
        if layer.bias is not None:
            inputs.append(self._const("b", layer.bias_codes().astype(np.int32)))
        name = self._node("QLinearConv", inputs, "qconv", **conv_attributes(op))
        return self._clip(QTensor(name, out, conv_shape(x, op)))

    def conv_to_float(self, x: QTensor, layer: LayerParams, op: Conv) -> FTensor:
        """Exact int32 sums, then ``acc * s_in * s_w[c] + bias`` in float (and ReLU): the logits.

        A pointwise conv (1x1, stride 1, one group: the classifier) is a ``MatMulInteger`` of the pixels, in
        N, H, W, C order, by the weights; onnxruntime cancels the Transpose into that order against its own
        channels-last layout. Its ``ConvInteger`` (im2col, then a GEMM with the few classes as rows) took
        ten times as long (0.27 against 0.02 ms at 128x256, 64 -> 11 channels). Weights are held as in
        ``conv`` (``held_weights``), so the sums are exact on CPUs without VNNI too. Any other conv is a
        ``ConvInteger``."""
        self._conv_inputs(x, layer, op)
        if (op.kernel, op.stride, op.groups, op.padding) == (1, 1, 1, 0) and not self.channels_last:
            acc = self._pointwise_sums(x, layer, op)
        else:
            acc = self._node("ConvInteger", [x.name, self._const("w", layer.codes.astype(np.int8)),
                                             self._const("x_zp", np.array(x.grid.zero_point, np.uint8))], "acc",
                             **conv_attributes(op))
        as_float = self._node("Cast", [acc], "acc_f", to=TensorProto.FLOAT)
        y = self._float_tail(self._rescaled(as_float, layer), layer, op.relu)
        return FTensor(y, conv_shape(x, op))

    def _pointwise_sums(self, x: QTensor, layer: LayerParams, op: Conv) -> str:
        """The int32 sums of a 1x1 conv as a ``MatMulInteger`` [pixels, C] x [C, O], back in N, C, H, W."""
        _, c, h, w = x.shape
        pixels = self._node("Reshape", [self._node("Transpose", [x.name], "nhwc", perm=list(NCHW_TO_NHWC)),
                                        self._const("rows", np.array([-1, c], np.int64))], "pixels")
        weights, zero_point = held_weights(x.grid, layer.codes)
        inputs = [pixels, self._const("w", np.ascontiguousarray(weights.reshape(op.cout, c).T)),
                  self._const("x_zp", np.array(x.grid.zero_point, np.uint8))]
        if zero_point:
            inputs.append(self._const("w_zp", np.array(zero_point, weights.dtype)))
        acc = self._node("MatMulInteger", inputs, "acc")
        image = self._node("Reshape", [acc, self._const("image", np.array([-1, h, w, op.cout], np.int64))], "image")
        return self._node("Transpose", [image], "nchw", perm=list(NHWC_TO_NCHW))

    def dequantize(self, x: QTensor) -> FTensor:
        return FTensor(self._node("DequantizeLinear", [x.name, *self._grid_consts(x.grid)], "dq"), x.shape)
