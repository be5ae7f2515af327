"""What every ONNX writer of the network shares: grids, tensor handles and graph plumbing.

The emitter in ``qnas.export.network`` walks the network plan (which conv reads which tensor on
which grid); a writer decides how each step becomes ONNX nodes. ``QLinearGraph``
(``ort``: integer kernels), ``QonnxGraph`` (``qonnx``: Quant nodes at every bit width) and
``TrtGraph`` (``trt``: symmetric int8 Q/DQ) are the three writers; the last two share the
integer-codes form of ``qnas.export.codes``.

Torch-free (numpy + onnx).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qnas.quant.grids import sum_bound
from qnas.space.plan import Conv

__all__ = ["Grid", "QTensor", "FTensor", "LayerParams", "GraphWriter", "OPSET", "INEXACT_CONVS_KEY", "conv_shape", "conv_attributes"]

OPSET = 13
INEXACT_CONVS_KEY = "qnas.float32_inexact_convs"  # metadata: convs whose float32 sums may round


@dataclass(frozen=True)
class Grid:
    """An activation grid in uint8 terms: value = scale * (code - zero_point), codes in [lo, hi].

    Unsigned b-bit grids use zero point 0 and codes [0, 2^b - 1]; symmetric (signed) b-bit
    grids use zero point 128 and codes 128 +- (2^(b-1) - 1). A grid whose ``lo`` equals its
    zero point on a signed grid holds rectified values (a ReLU before a signed reader).
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

    @property
    def signed(self) -> bool:
        return self.zero_point != 0

    @property
    def bits(self) -> int:
        """The bit width of the quantizer this grid came from."""
        top = self.hi - self.zero_point
        return int(top).bit_length() + (1 if self.signed else 0)

    @property
    def rectified(self) -> bool:
        """A signed grid whose negative codes a ReLU removed."""
        return self.signed and self.lo >= self.zero_point


@dataclass(frozen=True)
class QTensor:
    """A quantized tensor on ``grid`` (its encoding is the writer's: uint8, int8 or float codes)."""

    name: str
    grid: Grid
    shape: tuple[int, ...]  # N, C, H, W


@dataclass(frozen=True)
class FTensor:
    """A real-valued float tensor (residual sums, branch points, logits)."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class LayerParams:
    """One conv as every writer needs it, BatchNorm folded in (see ``qnas.supernet.ops.fold_batchnorm``)."""

    codes: np.ndarray  # int8 [O, I/groups, k, k], sign-flipped where the folded scale was negative
    scale: np.ndarray  # float32 [O], positive
    bias: np.ndarray | None  # float32 [O]: on the accumulator grid (s_in * scale) when BatchNorm was folded
    in_grid: Grid  # the grid this conv quantizes its input onto
    out_grid: Grid | None = None  # the conv's own 8-bit output quantizer, if the model has one
    weight_bits: int = 8  # the bit width the codes were quantized at
    label: str = ""  # the conv's genome label

    def accumulator_step(self) -> np.ndarray:
        """float32 [O]: ``s_in * s_w[c]``, the value of one unit of the integer accumulator."""
        return np.float32(self.in_grid.scale) * np.asarray(self.scale, np.float32)

    def worst_case_sum(self, with_bias: bool) -> int:
        """The largest |accumulator| any input on ``in_grid`` can give with these codes (partial sums
        included); never more than the model's bound for the same conv (``qnas.quant.grids``)."""
        grid = self.in_grid
        act_max = max(abs(grid.lo - grid.zero_point), abs(grid.hi - grid.zero_point))
        fan_in = int(np.prod(self.codes.shape[1:]))
        weight_max = int(np.abs(self.codes.astype(np.int64)).max(initial=0))
        bias = self.bias_codes() if with_bias else None
        bias_max = 0 if bias is None else int(np.abs(bias).max(initial=0))
        return sum_bound(fan_in, act_max, weight_max, bias_max)

    def bias_codes(self) -> np.ndarray | None:
        """The bias as integers on the accumulator grid (the int32 bias of an integer engine)."""
        if self.bias is None:
            return None
        return np.round(np.asarray(self.bias, np.float32) / self.accumulator_step())


def conv_shape(x: QTensor | FTensor, op: Conv) -> tuple[int, int, int, int]:
    """Shape of conv ``op``'s output for input ``x``."""
    return (x.shape[0], op.cout, *op.hw)


def conv_attributes(op: Conv) -> dict:
    """ONNX Conv attributes of the plan's conv (every one explicit, as QONNX front ends require)."""
    return dict(kernel_shape=[op.kernel, op.kernel], strides=[op.stride, op.stride], pads=[op.padding] * 4,
                dilations=[op.dilation, op.dilation], group=op.groups)


NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)


class GraphWriter:
    """Node and initializer bookkeeping plus the operators every profile writes the same way.

    ``channels_last``: the tensors between convs are N, H, W, C (graph input and output stay N, C, H, W,
    each behind a ``Transpose``); each ``Conv``, which ONNX defines on N, C, H, W, reads and writes
    through a ``Transpose`` (``_conv_input`` / ``_conv_output``, called by the writers that support the
    layout). It is the form qonnx's ``ConvertToChannelsLastAndClean`` produces: that transformation then
    only cancels each conv's transposes against the ones it inserts.
    """

    opsets: tuple[tuple[str, int], ...] = (("", OPSET),)
    channels_last = False

    def __init__(self, name: str = "qnas") -> None:
        self.name = name
        self.inexact_convs: list[str] = []  # convs whose float32 sums may round (IntegerCodesGraph)
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

    def _node(self, op: str, inputs: Sequence[str], stem: str, domain: str = "", **attrs) -> str:
        out = self._name(stem)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=f"{op}_{out}", domain=domain, **attrs))
        return out

    def _channel(self, values: np.ndarray) -> np.ndarray:
        """A per-channel [C] vector as a float32 constant that broadcasts over the channel axis: [1, C, 1, 1],
        or [C] channels-last (no batch axis: hls4ml's converter broadcasts constants over H, W, C)."""
        return np.asarray(values, np.float32).reshape((-1,) if self.channels_last else (1, -1, 1, 1))

    @property
    def _channel_axis(self) -> int:
        return 3 if self.channels_last else 1

    def _layout(self, shape: Sequence[int]) -> list[int]:
        """An N, C, H, W shape in the order the writer's tensors hold it."""
        n, c, *hw = shape
        return [n, *hw, c] if self.channels_last else [n, c, *hw]

    def _conv_input(self, x: str) -> str:
        """A tensor as a ``Conv`` reads it (N, C, H, W)."""
        return self._node("Transpose", [x], "nchw", perm=list(NHWC_TO_NCHW)) if self.channels_last else x

    def _conv_output(self, y: str) -> str:
        """A ``Conv``'s output in the writer's layout."""
        return self._node("Transpose", [y], "nhwc", perm=list(NCHW_TO_NHWC)) if self.channels_last else y

    @staticmethod
    def _conv_inputs(x: QTensor, layer: LayerParams, op: Conv) -> None:
        """Check that ``x`` is codes and ``layer`` has the plan's weight shape."""
        if not isinstance(x, QTensor):
            raise TypeError("a conv reads integer codes; quantize its float input first")
        if tuple(layer.codes.shape) != op.weight_shape:
            raise ValueError(f"{op.label}: weight {layer.codes.shape}, the plan says {op.weight_shape}")

    def _rescaled(self, acc: str, layer: LayerParams) -> str:
        """The accumulator times ``s_in * s_w[c]``: real values."""
        return self._node("Mul", [acc, self._const("step", self._channel(layer.accumulator_step()))], "conv")

    def _float_tail(self, y: str, layer: LayerParams, relu: bool) -> str:
        """The float bias (and ReLU) after the rescale of a conv with no output grid: the logits."""
        if layer.bias is not None:
            y = self._node("Add", [y, self._const("bias", self._channel(layer.bias))], "biased")
        return self._node("Relu", [y], "relu") if relu else y

    # -- graph ends -----------------------------------------------------------------------------
    def input(self, name: str, shape: Sequence[int]) -> FTensor:
        """The graph input, N, C, H, W (``shape``); a ``channels_last`` writer transposes it."""
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        if self.channels_last:
            name = self._node("Transpose", [name], "nhwc", perm=list(NCHW_TO_NHWC))
        return FTensor(name, tuple(shape))

    def output(self, x: FTensor, name: str) -> None:
        """A graph output, N, C, H, W."""
        if not isinstance(x, FTensor):
            raise TypeError("graph outputs are real-valued tensors")
        source = self._node("Transpose", [x.name], "nchw", perm=list(NHWC_TO_NCHW)) if self.channels_last else x.name
        self.nodes.append(helper.make_node("Identity", [source], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(x.shape)))

    # -- operators shared by every profile ---------------------------------------------------------
    def add(self, a: FTensor, b: FTensor) -> FTensor:
        return FTensor(self._node("Add", [a.name, b.name], "add"), a.shape)

    def resize_nearest(self, x: QTensor | FTensor, size: Sequence[int]) -> QTensor | FTensor:
        """Nearest resize as torch's ``F.interpolate(mode='nearest')`` computes it (floor(out * in / out)):
        it copies values, so it is exact on codes of any encoding."""
        if tuple(size) == x.shape[2:]:
            return x
        shape = (x.shape[0], x.shape[1], *size)
        name = self._resize(x.name, x.shape, shape)
        return QTensor(name, x.grid, shape) if isinstance(x, QTensor) else FTensor(name, shape)

    def _resize(self, x: str, shape: Sequence[int], out: Sequence[int]) -> str:
        """The nearest ``Resize`` node from N, C, H, W ``shape`` to ``out``, given by its output ``sizes``."""
        sizes = self._const("sizes", np.array(self._layout(out), dtype=np.int64))
        return self._node("Resize", [x, "", "", sizes], "resize", mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor")

    def concat(self, xs: Sequence[QTensor]) -> QTensor:
        """Channel concatenation of tensors on one grid (exact: quantization commutes with it)."""
        grids = {(x.grid.scale, x.grid.zero_point) for x in xs}
        if len(grids) != 1:
            raise ValueError("concatenated integer tensors must share one scale and zero point")
        name = self._concat([x.name for x in xs])
        channels = sum(x.shape[1] for x in xs)
        lo, hi = min(x.grid.lo for x in xs), max(x.grid.hi for x in xs)
        grid = Grid(xs[0].grid.scale, xs[0].grid.zero_point, lo, hi)
        return QTensor(name, grid, (xs[0].shape[0], channels, *xs[0].shape[2:]))

    def _concat(self, names: Sequence[str]) -> str:
        """The channel ``Concat`` node(s) of ``names``."""
        return self._node("Concat", list(names), "concat", axis=self._channel_axis)

    def model(self) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in self.opsets],
                                  producer_name="qnas")
        model.ir_version = 8
        if self.inexact_convs:
            helper.set_model_props(model, {INEXACT_CONVS_KEY: ",".join(self.inexact_convs)})
        onnx.checker.check_model(model)
        return model
