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


def test_integer_sums_beyond_float32_are_exact_then_rounded_once() -> None:
    """Sums that reach 2^24 (wide 8-bit layers) are computed exactly and rounded once to float32,
    as an integer engine converts its int32 accumulator; below 2^24 float32 is exact anyway.
    (A plain float32 conv gets about 100 of these 288 sums wrong.)"""
    import numpy as np

    from qnas.supernet.ops import _exact_sum_conv

    gen = torch.Generator().manual_seed(0)
    x = torch.randint(200, 256, (1, 1152, 6, 6), generator=gen).float()
    w = torch.randint(100, 128, (8, 1152, 1, 1), generator=gen).float()
    bias = torch.arange(8.0) * 2.0**19 + 1

    def exact(x, w, bias):
        total = np.einsum("nchw,oc->nohw", x.numpy().astype(np.int64), w[:, :, 0, 0].numpy().astype(np.int64))
        return total if bias is None else total + bias.numpy().astype(np.int64).reshape(1, -1, 1, 1)

    assert np.abs(exact(x, w, bias)).max() > 2**24
    got = _exact_sum_conv(x, w, bias, 1, 0, 1, bound=1152 * 255 * 127 + float(bias.max()))
    assert got.dtype == torch.float32
    assert np.array_equal(got.numpy(), exact(x, w, bias).astype(np.float32))  # one rounding of the exact sum
    small = _exact_sum_conv(x[:, :64], w[:, :64], None, 1, 0, 1, bound=64 * 255 * 127)
    assert small.dtype == torch.float32 and np.array_equal(small.numpy(), exact(x[:, :64], w[:, :64], None))
