"""Our quantizers against brevitas' integer quantizers given the same clips: identical values and codes.

The brevitas quantizers are the ones the ``brevitas`` export builds (``qnas.export.brevitas``): a learned
scale whose initial value is the clip, divided by brevitas' integer scaling (the grid's levels), so its
scale is PACT's ``clip / levels``; brevitas then computes ``clamp(round(x / s), min_int, max_int) * s``.
"""

from __future__ import annotations

import pytest
import torch

brevitas_nn = pytest.importorskip("brevitas.nn")

from qnas.export.brevitas import brevitas_quantizers  # noqa: E402
from qnas.quant import max_clip, pact_quantize, weight_codes, weight_quantize  # noqa: E402


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
    quantizers = brevitas_quantizers()
    injector = (quantizers.int_act if signed else quantizers.uint_act).let(bit_width=bits, scaling_init=alpha)
    reference = brevitas_nn.QuantIdentity(act_quant=injector, return_quant_tensor=False)
    assert torch.equal(reference(x), pact_quantize(x, alpha, bits, signed))


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_weight_quantizer_equals_brevitas_per_channel_narrow_quantizer(bits: int) -> None:
    w = _inputs(10 + bits, 0.3)[:, :4, :3, :3].contiguous()
    clip = max_clip(w)
    codes, _ = weight_codes(w, bits, clip)
    injector = brevitas_quantizers().weight.let(bit_width=bits, scaling_init=clip.reshape(-1, 1, 1, 1))
    conv = brevitas_nn.QuantConv2d(4, 2, 3, bias=False, weight_quant=injector)
    with torch.no_grad():
        conv.weight.copy_(w)
    reference = conv.quant_weight()
    assert torch.equal(reference.value, weight_quantize(w, bits, clip))
    assert torch.equal(reference.int().float(), codes)
