"""The ``ort`` export profile: a frozen subnet as an onnxruntime graph whose every conv is integer.

BatchNorm is folded into each conv's per-channel weight scale (the int8 codes do not change;
a negative gamma flips a channel's codes) and an int32 bias, exactly as the evaluated model folds it. Activation grids come from the PACT
quantizers: unsigned b-bit grids in uint8 with zero point 0, symmetric b-bit grids in uint8 with
zero point 128, narrower-than-8-bit grids kept exact by an integer Clip.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn

from qnas.export.graph import Grid, LayerParams
from qnas.export.network import network_graph
from qnas.export.profiles import register_profile
from qnas.quant.functional import act_codes
from qnas.quant.grids import act_levels
from qnas.quant.modules import PACTActivationQuant
from qnas.space.plan import Conv
from qnas.supernet.network import SegNet
from qnas.supernet.ops import QConv2d, bn_params
from qnas.supernet.ops import fold_batchnorm as ops_fold

__all__ = ["FrozenLayers", "fold_batchnorm", "activation_grid", "check_exportable", "export_ort_model"]


def activation_grid(quant: PACTActivationQuant) -> Grid:
    """The uint8 grid of a PACT quantizer at its active bit width (exactly its scale)."""
    if not quant.enabled:
        raise ValueError("a disabled (float) quantizer has no integer grid; export needs a QAT model")
    bits = quant.grid_bits
    _, scale = act_codes(torch.zeros(()), quant.active_alpha(), bits, quant.signed)
    return Grid.symmetric(float(scale), bits) if quant.signed else Grid.unsigned(float(scale), bits)


def fold_batchnorm(conv: QConv2d, bn: nn.Module | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """int8 codes [O, I/g, k, k], positive per-channel scale [O] and bias [O] with BN folded in.

    Uses the same folding as the evaluated model (``qnas.supernet.ops.fold_batchnorm``): codes
    unchanged except sign-flipped where gamma is negative, bias already on the int32 accumulator grid.
    """
    with torch.no_grad():
        codes, scale = conv.weight_quant.codes(conv.weight)
        if isinstance(bn, nn.BatchNorm2d):
            input_scale = conv.act_quant.grid_scale()
            codes, scale, bias_codes = ops_fold(codes, scale, conv.bias, input_scale,
                                                bn_params(bn, conv.out_channels))
            bias = bias_codes * (input_scale * scale)
        else:
            scale, bias = scale.reshape(-1), conv.bias
        sign = torch.where(scale < 0, -1.0, 1.0)
        codes = codes * sign.reshape(-1, 1, 1, 1)
        scale = scale.abs()
    if codes.abs().max() > 127:
        raise ValueError(f"{conv.label}: weight codes exceed int8")
    return (codes.numpy().astype(np.int8), scale.numpy().astype(np.float32),
            None if bias is None else bias.detach().numpy().astype(np.float32))


class FrozenLayers:
    """``LayerSource`` over a frozen, quantized ``SegNet``: each plan conv's unit, BatchNorm folded."""

    def __init__(self, model: SegNet) -> None:
        self.model = model

    def layer(self, op: Conv) -> LayerParams:
        if op.label not in self.model.units:
            raise KeyError(f"the frozen model has no layer {op.label!r}")
        unit = self.model.unit(op.label)
        codes, scale, bias = fold_batchnorm(unit.conv, unit.bn)
        if codes.shape != op.weight_shape:
            raise ValueError(f"{op.label}: weight {codes.shape}, the plan says {op.weight_shape}")
        out = unit.out_quant if isinstance(unit.out_quant, PACTActivationQuant) else None
        return LayerParams(codes, scale, bias, activation_grid(unit.conv.act_quant),
                           None if out is None else activation_grid(out), unit.conv.weight_quant.grid_bits, op.label)


def check_exportable(model: SegNet) -> None:
    """Put the model in evaluation mode and check that it is quantized (an export needs integer grids)."""
    model.eval()
    for quant in (m for m in model.modules() if isinstance(m, PACTActivationQuant)):
        if not quant.enabled:
            raise ValueError("the model's quantizers are off (float); export needs a quantized model")
        act_levels(quant.grid_bits, quant.signed)  # validates


@register_profile("ort", suffix="_int8.onnx", runtime="onnxruntime", exact=False,
                  help="onnxruntime graph whose every conv is an integer kernel (QLinearConv; for the logits "
                       "MatMulInteger or ConvInteger; checked in the optimized graph), computing what the evaluated "
                       "model computes")
def export_ort_model(model: SegNet, height: int, width: int) -> onnx.ModelProto:
    """The frozen model as an integer-kernel ONNX graph for onnxruntime (float image in, logits out)."""
    from qnas.export.latency import assert_integer, get_backend

    check_exportable(model)
    onnx_model = network_graph(model.plan(height, width), FrozenLayers(model)).model()
    assert_integer(get_backend("ort-cpu", 1), onnx_model, "ort export")
    return onnx_model
