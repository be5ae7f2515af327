"""A small writer for ONNX graphs whose every conv is an integer kernel in onnxruntime.

A conv whose output goes to exactly one other conv is a ``QLinearConv`` (uint8 activations,
int8 per-channel weights, int32 bias) that writes its result straight onto the consumer's
input grid (plus an integer Clip for grids narrower than 8 bits). A conv whose output is needed
as a real number (a residual operand, a tensor several convs read at different grids) has an
8-bit output quantizer in the model: it is a ``QLinearConv`` onto that grid, dequantized, and
each reader quantizes the number onto its own grid. The logits come from a ``ConvInteger``
(exact int32 sums) rescaled to float. Nearest resizing and concatenation of same-grid tensors copy codes, so
they are exact on integers. What an INT8 engine runs is written down explicitly instead of
being left to a fusion pass, and it computes what the fake-quantized PyTorch model computes.

Torch-free (numpy + onnx): the latency table builds blocks from architecture alone, and the
``ort`` export profile fills the same graphs with a trained network's codes and scales.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["Grid", "QTensor", "FTensor", "QLinearGraph", "OPSET"]

OPSET = 13


@dataclass(frozen=True)
class Grid:
    """A uint8 activation grid: value = scale * (code - zero_point), codes in [lo, hi].

    Unsigned b-bit grids use zero point 0 and codes [0, 2^b - 1]; symmetric (signed) b-bit
    grids use zero point 128 and codes 128 +- (2^(b-1) - 1), so every tensor is uint8 and
    every QLinearConv runs onnxruntime's u8s8 kernel. Codes narrower than [0, 255] add an
    integer Clip after the op that produces them.
    """

    scale: float
    zero_point: int = 0
    lo: int = 0
    hi: int = 255

    @classmethod
    def unsigned(cls, scale: float, bits: int = 8) -> Grid:
        return cls(float(scale), 0, 0, 2**bits - 1)

    @classmethod
    def symmetric(cls, scale: float, bits: int = 8) -> Grid:
        levels = 2 ** (bits - 1) - 1
        return cls(float(scale), 128, 128 - levels, 128 + levels)

    @property
    def clipped(self) -> bool:
        return self.lo > 0 or self.hi < 255


@dataclass(frozen=True)
class QTensor:
    """Integer codes (uint8) on ``grid``."""

    name: str
    grid: Grid
    shape: tuple[int, ...]  # N, C, H, W


@dataclass(frozen=True)
class FTensor:
    """A float tensor (between integer kernels: residual sums, branch points, logits)."""

    name: str
    shape: tuple[int, ...]


class QLinearGraph:
    """Build a QLinear graph node by node; ``model()`` returns the ONNX ModelProto."""

    def __init__(self, name: str = "qnas") -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._count = 0

    # -- plumbing -------------------------------------------------------------------------------
    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def _const(self, stem: str, value: np.ndarray) -> str:
        name = self._name(stem)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def _grid_consts(self, grid: Grid) -> tuple[str, str]:
        return (self._const("scale", np.array(grid.scale, dtype=np.float32)),
                self._const("zp", np.array(grid.zero_point, dtype=np.uint8)))

    def _clip(self, x: QTensor) -> QTensor:
        """An integer Clip to the grid's codes (sub-8-bit or narrow grids); the tensor stays uint8."""
        if not x.grid.clipped:
            return x
        out = self._name("clip")
        self.nodes.append(helper.make_node("Clip", [x.name, self._const("lo", np.array(x.grid.lo, np.uint8)),
                                                    self._const("hi", np.array(x.grid.hi, np.uint8))], [out]))
        return QTensor(out, x.grid, x.shape)

    # -- graph ends -----------------------------------------------------------------------------
    def input(self, name: str, shape: Sequence[int]) -> FTensor:
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        return FTensor(name, tuple(shape))

    def quantized_input(self, name: str, shape: Sequence[int], grid: Grid) -> QTensor:
        """An input that is already uint8 codes on ``grid`` (for measuring one block alone)."""
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.UINT8, list(shape)))
        return QTensor(name, grid, tuple(shape))

    def output(self, x: QTensor | FTensor, name: str) -> None:
        """A graph output: float tensors as they are, integer codes as uint8."""
        self.nodes.append(helper.make_node("Identity", [x.name], [name]))
        elem = TensorProto.UINT8 if isinstance(x, QTensor) else TensorProto.FLOAT
        self.outputs.append(helper.make_tensor_value_info(name, elem, list(x.shape)))

    # -- operators ------------------------------------------------------------------------------
    def quantize(self, x: FTensor, grid: Grid) -> QTensor:
        """QuantizeLinear (round half to even, saturate) then the grid's integer Clip."""
        name = self._name("q")
        self.nodes.append(helper.make_node("QuantizeLinear", [x.name, *self._grid_consts(grid)], [name]))
        return self._clip(QTensor(name, grid, x.shape))

    @staticmethod
    def _conv_inputs(x: QTensor, codes: np.ndarray) -> tuple[int, int]:
        if not isinstance(x, QTensor):
            raise TypeError("a conv reads integer codes; quantize its float input first")
        return codes.shape[0], codes.shape[-1]

    @staticmethod
    def _out_shape(x: QTensor, cout: int, k: int, stride: int) -> tuple[int, int, int, int]:
        n, _, h, w = x.shape
        pad = k // 2
        return (n, cout, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)

    def conv(self, x: QTensor, codes: np.ndarray, weight_scale: np.ndarray, bias: np.ndarray | None,
             stride: int, groups: int, out: Grid) -> QTensor:
        """``QLinearConv`` with 'same' padding onto grid ``out``: int8 weight codes [O, I/g, k, k],
        per-channel scale [O], float bias rounded to int32 on the accumulator grid (s_in * s_w)."""
        cout, k = self._conv_inputs(x, codes)
        w_scale = np.asarray(weight_scale, dtype=np.float32).reshape(cout)
        inputs = [x.name, *self._grid_consts(x.grid), self._const("w", codes.astype(np.int8)),
                  self._const("w_scale", w_scale), self._const("w_zp", np.zeros(cout, np.int8)),
                  *self._grid_consts(out)]
        if bias is not None:
            acc = np.float32(x.grid.scale) * w_scale
            inputs.append(self._const("b", np.round(np.asarray(bias, np.float32) / acc).astype(np.int32)))
        name = self._name("qconv")
        self.nodes.append(helper.make_node("QLinearConv", inputs, [name], kernel_shape=[k, k],
                                           strides=[stride, stride], pads=[k // 2] * 4, group=groups))
        return self._clip(QTensor(name, out, self._out_shape(x, cout, k, stride)))

    def conv_to_float(self, x: QTensor, codes: np.ndarray, weight_scale: np.ndarray, bias: np.ndarray | None,
                      stride: int, groups: int, relu: bool) -> FTensor:
        """``ConvInteger`` (exact int32 sums), then ``acc * s_in * s_w[c] + bias`` in float (and ReLU)."""
        cout, k = self._conv_inputs(x, codes)
        acc = self._name("acc")
        self.nodes.append(helper.make_node(
            "ConvInteger", [x.name, self._const("w", codes.astype(np.int8)),
                            self._const("x_zp", np.array(x.grid.zero_point, np.uint8))], [acc],
            kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4, group=groups))
        as_float = self._name("acc_f")
        self.nodes.append(helper.make_node("Cast", [acc], [as_float], to=TensorProto.FLOAT))
        scale = (np.float32(x.grid.scale) * np.asarray(weight_scale, np.float32)).reshape(1, cout, 1, 1)
        out = self._name("conv")
        self.nodes.append(helper.make_node("Mul", [as_float, self._const("rescale", scale.astype(np.float32))], [out]))
        if bias is not None:
            biased = self._name("conv_b")
            b = np.asarray(bias, np.float32).reshape(1, cout, 1, 1)
            self.nodes.append(helper.make_node("Add", [out, self._const("bias", b)], [biased]))
            out = biased
        if relu:
            rectified = self._name("relu")
            self.nodes.append(helper.make_node("Relu", [out], [rectified]))
            out = rectified
        return FTensor(out, self._out_shape(x, cout, k, stride))

    def dequantize(self, x: QTensor) -> FTensor:
        name = self._name("dq")
        self.nodes.append(helper.make_node("DequantizeLinear", [x.name, *self._grid_consts(x.grid)], [name]))
        return FTensor(name, x.shape)

    def add(self, a: FTensor, b: FTensor) -> FTensor:
        name = self._name("add")
        self.nodes.append(helper.make_node("Add", [a.name, b.name], [name]))
        return FTensor(name, a.shape)

    def resize_nearest(self, x: QTensor | FTensor, size: Sequence[int]) -> QTensor | FTensor:
        """Nearest resize as torch's ``F.interpolate(mode='nearest')`` computes it (floor(out * in / out))."""
        if tuple(size) == x.shape[2:]:
            return x
        name = self._name("resize")
        sizes = self._const("sizes", np.array([x.shape[0], x.shape[1], *size], dtype=np.int64))
        self.nodes.append(helper.make_node("Resize", [x.name, "", "", sizes], [name], mode="nearest",
                                           coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
        shape = (x.shape[0], x.shape[1], *size)
        return QTensor(name, x.grid, shape) if isinstance(x, QTensor) else FTensor(name, shape)

    def concat(self, xs: Sequence[QTensor]) -> QTensor:
        """Channel concatenation of codes on one grid (exact: quantization commutes with it)."""
        grids = {(x.grid.scale, x.grid.zero_point) for x in xs}
        if len(grids) != 1:
            raise ValueError("concatenated integer tensors must share one scale and zero point")
        name = self._name("concat")
        self.nodes.append(helper.make_node("Concat", [x.name for x in xs], [name], axis=1))
        channels = sum(x.shape[1] for x in xs)
        lo, hi = min(x.grid.lo for x in xs), max(x.grid.hi for x in xs)
        grid = Grid(xs[0].grid.scale, xs[0].grid.zero_point, lo, hi)
        return QTensor(name, grid, (xs[0].shape[0], channels, *xs[0].shape[2:]))

    def model(self) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="qnas")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model
