"""Fake-quantization numerics: STE rounding, PACT activations, per-channel symmetric weights.

Every quantizer here returns a value that equals ``codes * scale`` bit for bit, where
``codes`` and ``scale`` come from the matching ``*_codes`` function; export relies on this to
reproduce the evaluated model exactly. The quantized value is always ``round(y / s) * s``.

Gradients follow PACT (Choi et al., 2018): the rounding is straight-through, the input gets
gradient 1 where it lies in the closed clip range and 0 beyond it, and the clip threshold gets
+1 where the input is at or above the upper bound (and -1 at or below the lower bound when
symmetric). At the bound itself both the input and the threshold receive gradient, as in the
paper; this keeps the largest weight of a channel trainable when its clip is ``max |w|``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from qnas.quant.grids import act_levels, weight_levels

__all__ = [
    "act_codes",
    "act_levels",
    "max_clip",
    "pact_quantize",
    "round_ste",
    "weight_codes",
    "weight_quantize",
    "weight_scale",
]

_MIN_ALPHA = 1e-4


def round_ste(x: Tensor) -> Tensor:
    """Round to nearest (ties to even) with a straight-through gradient of 1.

    The sum is exact in IEEE arithmetic (``round(x) - x`` is exact by Sterbenz's lemma),
    so the forward value equals ``torch.round(x)``.
    """
    return x + (torch.round(x) - x).detach()


def _forward_as(value: Tensor, surrogate: Tensor) -> Tensor:
    """``value`` in the forward pass, the gradient of ``surrogate`` in the backward pass.

    ``surrogate - surrogate.detach()`` is exactly zero for finite values, so the result is
    bit-identical to ``value``.
    """
    return value.detach() + (surrogate - surrogate.detach())


def _positive_alpha(alpha: Tensor, dtype: torch.dtype) -> Tensor:
    """The effective PACT clip: ``|alpha|`` floored at 1e-4, as a 0-dim tensor of ``dtype``.

    ``abs`` lets an alpha that a large step pushed below zero keep working (and keep
    learning) instead of producing an empty range; the floor avoids a zero scale.
    """
    return alpha.reshape(()).to(dtype).abs().clamp_min(_MIN_ALPHA)


def _act_range(a: Tensor, bits: int, signed: bool) -> tuple[Tensor, Tensor]:
    """Lower bound and step of a PACT grid with effective clip ``a`` (its upper bound)."""
    return (-a if signed else torch.zeros_like(a)), a / act_levels(bits, signed)


def _act_grid(x: Tensor, a: Tensor, bits: int, signed: bool) -> tuple[Tensor, Tensor]:
    """Integer codes and scale of a PACT grid with effective clip ``a``: the same operations, in the same
    order, as ``_PACT.forward`` (so that ``codes * scale`` is its output bit for bit)."""
    low, scale = _act_range(a, bits, signed)
    return torch.clamp(x, low, a).div_(scale).round_(), scale


class _PACT(torch.autograd.Function):
    """PACT forward and its straight-through backward in one node (a few fused passes over ``x``
    instead of an autograd graph of a dozen elementwise ops: QAT spends most time here).

    The clipped ``y = clamp(x, low, a)`` equals ``x`` exactly where ``x`` lies in the closed range and
    equals ``a`` exactly where ``x >= a``, so the forward keeps those two masks (one byte per element
    each, instead of ``x``) and the backward is one multiply and one masked sum."""

    @staticmethod
    def forward(ctx, x: Tensor, a: Tensor, bits: int, signed: bool) -> Tensor:  # type: ignore[override]
        low, scale = _act_range(a, bits, signed)
        q = torch.clamp(x, low, a)
        masks = []
        if ctx.needs_input_grad[0]:
            masks.append(q == x)  # inside the closed range
        if ctx.needs_input_grad[1]:
            masks.append(q == a)  # at or above the upper bound
            if signed:
                masks.append(q == low)  # at or below the lower bound
        q.div_(scale).round_().mul_(scale)
        ctx.save_for_backward(*masks)
        return q

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:  # type: ignore[override]
        masks = list(ctx.saved_tensors)
        grad_x = grad * masks.pop(0) if ctx.needs_input_grad[0] else None
        grad_a = None
        if ctx.needs_input_grad[1]:
            upper = masks.pop(0)
            grad_a = torch.where(upper, grad, 0).sum()
            if masks:
                grad_a = grad_a - torch.where(masks.pop(0), grad, 0).sum()
        return grad_x, grad_a, None, None


def pact_quantize(x: Tensor, alpha: Tensor, bits: int, signed: bool) -> Tensor:
    """PACT fake-quantization of activations with a learnable clip ``alpha`` (one element).

    Unsigned: clip to ``[0, a]``; signed: clip to ``[-a, a]``, with ``a = max(|alpha|, 1e-4)``.
    The result is ``round(y / s) * s`` with ``s = a / act_levels(bits, signed)``. Gradients:
    ``dq/dx`` is 1 inside the closed clip range and 0 outside; ``dq/dalpha`` is +1 where
    ``x >= a``, -1 where ``x <= -a`` (signed only) and 0 elsewhere.
    """
    return _PACT.apply(x, _positive_alpha(alpha, x.dtype), bits, signed)


def act_codes(x: Tensor, alpha: Tensor, bits: int, signed: bool) -> tuple[Tensor, Tensor]:
    """Integer codes (a float tensor of integers) and the 0-dim scale of ``pact_quantize``.

    ``codes * scale`` equals ``pact_quantize(x, alpha, bits, signed)`` exactly; both are
    detached, since export only reads them.
    """
    return _act_grid(x.detach(), _positive_alpha(alpha.detach(), x.dtype), bits, signed)


def max_clip(w: Tensor) -> Tensor:
    """Per-output-channel ``max |w|`` (shape ``[out]``), detached: the default weight clip."""
    return w.detach().abs().reshape(w.shape[0], -1).amax(dim=1)


def _check_clip(w: Tensor, clip: Tensor) -> None:
    """Reject a clip that is not one value per output channel of ``w``."""
    if w.dim() == 0 or clip.shape != (w.shape[0],):
        raise ValueError(f"clip must have shape [{w.shape[0] if w.dim() else '?'}] for weight of shape "
                         f"{tuple(w.shape)}, got {tuple(clip.shape)}")


def _per_channel(t: Tensor, w: Tensor) -> Tensor:
    """Reshape a ``[out]`` tensor so that it broadcasts against ``w`` along axis 0."""
    return t.reshape((w.shape[0],) + (1,) * (w.dim() - 1))


def weight_scale(w: Tensor, bits: int, clip: Tensor) -> Tensor:
    """Per-output-channel scale ``clip / (2**(bits-1) - 1)``, shaped to broadcast against ``w``.

    The scale is floored at the smallest normal float so that an all-zero channel (clip 0)
    quantizes to zeros instead of NaN.
    """
    _check_clip(w, clip)
    levels = weight_levels(bits)
    scale = _per_channel(clip.to(w.dtype), w) / levels
    return scale.clamp_min(torch.finfo(w.dtype).tiny)


def _weight_grid(w: Tensor, bits: int, clip: Tensor) -> tuple[Tensor, Tensor]:
    """Integer codes and broadcastable scale of ``w`` clipped symmetrically to ``clip``."""
    scale = weight_scale(w, bits, clip)
    c = _per_channel(clip.to(w.dtype), w)
    y = torch.minimum(torch.maximum(w, -c), c)
    return torch.round(y / scale), scale


class _WeightQuant(torch.autograd.Function):
    """Per-channel weight fake-quantization and its straight-through backward in one node."""

    @staticmethod
    def forward(ctx, w: Tensor, clip: Tensor, bits: int) -> Tensor:  # type: ignore[override]
        codes, scale = _weight_grid(w, bits, clip)
        ctx.save_for_backward(w, clip)
        return codes.mul_(scale)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        w, clip = ctx.saved_tensors
        c = _per_channel(clip.to(w.dtype), w)
        grad_w = grad * ((w <= c) & (w >= -c)) if ctx.needs_input_grad[0] else None
        grad_clip = None
        if ctx.needs_input_grad[1]:
            signed_hits = (w >= c).to(grad.dtype) - (w <= -c).to(grad.dtype)
            grad_clip = (grad * signed_hits).reshape(w.shape[0], -1).sum(1).to(clip.dtype)
        return grad_w, grad_clip, None


def weight_quantize(w: Tensor, bits: int, clip: Tensor) -> Tensor:
    """Symmetric narrow-range per-output-channel fake-quantization of a weight ``[out, ...]``.

    Codes lie in ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``. Gradients: ``dq/dw`` is 1 where
    ``|w| <= clip`` and 0 elsewhere; ``dq/dclip`` is +1 where ``w >= clip`` and -1 where
    ``w <= -clip``, so a learnable clip learns as PACT's alpha does.
    """
    _check_clip(w, clip)
    return _WeightQuant.apply(w, clip, bits)


def weight_codes(w: Tensor, bits: int, clip: Tensor) -> tuple[Tensor, Tensor]:
    """Integer codes (float tensor) and per-channel scale with ``codes * scale == weight_quantize``.

    The scale keeps the broadcastable shape ``[out, 1, ...]``; both results are detached.
    """
    return _weight_grid(w.detach(), bits, clip.detach())
