"""The ``ort`` export profile: a frozen subnet as an onnxruntime graph whose every conv is integer.

BatchNorm is folded into each conv's per-channel weight scale (the int8 codes do not change;
a negative gamma flips a channel's codes) and bias. Activation grids come from the PACT
quantizers: unsigned b-bit grids in uint8 with zero point 0, symmetric b-bit grids in uint8 with
zero point 128, narrower-than-8-bit grids kept exact by an integer Clip.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import torch
from torch import nn

from qnas.export.network import LayerParams, network_graph
from qnas.export.qlinear import Grid
from qnas.quant import PACTActivationQuant, act_levels
from qnas.quant.functional import act_codes
from qnas.space import SpaceSpec
from qnas.supernet import ConvBNAct, QConv2d, SegNet

__all__ = ["FrozenLayers", "fold_batchnorm", "activation_grid", "export_ort_model"]


def activation_grid(quant: PACTActivationQuant) -> Grid:
    """The uint8 grid of a PACT quantizer at its active bit width (exactly its scale)."""
    if not quant.enabled:
        raise ValueError("a disabled (float) quantizer has no integer grid; export needs a QAT model")
    bits = quant.active_bits
    _, scale = act_codes(torch.zeros(()), quant.active_alpha(), bits, quant.signed)
    return Grid.symmetric(float(scale), bits) if quant.signed else Grid.unsigned(float(scale), bits)


def fold_batchnorm(conv: QConv2d, bn: nn.Module | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """int8 codes [O, I/g, k, k], positive per-channel scale [O] and bias [O] with BN folded in.

    ``codes * scale`` (per channel) equals the BN-scaled quantized weight; the codes are the
    quantizer's own, sign-flipped where gamma / sigma is negative.
    """
    with torch.no_grad():
        codes, scale = conv.weight_quant.codes(conv.weight)
        codes, scale = codes.double(), scale.reshape(-1).double()
        bias = None if conv.bias is None else conv.bias.double()
        if isinstance(bn, nn.BatchNorm2d):
            factor = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            shift = bn.bias.double() - bn.running_mean.double() * factor
            bias = shift if bias is None else shift + bias * factor
            scale = scale * factor
        sign = torch.where(scale < 0, -1.0, 1.0).double()
        codes = codes * sign.reshape(-1, 1, 1, 1)
        scale = scale.abs()
    if codes.abs().max() > 127:
        raise ValueError(f"{conv.label}: weight codes exceed int8")
    return (codes.numpy().astype(np.int8), scale.numpy().astype(np.float32),
            None if bias is None else bias.numpy().astype(np.float32))


class FrozenLayers:
    """``LayerSource`` over a frozen, quantized ``SegNet``: layers looked up by label."""

    def __init__(self, model: SegNet) -> None:
        self.blocks: dict[str, tuple[QConv2d, nn.Module | None, nn.Module | None]] = {}
        for module in model.modules():
            if isinstance(module, ConvBNAct) and isinstance(module.conv, QConv2d):
                out = module.out_quant if isinstance(module.out_quant, PACTActivationQuant) else None
                self.blocks[module.conv.label] = (module.conv, module.bn, out)
        if isinstance(model.classifier, QConv2d):
            self.blocks[model.classifier.label] = (model.classifier, None, None)

    def layer(self, label: str, cout: int, cin_per_group: int, k: int) -> LayerParams:
        if label not in self.blocks:
            raise KeyError(f"the frozen model has no layer {label!r}")
        conv, bn, out = self.blocks[label]
        codes, scale, bias = fold_batchnorm(conv, bn)
        if codes.shape != (cout, cin_per_group, k, k):
            raise ValueError(f"{label}: weight {codes.shape}, the architecture says {(cout, cin_per_group, k, k)}")
        return LayerParams(codes, scale, bias, activation_grid(conv.act_quant),
                           None if out is None else activation_grid(out))


def export_ort_model(model: SegNet, spec: SpaceSpec, genome: Mapping[str, int], height: int, width: int) -> onnx.ModelProto:
    """The frozen model as an integer-kernel ONNX graph for onnxruntime (float image in, logits out)."""
    model.eval()
    for quant in (m for m in model.modules() if isinstance(m, PACTActivationQuant)):
        act_levels(quant.active_bits, quant.signed)  # validates
    return network_graph(spec, genome, height, width, FrozenLayers(model)).model()
