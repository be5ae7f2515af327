"""Our quantizers against brevitas' integer quantizers given the same scales: identical values and codes.

brevitas computes ``clamp(round(x / s), min_int, max_int) * s``; its scale is ``scaling_init``
divided by an integer scaling (made 1 here, so that the scale is passed exactly).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

brevitas_nn = pytest.importorskip("brevitas.nn")
from brevitas.inject import ExtendedInjector  # noqa: E402
from brevitas.inject.enum import RestrictValueType, ScalingImplType, ScalingPerOutputType  # noqa: E402
from brevitas.quant.base import NarrowIntQuant, UintQuant  # noqa: E402
from brevitas.quant.solver import ActQuantSolver, WeightQuantSolver  # noqa: E402

from qnas.quant import act_codes, max_clip, pact_quantize, weight_codes, weight_quantize  # noqa: E402


class _ScaleAsGiven(nn.Module):
    """brevitas divides scaling_init by this; 1 passes our scale through untouched."""

    def __init__(self) -> None:  # brevitas' dependency injection needs an explicit, argument-free __init__
        super().__init__()

    def forward(self, bit_width: torch.Tensor, signed: bool | None = None) -> torch.Tensor:
        return torch.ones_like(bit_width)


class _ConstScale(ExtendedInjector):
    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    int_scaling_impl = _ScaleAsGiven
    bit_width = 8


class _Weights(_ConstScale, NarrowIntQuant, WeightQuantSolver):
    scaling_per_output_type = ScalingPerOutputType.CHANNEL


class _UnsignedActs(_ConstScale, UintQuant, ActQuantSolver):
    scaling_per_output_type = ScalingPerOutputType.TENSOR


class _SignedActs(_ConstScale, NarrowIntQuant, ActQuantSolver):
    scaling_per_output_type = ScalingPerOutputType.TENSOR


def _inputs(seed: int, alpha: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 8, 6, 6, generator=g) * alpha
    x.view(-1)[:4] = torch.tensor([alpha, -alpha, 0.0, 2 * alpha])  # the clip bounds and beyond
    return x


@pytest.mark.parametrize("bits", [4, 6, 8])
@pytest.mark.parametrize("signed", [False, True])
def test_pact_equals_brevitas_activation_quantizer(bits: int, signed: bool) -> None:
    alpha = torch.tensor(2.5)
    x = _inputs(bits, 2.5)
    _, scale = act_codes(x, alpha, bits, signed)
    injector = (_SignedActs if signed else _UnsignedActs).let(bit_width=bits, scaling_init=scale)
    reference = brevitas_nn.QuantIdentity(act_quant=injector, return_quant_tensor=False)
    assert torch.equal(reference(x), pact_quantize(x, alpha, bits, signed))


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_weight_quantizer_equals_brevitas_per_channel_narrow_quantizer(bits: int) -> None:
    w = _inputs(10 + bits, 0.3)[:, :4, :3, :3].contiguous()
    clip = max_clip(w)
    codes, scale = weight_codes(w, bits, clip)
    conv = brevitas_nn.QuantConv2d(4, 2, 3, bias=False,
                                   weight_quant=_Weights.let(bit_width=bits, scaling_init=scale))
    with torch.no_grad():
        conv.weight.copy_(w)
    reference = conv.quant_weight()
    assert torch.equal(reference.value, weight_quantize(w, bits, clip))
    assert torch.equal(reference.int().float(), codes)
