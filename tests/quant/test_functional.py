"""Property tests of the fake-quantization numerics in ``qnas.quant.functional``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qnas.quant import (
    act_codes,
    act_levels,
    max_clip,
    pact_quantize,
    round_ste,
    weight_codes,
    weight_quantize,
    weight_scale,
)

SETTINGS = settings(deadline=None, max_examples=60)
BITS = st.sampled_from([2, 3, 4, 5, 6, 8])
FLOATS = st.floats(-20.0, 20.0, width=32, allow_nan=False, allow_infinity=False)
ACTS = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=8), elements=FLOATS)
ALPHAS = st.floats(0.0625, 10.0, width=32)
WEIGHTS = hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
                                           st.integers(1, 3)), elements=FLOATS)


def _act_inputs(x: np.ndarray, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(x, requires_grad=True), torch.tensor(alpha, dtype=torch.float32, requires_grad=True))


def test_round_ste_rounds_and_passes_gradient() -> None:
    x = torch.tensor([-2.5, -0.6, 0.2, 0.5, 1.5, 3.7], requires_grad=True)
    y = round_ste(x)
    assert torch.equal(y, torch.round(x.detach()))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_levels() -> None:
    assert act_levels(8, signed=False) == 255
    assert act_levels(8, signed=True) == 127
    assert act_levels(2, signed=True) == 1
    with pytest.raises(ValueError, match="bits"):
        act_levels(1, signed=True)
    with pytest.raises(ValueError, match="bits"):
        act_levels(0, signed=False)


@SETTINGS
@given(x=ACTS, alpha=ALPHAS, bits=BITS, signed=st.booleans())
def test_pact_output_on_grid(x: np.ndarray, alpha: float, bits: int, signed: bool) -> None:
    xt, at = _act_inputs(x, alpha)
    q = pact_quantize(xt, at, bits, signed).detach()
    levels = act_levels(bits, signed)
    s = alpha / levels
    k = q.double() / s
    assert torch.all((k - k.round()).abs() <= 1e-4)
    low = -levels if signed else 0
    assert torch.all(k.round() >= low) and torch.all(k.round() <= levels)
    assert q.unique().numel() <= 2**bits - (1 if signed else 0)


@SETTINGS
@given(x=ACTS, alpha=ALPHAS, bits=BITS, signed=st.booleans())
def test_pact_codes_reproduce_output_exactly(x: np.ndarray, alpha: float, bits: int, signed: bool) -> None:
    xt, at = _act_inputs(x, alpha)
    q = pact_quantize(xt, at, bits, signed)
    codes, scale = act_codes(xt, at, bits, signed)
    assert scale.dim() == 0
    assert torch.equal(codes, codes.round())
    assert torch.equal(codes * scale, q.detach())
    assert torch.equal(torch.round(q.detach() / scale), codes)


@SETTINGS
@given(x=ACTS, alpha=ALPHAS, bits=BITS, signed=st.booleans())
def test_pact_gradients_follow_pact(x: np.ndarray, alpha: float, bits: int, signed: bool) -> None:
    xt, at = _act_inputs(x, alpha)
    pact_quantize(xt, at, bits, signed).backward(torch.ones_like(xt))
    xd, a = xt.detach(), at.detach()
    low = -a if signed else torch.zeros(())
    assert torch.equal(xt.grad, ((xd >= low) & (xd <= a)).float())
    expected = (xd >= a).sum() - ((xd <= -a).sum() if signed else 0)
    assert at.grad.item() == expected.item()


def test_pact_alpha_kept_positive() -> None:
    x = torch.linspace(-3, 3, 13)
    for alpha in (torch.tensor(0.0), torch.tensor(-2.0)):
        q = pact_quantize(x, alpha, 4, signed=False)
        assert torch.isfinite(q).all()
        assert q.min() >= 0
    negative = pact_quantize(x, torch.tensor(-2.0), 4, False)
    assert torch.equal(negative, pact_quantize(x, torch.tensor(2.0), 4, False))


def test_pact_unsigned_and_signed_ranges() -> None:
    x = torch.tensor([-5.0, -1.0, 0.0, 0.25, 1.0, 5.0])
    alpha = torch.tensor(1.0)
    codes = torch.tensor([0.0, 0.0, 0.0, 64.0, 255.0, 255.0])
    assert torch.equal(pact_quantize(x, alpha, 8, False), codes * (alpha / 255))
    assert torch.equal(pact_quantize(x, alpha, 2, True), torch.tensor([-1.0, -1.0, 0.0, 0.0, 1.0, 1.0]))


@SETTINGS
@given(w=WEIGHTS, bits=BITS)
def test_weight_quant_on_symmetric_grid(w: np.ndarray, bits: int) -> None:
    wt = torch.tensor(w)
    clip = max_clip(wt)
    q = weight_quantize(wt, bits, clip)
    codes, scale = weight_codes(wt, bits, clip)
    levels = 2 ** (bits - 1) - 1
    assert scale.shape == (w.shape[0], 1, 1, 1)
    assert torch.equal(scale, weight_scale(wt, bits, clip))
    assert torch.equal(codes, codes.round())
    assert codes.abs().max() <= levels
    assert torch.equal(codes * scale, q)
    k = q.double() / scale.double()
    assert torch.all((k - k.round()).abs() <= 1e-4)
    for channel in q:
        assert channel.unique().numel() <= 2**bits - 1


@SETTINGS
@given(w=WEIGHTS, bits=BITS)
def test_weight_quant_is_odd(w: np.ndarray, bits: int) -> None:
    wt = torch.tensor(w)
    clip = max_clip(wt)
    assert torch.equal(weight_quantize(-wt, bits, clip), -weight_quantize(wt, bits, clip))
    assert torch.equal(max_clip(-wt), clip)


@SETTINGS
@given(w=WEIGHTS, bits=BITS, ratio=st.floats(0.1, 1.0))
def test_weight_gradients_follow_pact(w: np.ndarray, bits: int, ratio: float) -> None:
    wt = torch.tensor(w, requires_grad=True)
    clip = (max_clip(wt) * ratio).requires_grad_(True)
    weight_quantize(wt, bits, clip).backward(torch.ones_like(wt))
    c = clip.detach().reshape(-1, 1, 1, 1)
    wd = wt.detach()
    assert torch.equal(wt.grad, (wd.abs() <= c).float())
    per_channel = ((wd >= c).float() - (wd <= -c).float()).sum(dim=(1, 2, 3))
    assert torch.equal(clip.grad, per_channel)


def test_max_clip_weight_keeps_largest_weight_trainable() -> None:
    w = torch.tensor([[0.5, -2.0, 1.0], [3.0, 0.1, -0.2]], requires_grad=True)
    weight_quantize(w, 4, max_clip(w)).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_zero_channel_gives_zeros_without_nan() -> None:
    w = torch.randn(3, 2, 3, 3)
    w[1] = 0.0
    w.requires_grad_(True)
    clip = max_clip(w).requires_grad_(True)
    q = weight_quantize(w, 4, clip)
    assert torch.isfinite(q).all()
    assert torch.equal(q[1], torch.zeros_like(q[1]))
    q.sum().backward()
    assert torch.isfinite(w.grad).all() and torch.isfinite(clip.grad).all()
    codes, scale = weight_codes(w, 4, clip)
    assert torch.isfinite(scale).all() and scale.min() > 0
    assert torch.equal(codes[1], torch.zeros_like(codes[1]))


def test_weight_quant_handles_linear_weights() -> None:
    w = torch.randn(5, 7)
    clip = max_clip(w)
    codes, scale = weight_codes(w, 8, clip)
    assert scale.shape == (5, 1)
    assert torch.equal(codes * scale, weight_quantize(w, 8, clip))
    assert codes.abs().amax(dim=1).eq(127).all()


def test_weight_clip_shape_checked() -> None:
    with pytest.raises(ValueError, match="clip must have shape"):
        weight_quantize(torch.randn(4, 3, 3, 3), 4, torch.ones(3))
