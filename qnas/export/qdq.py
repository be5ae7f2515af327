"""Canonical Q/DQ graphs (explicit quantization) as TensorRT documents them and OpenVINO reads them.

What each conv looks like::

    x_codes --DQ(s_in)--> Conv <--DQ(s_w[c], axis 0)-- int8 weight initializer
                           | bias: float, folded BatchNorm
                         [Relu] [Clip to the next grid's range]
                           |
                           Q(s_out) --> codes for the next conv

* Weights are int8 initializers behind a ``DequantizeLinear`` carrying the per-output-channel
  scales on axis 0, zero points 0 (BatchNorm folded into codes and scales, sign-flipped channels
  where gamma is negative; see ``qnas.export.ort.fold_batchnorm``).
* Activations go through per-tensor ``QuantizeLinear`` / ``DequantizeLinear`` pairs carrying the
  grid's real scale, zero point 0. ``uint8_activations=False`` (TensorRT, which has no uint8):
  every grid must fit int8, so unsigned 8-bit grids are widened to 7 bits first
  (``qnas.export.trt.widen_for_int8``). ``True`` (OpenVINO): unsigned grids are uint8 (codes
  0..255, no widening), symmetric grids int8.
* A float ``Clip`` to the grid's range sits between a conv and its ``Q`` wherever the grid is
  narrower than the Q type's range (4- and 6-bit grids, the narrow-range symmetric grids): that
  is how sub-8-bit grids stay exact on an 8-bit engine. A conv followed by ReLU in the network
  keeps its ``Relu`` (the engines fuse Conv+ReLU); the Clip then only bounds it above.
* Nearest ``Resize`` and ``Concat`` sit between DQs and a Q on the same grid (they copy values, so
  the Q is exact), so every Q's output feeds only DQs, as TensorRT pairs them.
* Residual ``Add`` reads dequantized tensors where the network quantizes them (each block's
  projection has an 8-bit output grid). The network does not quantize a residual sum itself, so
  the third and later blocks of a stage add onto a float stream: a Q/DQ there would compute
  another model than the one trained, and is not written.

Each conv sums products of real numbers ``(c_x * s_in) * (c_w * s_w)`` as the engine chooses (int8
x int8 with int32 accumulation and a requantizing epilogue in TensorRT and OpenVINO, float in a
reference executor), so codes equal the model's except for values within float rounding of a
rounding boundary. Opset 13 (per-axis DequantizeLinear).

Torch-free (numpy + onnx).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnx import TensorProto, helper

from qnas.export.graph import FTensor, GraphWriter, Grid, LayerParams, QTensor, conv_attributes, conv_shape
from qnas.space.plan import Conv

__all__ = ["QdqGraph", "Int8QdqGraph", "MixedQdqGraph", "QDQ_OPSET"]

QDQ_OPSET = 13


class QdqGraph(GraphWriter):
    """Canonical Q/DQ; ``uint8_activations`` says whether unsigned grids may use uint8 codes."""

    opsets = (("", QDQ_OPSET),)
    uint8_activations = False

    # -- codes types ----------------------------------------------------------------------------
    def _code_type(self, grid: Grid) -> tuple[type, int, int]:
        """numpy type and code range ``lo..hi`` (zero point 0) that hold ``grid``."""
        lo, hi = grid.lo - grid.zero_point, grid.hi - grid.zero_point
        if self.uint8_activations and lo >= 0 and not grid.signed:
            return np.uint8, lo, hi
        if lo < -128 or hi > 127:
            raise ValueError(f"a grid with codes {lo}..{hi} does not fit int8; widen it first "
                             "(qnas.export.trt.widen_for_int8)")
        return np.int8, lo, hi

    def _qparams(self, grid: Grid) -> list[str]:
        dtype, _, _ = self._code_type(grid)
        return [self._const("scale", np.float32(grid.scale)), self._const("zp", dtype(0))]

    def _clip(self, y: str, grid: Grid, rectified: bool) -> str:
        """A float Clip to the grid's range where Q's saturation (and a ReLU before it) does not already bound it."""
        dtype, lo, hi = self._code_type(grid)
        info = np.iinfo(dtype)
        lower_free = lo == info.min or (rectified and lo <= 0)
        if lower_free and hi == info.max:
            return y
        s = np.float32(grid.scale)
        bounds = [self._const("lo", np.float32(max(lo, 0) if rectified else lo) * s), self._const("hi", np.float32(hi) * s)]
        return self._node("Clip", [y, *bounds], "clip")

    def _q(self, y: str, grid: Grid, shape: tuple[int, ...], rectified: bool = False, on_grid: bool = False) -> QTensor:
        """Q onto ``grid``; ``on_grid``: ``y`` holds dequantized codes of this grid (no Clip needed)."""
        clipped = y if on_grid else self._clip(y, grid, rectified)
        return QTensor(self._node("QuantizeLinear", [clipped, *self._qparams(grid)], "q"), grid, shape)

    def _dq(self, x: QTensor) -> str:
        return self._node("DequantizeLinear", [x.name, *self._qparams(x.grid)], "dq")

    # -- graph ends -----------------------------------------------------------------------------
    def quantized_input(self, name: str, shape: Sequence[int], grid: Grid) -> QTensor:
        """An input that is already codes on ``grid`` (for measuring one block alone)."""
        dtype, _, _ = self._code_type(grid)
        elem = TensorProto.UINT8 if dtype is np.uint8 else TensorProto.INT8
        self.inputs.append(helper.make_tensor_value_info(name, elem, list(shape)))
        return QTensor(name, grid, tuple(shape))

    def output(self, x: QTensor | FTensor, name: str) -> None:
        """A graph output: real numbers (codes are dequantized)."""
        if isinstance(x, QTensor):
            x = self.dequantize(x)
        super().output(x, name)

    # -- operators ------------------------------------------------------------------------------
    def quantize(self, x: FTensor, grid: Grid) -> QTensor:
        return self._q(x.name, grid, x.shape)

    def dequantize(self, x: QTensor) -> FTensor:
        return FTensor(self._dq(x), x.shape)

    def _conv(self, x: QTensor, layer: LayerParams, op: Conv, bias: np.ndarray | None) -> str:
        self._conv_inputs(x, layer, op)
        cout = layer.codes.shape[0]
        weight = self._node("DequantizeLinear", [self._const("w", layer.codes.astype(np.int8)),
                                                 self._const("w_scale", np.asarray(layer.scale, np.float32).reshape(cout)),
                                                 self._const("w_zp", np.zeros(cout, np.int8))], "w", axis=0)
        inputs = [self._dq(x), weight]
        if bias is not None:
            inputs.append(self._const("bias", np.asarray(bias, np.float32).reshape(cout)))
        y = self._node("Conv", inputs, "conv", **conv_attributes(op))
        return self._node("Relu", [y], "relu") if op.relu else y

    def conv(self, x: QTensor, layer: LayerParams, op: Conv, out: Grid) -> QTensor:
        """Conv (the int32 bias as a real number), ReLU, Clip to ``out``'s range, Q onto ``out``."""
        codes = layer.bias_codes()
        bias = None if codes is None else codes.astype(np.float32) * layer.accumulator_step()
        return self._q(self._conv(x, layer, op, bias), out, conv_shape(x, op), rectified=op.relu)

    def conv_to_float(self, x: QTensor, layer: LayerParams, op: Conv) -> FTensor:
        """Conv with the float bias (and ReLU): the classifier's logits."""
        return FTensor(self._conv(x, layer, op, layer.bias), conv_shape(x, op))

    def resize_nearest(self, x: QTensor | FTensor, size: Sequence[int]) -> QTensor | FTensor:
        """Codes are resized between a DQ and a Q on the same grid (exact: nearest resizing copies values)."""
        if isinstance(x, FTensor) or tuple(size) == x.shape[2:]:
            return super().resize_nearest(x, size)
        y = super().resize_nearest(FTensor(self._dq(x), x.shape), size)
        return self._q(y.name, x.grid, y.shape, on_grid=True)

    def concat(self, xs: Sequence[QTensor]) -> QTensor:
        """Concatenation between DQs and a Q on the shared grid (exact)."""
        grids = {(x.grid.scale, x.grid.zero_point) for x in xs}
        if len(grids) != 1:
            raise ValueError("concatenated integer tensors must share one scale and zero point")
        grid = Grid(xs[0].grid.scale, xs[0].grid.zero_point, min(x.grid.lo for x in xs), max(x.grid.hi for x in xs))
        name = self._node("Concat", [self._dq(x) for x in xs], "concat", axis=1)
        return self._q(name, grid, (xs[0].shape[0], sum(x.shape[1] for x in xs), *xs[0].shape[2:]), on_grid=True)


class Int8QdqGraph(QdqGraph):
    """Signed int8 codes only (TensorRT): unsigned 8-bit grids must be widened to 7 bits first."""

    uint8_activations = False


class MixedQdqGraph(QdqGraph):
    """uint8 codes for unsigned grids, int8 for symmetric ones (OpenVINO's CPU plugin): no widening."""

    uint8_activations = True
