"""A small writer for fully-integer ONNX graphs made of onnxruntime's QLinear operators.

Every conv is a ``QLinearConv`` (int8 weights, int32 bias, uint8/int8 activations), adds are
``com.microsoft.QLinearAdd``, concatenations ``com.microsoft.QLinearConcat``, and nearest
resizing is a ``Resize`` on the integer tensor (exact: it only copies values). The graph takes a
float image and returns float logits (one QuantizeLinear in, one DequantizeLinear out), so what
an INT8 engine runs is written down explicitly instead of being left to a fusion pass.

Torch-free (numpy + onnx): the latency table builds blocks from architecture alone, and the
``ort`` export profile fills the same graphs with a trained network's codes and scales.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["Grid", "QTensor", "QLinearGraph", "OPSET"]

OPSET = 13
_MS = "com.microsoft"


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
    name: str
    grid: Grid
    shape: tuple[int, ...]  # N, C, H, W


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
    def input(self, name: str, shape: Sequence[int], grid: Grid) -> QTensor:
        """A float input quantized onto ``grid``."""
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        out = self._name("q_input")
        self.nodes.append(helper.make_node("QuantizeLinear", [name, *self._grid_consts(grid)], [out]))
        return self._clip(QTensor(out, grid, tuple(shape)))

    def quantized_input(self, name: str, shape: Sequence[int], grid: Grid) -> QTensor:
        """An input that is already integer codes on ``grid`` (for measuring one block alone)."""
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.UINT8, list(shape)))
        return QTensor(name, grid, tuple(shape))

    def output(self, x: QTensor, name: str) -> None:
        """Dequantize ``x`` to a float graph output."""
        self.nodes.append(helper.make_node("DequantizeLinear", [x.name, *self._grid_consts(x.grid)], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(x.shape)))

    def integer_output(self, x: QTensor, name: str) -> None:
        self.nodes.append(helper.make_node("Identity", [x.name], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.UINT8, list(x.shape)))

    # -- operators ------------------------------------------------------------------------------
    def conv(self, x: QTensor, codes: np.ndarray, weight_scale: np.ndarray, bias: np.ndarray | None,
             stride: int, groups: int, out: Grid) -> QTensor:
        """``QLinearConv`` with 'same' padding: int8 weight codes [O, I/g, k, k], per-channel scale [O],
        float bias rounded to int32 on the accumulator grid (input scale x weight scale)."""
        cout, _, k, _ = codes.shape
        w_scale = np.asarray(weight_scale, dtype=np.float32).reshape(cout)
        inputs = [x.name, *self._grid_consts(x.grid), self._const("w", codes.astype(np.int8)),
                  self._const("w_scale", w_scale), self._const("w_zp", np.zeros(cout, np.int8)),
                  *self._grid_consts(out)]
        if bias is not None:
            acc = np.float32(x.grid.scale) * w_scale
            inputs.append(self._const("b", np.round(np.asarray(bias, np.float32) / acc).astype(np.int32)))
        name = self._name("conv")
        pad = k // 2
        self.nodes.append(helper.make_node("QLinearConv", inputs, [name], kernel_shape=[k, k],
                                           strides=[stride, stride], pads=[pad] * 4, group=groups))
        n, _, h, w = x.shape
        shape = (n, cout, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)
        return self._clip(QTensor(name, out, shape))

    def add(self, a: QTensor, b: QTensor, out: Grid) -> QTensor:
        name = self._name("add")
        self.nodes.append(helper.make_node("QLinearAdd", [a.name, *self._grid_consts(a.grid), b.name,
                                                          *self._grid_consts(b.grid), *self._grid_consts(out)],
                                           [name], domain=_MS))
        return self._clip(QTensor(name, out, a.shape))

    def resize_nearest(self, x: QTensor, size: Sequence[int]) -> QTensor:
        """Nearest resize as torch's ``F.interpolate(mode='nearest')`` computes it (floor of out * in / out)."""
        if tuple(size) == x.shape[2:]:
            return x
        name = self._name("resize")
        sizes = self._const("sizes", np.array([x.shape[0], x.shape[1], *size], dtype=np.int64))
        self.nodes.append(helper.make_node("Resize", [x.name, "", "", sizes], [name], mode="nearest",
                                           coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
        return QTensor(name, x.grid, (x.shape[0], x.shape[1], *size))

    def concat(self, xs: Sequence[QTensor], out: Grid) -> QTensor:
        name = self._name("concat")
        inputs = [*self._grid_consts(out)]
        for x in xs:
            inputs += [x.name, *self._grid_consts(x.grid)]
        self.nodes.append(helper.make_node("QLinearConcat", inputs, [name], axis=1, domain=_MS))
        channels = sum(x.shape[1] for x in xs)
        return self._clip(QTensor(name, out, (xs[0].shape[0], channels, *xs[0].shape[2:])))

    def model(self) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(_MS, 1)],
                                  producer_name="qnas")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model
