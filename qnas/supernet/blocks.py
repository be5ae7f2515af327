"""A plan conv as modules: the quantized conv, its BatchNorm, ReLU and output quantizer.

One class serves the supernet (elastic conv and BatchNorm) and frozen subnets (static ones): the
layers are passed in, and the geometry comes from the plan's ``Conv`` at every call.
"""

from __future__ import annotations

import copy

import torch.nn.functional as F
from torch import Tensor, nn

from qnas.space.plan import Conv
from qnas.supernet.ops import output_rows

__all__ = ["ConvUnit"]


class ConvUnit(nn.Module):
    """Quantized conv (BatchNorm folded in evaluation), optional ReLU, optional 8-bit output quantizer."""

    def __init__(self, conv: nn.Module, bn: nn.Module | None, out_quant: nn.Module | None) -> None:
        super().__init__()
        self.conv = conv
        self.bn = bn
        self.out_quant = out_quant

    def forward(self, x: Tensor, op: Conv) -> Tensor:
        y = self.conv(x, op, bn=self.bn)  # in evaluation the integer engine: BN folded, int32 bias
        if op.relu:
            y = F.relu(y)
        return y if self.out_quant is None else self.out_quant(y)

    def freeze(self, op: Conv) -> ConvUnit:
        """This unit's static version for ``op``: copies of the active weights, statistics and clips."""
        bn = None if self.bn is None else self.bn.freeze(output_rows(op))
        out = None if self.out_quant is None else copy.deepcopy(self.out_quant)
        return ConvUnit(self.conv.freeze(op), bn, out)
