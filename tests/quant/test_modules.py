"""Tests of the elastic-bit-width quantizer modules in ``qnas.quant.modules``."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qnas.quant import PACTActivationQuant, PerChannelWeightQuant, act_codes, limit_bits, max_clip, pact_quantize


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("signed", [False, True])
def test_pact_module_defaults_and_forward(signed: bool) -> None:
    m = PACTActivationQuant((4, 6, 8), signed=signed, init_alpha=3.0)
    assert m.bits_choices == (4, 6, 8) and m.active_bits == 8 and m.enabled
    assert m.alpha.shape == (3,) and torch.equal(m.alpha.detach(), torch.full((3,), 3.0))
    x = torch.randn(2, 3, 5, 5, generator=_gen()) * 4
    m.set_bits(6)
    assert torch.equal(m(x), pact_quantize(x, torch.tensor(3.0), 6, signed))
    assert "bits_choices=(4, 6, 8)" in repr(m) and f"signed={signed}" in repr(m)


def test_pact_module_rejects_unknown_bits() -> None:
    m = PACTActivationQuant((4, 6, 8), signed=False)
    with pytest.raises(ValueError, match=r"5.*\(4, 6, 8\)"):
        m.set_bits(5)
    with pytest.raises(ValueError, match="5"):
        m.active_bits = 5
    assert m.active_bits == 8
    m.active_bits = 4
    assert m.active_bits == 4


@pytest.mark.parametrize("choices", [(), (4, 4), (1, 8)])
def test_module_rejects_bad_choices(choices: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        PACTActivationQuant(choices, signed=True)
    with pytest.raises(ValueError):
        PerChannelWeightQuant(choices, out_channels=4)


def test_one_alpha_per_bit_width() -> None:
    m = PACTActivationQuant((4, 8), signed=False)
    x = torch.rand(64, generator=_gen()) * 6
    before = m(x).detach().clone()
    with torch.no_grad():
        m.alpha[m.bits_choices.index(4)] = 1.0
    assert torch.equal(m(x), before)
    m.set_bits(4)
    assert m(x).max() <= 1.0


def test_pact_gradient_reaches_only_active_alpha() -> None:
    m = PACTActivationQuant((4, 8), signed=True, init_alpha=1.0)
    m.set_bits(4)
    m(torch.arange(-15, 16) / 5.0).sum().backward()
    assert m.alpha.grad[1] == 0 and m.alpha.grad[0] == 0  # symmetric input: +n and -n cancel
    m.zero_grad()
    m(torch.linspace(0, 3, 31)).sum().backward()
    assert m.alpha.grad[0] > 0 and m.alpha.grad[1] == 0


def test_disabled_quantizers_are_identity() -> None:
    x = torch.randn(4, 3, 3, 3, generator=_gen())
    a = PACTActivationQuant((4,), signed=True)
    w = PerChannelWeightQuant((4,), out_channels=4, learn_clip=True)
    a.enabled = False
    w.enabled = False
    assert a(x) is x and w(x) is x
    assert not a.frozen().enabled and not w.frozen(4).enabled
    with pytest.raises(RuntimeError):
        w.codes(x)


@settings(deadline=None, max_examples=25)
@given(bits=st.sampled_from([4, 6, 8]), signed=st.booleans(), seed=st.integers(0, 2**16))
def test_pact_frozen_is_bit_identical(bits: int, signed: bool, seed: int) -> None:
    m = PACTActivationQuant((4, 6, 8), signed=signed)
    with torch.no_grad():
        m.alpha.copy_(torch.rand(3, generator=_gen(seed)) * 5 + 0.1)
    m.set_bits(bits)
    f = m.frozen()
    assert f.bits_choices == (bits,) and f.active_bits == bits and f.signed == signed
    assert f.alpha.shape == (1,)
    x = torch.randn(2, 4, 6, 6, generator=_gen(seed + 1)) * 3
    assert torch.equal(f(x), m(x))
    codes, scale = act_codes(x, f.alpha[0], bits, signed)
    assert torch.equal(codes * scale, m(x).detach())
    with torch.no_grad():
        f.alpha.fill_(100.0)
    assert m.alpha.max() < 100.0  # the copy is independent


def test_weight_module_max_clip_and_elastic_width() -> None:
    m = PerChannelWeightQuant((4, 8), out_channels=8)
    assert m.clip_ratio is None and m.active_bits == 8
    w = torch.randn(5, 3, 3, 3, generator=_gen())
    assert torch.equal(m.clip(w), max_clip(w))
    q = m(w)
    codes, scale = m.codes(w)
    assert torch.equal(codes * scale, q)
    assert codes.abs().amax(dim=(1, 2, 3)).eq(127).all()
    with pytest.raises(ValueError, match="more than"):
        m(torch.randn(9, 3, 3, 3))


def test_weight_module_learned_clip_per_bit_width() -> None:
    m = PerChannelWeightQuant((4, 8), out_channels=6, learn_clip=True)
    assert m.clip_ratio.shape == (2, 6) and torch.equal(m.clip_ratio.detach(), torch.ones(2, 6))
    w = torch.randn(4, 2, 3, 3, generator=_gen())
    before = m(w).detach().clone()
    with torch.no_grad():
        m.clip_ratio[0] = 0.5
    assert torch.equal(m(w), before)  # 8-bit row untouched
    m.set_bits(4)
    assert torch.allclose(m.clip(w), max_clip(w) * 0.5)
    m(w).sum().backward()
    assert m.clip_ratio.grad is not None
    assert torch.equal(m.clip_ratio.grad[1], torch.zeros(6))
    assert torch.equal(m.clip_ratio.grad[0, 4:], torch.zeros(2))


@settings(deadline=None, max_examples=25)
@given(bits=st.sampled_from([4, 6, 8]), width=st.integers(1, 6), learn=st.booleans(),
       seed=st.integers(0, 2**16))
def test_weight_frozen_is_bit_identical(bits: int, width: int, learn: bool, seed: int) -> None:
    m = PerChannelWeightQuant((4, 6, 8), out_channels=6, learn_clip=learn)
    if learn:
        with torch.no_grad():
            m.clip_ratio.copy_(torch.rand(3, 6, generator=_gen(seed)) * 0.9 + 0.1)
    m.set_bits(bits)
    f = m.frozen(width)
    assert f.bits_choices == (bits,) and f.out_channels == width
    if learn:
        assert f.clip_ratio.shape == (1, width)
    w = torch.randn(width, 3, 3, 3, generator=_gen(seed + 1))
    assert torch.equal(f(w), m(w))
    fc, fs = f.codes(w)
    mc, ms = m.codes(w)
    assert torch.equal(fc, mc) and torch.equal(fs, ms)


def test_weight_frozen_rejects_bad_width() -> None:
    m = PerChannelWeightQuant((8,), out_channels=4)
    for width in (0, 5):
        with pytest.raises(ValueError, match="out_channels"):
            m.frozen(width)


def test_pact_alpha_learns_toward_smaller_clip() -> None:
    m = PACTActivationQuant((8,), signed=False, init_alpha=4.0)
    x = torch.rand(4096, generator=_gen()) * 6
    target = x.clamp(0, 2.0)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.mse_loss(m(x), target).backward()
        opt.step()
    assert abs(m.alpha.item() - 2.0) < 0.1


def test_signed_pact_alpha_learns_toward_smaller_clip() -> None:
    m = PACTActivationQuant((8,), signed=True, init_alpha=4.0)
    x = (torch.rand(4096, generator=_gen()) - 0.5) * 12
    target = x.clamp(-1.5, 1.5)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.mse_loss(m(x), target).backward()
        opt.step()
    assert abs(m.alpha.item() - 1.5) < 0.1


def test_weight_clip_ratio_learns_toward_smaller_clip() -> None:
    m = PerChannelWeightQuant((4, 8), out_channels=8, learn_clip=True)
    w = torch.randn(8, 4, 3, 3, generator=_gen())
    c = (max_clip(w) * 0.5).reshape(-1, 1, 1, 1)
    target = torch.maximum(torch.minimum(w, c), -c)
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    for _ in range(100):
        opt.zero_grad()
        (m(w) - target).pow(2).sum().backward()
        opt.step()
    ratio = m.clip_ratio.detach()
    assert torch.all((ratio[1] - 0.5).abs() < 0.1), ratio[1]
    assert torch.equal(ratio[0], torch.ones(8))  # the 4-bit row never ran


def test_clip_ratio_out_of_range_comes_back_but_does_not_drift() -> None:
    m = PerChannelWeightQuant((8,), out_channels=4, learn_clip=True)
    with torch.no_grad():
        m.clip_ratio.fill_(1.5)  # as after an optimizer step that overshot
    w = torch.randn(4, 2, 3, 3, generator=_gen())
    assert torch.equal(m.clip(w), max_clip(w))
    (m(w) * w.sign()).sum().neg().backward()  # a loss that wants a larger clip: the gradient is blocked
    assert torch.equal(m.clip_ratio.grad, torch.zeros(1, 4))
    m.zero_grad()
    (m(w) * w.sign()).sum().backward()  # one that wants a smaller clip: the gradient passes
    assert torch.all(m.clip_ratio.grad > 0)


@pytest.mark.parametrize("signed", [False, True])
def test_a_bit_limit_narrows_unsigned_activation_grids_on_the_same_clip(signed: bool) -> None:
    m = PACTActivationQuant((4, 6, 8), signed=signed, init_alpha=3.0)
    limit_bits(m, None, 7)
    x = torch.randn(2, 3, 5, 5, generator=_gen()) * 4
    want_bits = 8 if signed else 7  # signed grids are never limited
    assert m.active_bits == 8 and m.grid_bits == want_bits
    assert torch.equal(m(x), pact_quantize(x, torch.tensor(3.0), want_bits, signed))
    f = m.frozen()
    assert f.bits_choices == (want_bits,) and f.max_bits is None and torch.equal(f(x), m(x))
    m.set_bits(6)
    assert m.grid_bits == 6 and torch.equal(m(x), pact_quantize(x, torch.tensor(3.0), 6, signed))
    limit_bits(m, None, None)
    m.set_bits(8)
    assert m.grid_bits == 8 and torch.equal(m(x), pact_quantize(x, torch.tensor(3.0), 8, signed))


def test_a_bit_limit_narrows_weight_grids_and_their_frozen_copy() -> None:
    m = PerChannelWeightQuant((4, 6, 8), out_channels=6, learn_clip=True)
    with torch.no_grad():
        m.clip_ratio.copy_(torch.rand(3, 6, generator=_gen(2)) * 0.5 + 0.5)
    w = torch.randn(6, 3, 3, 3, generator=_gen(1))
    limit_bits(m, 7, 7)
    codes, scale = m.codes(w)
    assert m.grid_bits == 7 and codes.abs().max() == 63  # the 8-bit choice's clip on a 7-bit grid
    assert torch.equal(codes * scale, m(w))
    f = m.frozen(6)
    assert f.bits_choices == (7,) and torch.equal(f(w), m(w))
    m.set_bits(4)
    assert m.grid_bits == 4 and m.codes(w)[0].abs().max() == 7
    assert "max_bits=7" in repr(m)
