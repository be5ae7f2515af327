"""Elastic and folded ops."""

from __future__ import annotations

import torch


def test_fold_batchnorm_keeps_a_switched_off_channel_within_the_int32_bias() -> None:
    """A channel whose gamma is ~0 (or exactly 0) would need an enormous bias on its accumulator
    grid; its grid is coarsened instead, its codes requantized (to 0 here), its bias kept."""
    from qnas.supernet.ops import BIAS_CODE_LIMIT, fold_batchnorm

    codes = torch.tensor([100.0, -50.0, 7.0, 3.0]).reshape(4, 1, 1, 1)
    scale = torch.full((4, 1, 1, 1), 0.01)
    gamma = torch.tensor([1.0, 1e-9, 0.0, -1e-8])
    beta = torch.tensor([0.5, 0.5, 0.5, -0.5])
    input_scale = torch.tensor(0.02)
    folded_codes, folded, bias_codes = fold_batchnorm(codes, scale, None, input_scale,
                                                      (torch.zeros(4), torch.ones(4), gamma, beta, 1e-5))
    assert torch.isfinite(folded).all() and bool((bias_codes.abs() <= BIAS_CODE_LIMIT).all())
    assert folded_codes[0].item() == 100.0 and not folded_codes[1:].any()
    torch.testing.assert_close(bias_codes * input_scale * folded, beta, rtol=1e-5, atol=0)  # the bias survives
