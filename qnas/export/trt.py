"""The ``trt`` export profile: TensorRT explicit quantization with symmetric int8 Q/DQ only.

Every quantized tensor is an int8 ``QuantizeLinear`` / ``DequantizeLinear`` pair with zero point
0 (no uint8 anywhere), weights are int8 initializers behind a per-output-channel
``DequantizeLinear`` on axis 0, BatchNorm is folded into the conv, and opset 13. There is no
integer Clip: every ``QuantizeLinear`` reads a float ``Clip`` to its grid's codes, which keeps
grids narrower than int8 (4- and 6-bit activations, the narrow-range signed grids) exact and
plays the ReLU (TensorRT fuses it as an activation). Every Q's output feeds only DQs, as TensorRT
pairs them: nearest Resize and Concat of codes run between a DQ and a Q.

The file is in the integer-codes form of ``qnas.export.codes``: every Q/DQ has unit scale, so the
tensors between them are the integer codes themselves, and the scales are explicit: a ``Div`` by
the activation scale in front of each Q, one per-channel ``Mul`` by ``s_in * s_w[c]`` after each
Conv. onnxruntime (default session options) convolves the dequantized codes, integers whose
float32 sums are exact, and so reproduces the widened model bit for bit; with
``session.disable_quant_qdq`` it folds the weight DQ and the ``Mul`` into float weights and
loses that. TensorRT can run each conv as int8 x int8 with int32 accumulation (exact) and fuse
the ``Mul``, ``Div`` and ``Clip`` as pointwise epilogues, whose float rounding it may reorder;
no TensorRT engine was built to check this (no TensorRT where qnas was developed). Scales inside
the Q/DQ nodes would make onnxruntime sum rounded products ``(x * s_x) * (w * s_w)``, which
flipped an occasional code (99.894% argmax agreement on the default run's W8A8).

What int8 cannot hold is an unsigned 8-bit grid (codes 0..255): such activations, including the
network input, are widened to int8 as 7-bit grids on the same clip (``widen_for_int8``), which
halves their resolution. The ``trt`` file therefore computes what ``widen_for_int8(model)``
computes, and the accuracy this costs is measured against the model as searched.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import onnx
from torch import nn

from qnas.export.codes import IntegerCodesGraph
from qnas.export.graph import OPSET, FTensor, Grid, LayerParams, QTensor
from qnas.export.network import network_graph
from qnas.export.ort import FrozenLayers, check_exportable
from qnas.export.profiles import register_profile
from qnas.quant.modules import PACTActivationQuant
from qnas.supernet.network import SegNet

__all__ = ["TrtGraph", "widen_for_int8", "export_trt_model", "TRT_OPSET"]

TRT_OPSET = OPSET


class TrtGraph(IntegerCodesGraph):
    """A TensorRT Q/DQ writer: codes are the int8 output of a unit-scale ``QuantizeLinear``."""

    opsets = (("", TRT_OPSET),)

    def _unit(self, channels: int | None = None) -> list[str]:
        if channels is None:
            return [self._const("one", np.float32(1.0)), self._const("zp", np.int8(0))]
        return [self._const("ones", np.ones(channels, np.float32)), self._const("zps", np.zeros(channels, np.int8))]

    def _codes(self, scaled: str, grid: Grid) -> str:
        """A float Clip to the grid's codes, then int8 QuantizeLinear (round half to even)."""
        lo, hi = grid.lo - grid.zero_point, grid.hi - grid.zero_point
        if lo < -127 or hi > 127:
            raise ValueError(f"a grid with codes {lo}..{hi} does not fit symmetric int8; widen it first "
                             "(qnas.export.trt.widen_for_int8)")
        clipped = self._node("Clip", [scaled, self._const("lo", np.float32(lo)), self._const("hi", np.float32(hi))],
                             "clip")
        return self._node("QuantizeLinear", [clipped, *self._unit()], "q")

    def _float_codes(self, x: QTensor) -> str:
        return self._node("DequantizeLinear", [x.name, *self._unit()], "dq")

    def _requantize(self, x: QTensor) -> QTensor:
        """Codes held as float integers (in range by construction) back to int8: exact."""
        return QTensor(self._node("QuantizeLinear", [x.name, *self._unit()], "q"), x.grid, x.shape)

    def resize_nearest(self, x: QTensor | FTensor, size: Sequence[int]) -> QTensor | FTensor:
        """Resize between a DQ and a Q (a Q's output only ever feeds a DQ, as TensorRT pairs them)."""
        if isinstance(x, FTensor) or tuple(size) == x.shape[2:]:
            return super().resize_nearest(x, size)
        return self._requantize(super().resize_nearest(QTensor(self._float_codes(x), x.grid, x.shape), size))

    def concat(self, xs: Sequence[QTensor]) -> QTensor:
        """Concat between DQs and a Q, as ``resize_nearest``."""
        return self._requantize(super().concat([QTensor(self._float_codes(x), x.grid, x.shape) for x in xs]))

    def _weight_codes(self, layer: LayerParams) -> str:
        return self._node("DequantizeLinear", [self._const("w", layer.codes.astype(np.int8)),
                                               *self._unit(layer.codes.shape[0])], "w", axis=0)


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


@register_profile("trt", suffix="_trt_qdq.onnx", runtime="onnxruntime (TensorRT's Q/DQ form)",
                  reference=widen_for_int8,
                  help="TensorRT explicit quantization (symmetric int8 Q/DQ, per-channel weights; unsigned 8-bit "
                       "activations widened to 7-bit, since int8 cannot hold 0..255)")
def export_trt_model(model: SegNet, height: int, width: int) -> onnx.ModelProto:
    """The frozen model, widened where int8 requires it, as a TensorRT Q/DQ graph."""
    widened = widen_for_int8(model)
    check_exportable(widened)
    return network_graph(widened.plan(height, width), FrozenLayers(widened), TrtGraph).model()
