"""Quantizer modules with an elastic bit width: one PACT activation quantizer, one weight quantizer.

Each module holds its learnable clip per bit-width choice (a 4-bit grid usually wants a tighter
clip than an 8-bit one), switches precision with ``set_bits`` and can be ``frozen`` to the
active choice for a static model whose forward is bit-identical.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from qnas.quant.functional import (
    _positive_alpha,
    act_codes,
    act_levels,
    max_clip,
    pact_quantize,
    weight_codes,
    weight_quantize,
)
from qnas.quant.targets import get_target

__all__ = ["PACTActivationQuant", "PerChannelWeightQuant", "limit_bits", "apply_target"]

_MIN_CLIP_RATIO = 1e-3
_MAX_CLIP_RATIO = 1.0


class _ClampTowardRange(torch.autograd.Function):
    """``clamp(r, low, high)`` whose gradient is kept wherever a descent step moves ``r`` toward
    the range, so a ratio that overshot the range can come back instead of sticking there."""

    @staticmethod
    def forward(ctx, r: Tensor, low: float, high: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(r)
        ctx.bounds = (low, high)
        return r.clamp(low, high)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (r,) = ctx.saved_tensors
        low, high = ctx.bounds
        outward = ((r > high) & (grad < 0)) | ((r < low) & (grad > 0))
        return torch.where(outward, torch.zeros_like(grad), grad), None, None


def _bit_choices(bits_choices: Sequence[int], signed: bool) -> tuple[int, ...]:
    """Validated, duplicate-free tuple of bit widths (order kept: it indexes the clip table)."""
    choices = tuple(bits_choices)
    if not choices:
        raise ValueError("bits_choices must not be empty")
    if len(set(choices)) != len(choices):
        raise ValueError(f"bits_choices must not repeat a value, got {choices}")
    for bits in choices:
        act_levels(bits, signed)
    return choices


class _ElasticBits(nn.Module):
    """Shared bit-width bookkeeping: the choices, the active one and the enabled switch."""

    def __init__(self, bits_choices: Sequence[int], signed: bool) -> None:
        super().__init__()
        self.bits_choices = _bit_choices(bits_choices, signed)
        self._active_bits = max(self.bits_choices)
        self.enabled = True
        self.max_bits: int | None = None  # a deployment target's limit (``limit_bits``); None: none

    @property
    def grid_bits(self) -> int:
        """The width of the grid the forward pass uses: the active choice, narrowed to ``max_bits``."""
        return self._active_bits if self.max_bits is None else min(self._active_bits, self.max_bits)

    @property
    def active_bits(self) -> int:
        """The bit width the forward pass uses; one of ``bits_choices``."""
        return self._active_bits

    @active_bits.setter
    def active_bits(self, bits: int) -> None:
        self.set_bits(bits)

    def set_bits(self, bits: int) -> None:
        """Select the active bit width; raises ValueError if it is not one of the choices."""
        if bits not in self.bits_choices or isinstance(bits, bool):
            raise ValueError(f"bit width {bits!r} is not allowed; choose one of {self.bits_choices}")
        self._active_bits = int(bits)

    @property
    def _index(self) -> int:
        """Row of the per-bit-width parameters that belongs to the active bit width."""
        return self.bits_choices.index(self._active_bits)


class PACTActivationQuant(_ElasticBits):
    """PACT activation fake-quantizer with one learnable clip alpha per bit-width choice.

    ``enabled = False`` makes the forward the identity (float warm-up before QAT). With ``max_bits``
    (unsigned grids only, see ``limit_bits``) a wider choice quantizes on the narrower grid with its own clip.
    """

    def __init__(self, bits_choices: Sequence[int], signed: bool, init_alpha: float = 4.0) -> None:
        super().__init__(bits_choices, signed)
        self.signed = bool(signed)
        self.alpha = nn.Parameter(torch.full((len(self.bits_choices),), float(init_alpha)))

    def active_alpha(self) -> Tensor:
        """The 0-dim alpha of the active bit width (a view, so gradients reach ``alpha``)."""
        return self.alpha[self._index]

    def clip(self) -> Tensor:
        """The 0-dim clip the active grid uses (``|alpha|`` floored at 1e-4, detached): its step is this
        divided by ``act_levels(grid_bits, signed)``, a quantizer's threshold in brevitas' terms."""
        return _positive_alpha(self.active_alpha().detach(), self.alpha.dtype)

    def grid_scale(self) -> Tensor:
        """The 0-dim step of the active grid (what ``forward`` multiplies its integer codes by)."""
        return act_codes(self.alpha.new_zeros(()), self.active_alpha(), self.grid_bits, self.signed)[1]

    def codes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Integer codes of ``x`` and the 0-dim scale; their product equals ``forward(x)`` exactly."""
        if not self.enabled:
            raise RuntimeError("a disabled activation quantizer has no codes: its forward is the identity")
        return act_codes(x, self.active_alpha(), self.grid_bits, self.signed)

    def forward(self, x: Tensor) -> Tensor:
        """Fake-quantize ``x`` at the active bit width (identity when disabled)."""
        if not self.enabled:
            return x
        return pact_quantize(x, self.active_alpha(), self.grid_bits, self.signed)

    def frozen(self) -> PACTActivationQuant:
        """A new quantizer fixed to the grid it uses (``grid_bits``), with a copy of its alpha.

        Its forward is bit-identical to this module's forward for the same input.
        """
        out = PACTActivationQuant((self.grid_bits,), self.signed)
        idx = self._index
        out.alpha = nn.Parameter(self.alpha.detach()[idx:idx + 1].clone(),
                                 requires_grad=self.alpha.requires_grad)
        out.enabled = self.enabled
        return out

    def extra_repr(self) -> str:
        return (f"bits_choices={self.bits_choices}, active_bits={self._active_bits}, "
                f"signed={self.signed}, enabled={self.enabled}" + _limit_repr(self.max_bits))


class PerChannelWeightQuant(_ElasticBits):
    """Symmetric per-output-channel weight fake-quantizer with an elastic bit width.

    The clip of each channel is ``max |w|``; with ``learn_clip`` it is multiplied by a learnable
    ratio clamped to ``[1e-3, 1]``, one row per bit width (``clip_ratio``, shape
    ``[len(bits_choices), out_channels]``). The clamp passes gradient that points back into
    the range, so an optimizer step that overshoots 1 does not freeze the ratio. Weights with
    fewer output channels than ``out_channels`` (elastic width) use the first ``w.shape[0]`` ratios, or
    the ``rows`` given.
    """

    def __init__(self, bits_choices: Sequence[int], out_channels: int, learn_clip: bool = False) -> None:
        super().__init__(bits_choices, signed=True)
        if out_channels < 1:
            raise ValueError(f"out_channels must be >= 1, got {out_channels}")
        self.out_channels = int(out_channels)
        self.learn_clip = bool(learn_clip)
        if self.learn_clip:
            self.clip_ratio = nn.Parameter(torch.ones(len(self.bits_choices), self.out_channels))
        else:
            self.register_parameter("clip_ratio", None)

    def clip(self, w: Tensor, rows: Sequence[int] | None = None) -> Tensor:
        """Per-channel clip (``[w.shape[0]]``) at the active bit width for weight ``w``, whose channels are this
        quantizer's ``rows`` (default: its first ``w.shape[0]``)."""
        n = w.shape[0]
        if n > self.out_channels:
            raise ValueError(f"weight has {n} output channels, more than the quantizer's {self.out_channels}")
        base = max_clip(w)
        if self.clip_ratio is None:
            return base
        if rows is not None and len(rows) != n:
            raise ValueError(f"weight has {n} output channels, but {len(rows)} channel rows were given")
        ratios = self.clip_ratio[self._index, :n] if rows is None else self.clip_ratio[self._index, list(rows)]
        ratio = _ClampTowardRange.apply(ratios, _MIN_CLIP_RATIO, _MAX_CLIP_RATIO)
        return base * ratio.to(base.dtype)

    def forward(self, w: Tensor, rows: Sequence[int] | None = None) -> Tensor:
        """Fake-quantize ``w`` (``[out, ...]``, channels ``rows``) at the active bit width (identity when disabled)."""
        if not self.enabled:
            return w
        return weight_quantize(w, self.grid_bits, self.clip(w, rows))

    def codes(self, w: Tensor, rows: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
        """Integer codes and per-channel scale whose product equals ``forward(w, rows)`` exactly."""
        if not self.enabled:
            raise RuntimeError("a disabled weight quantizer has no codes: its forward is the identity")
        return weight_codes(w, self.grid_bits, self.clip(w, rows))

    def frozen(self, channels: int | Sequence[int]) -> PerChannelWeightQuant:
        """A new quantizer fixed to the grid it uses (``grid_bits``) and ``channels``: the first that many, or
        those rows.

        Its forward is bit-identical to this module's for a weight of those channels.
        """
        if isinstance(channels, int) and not 1 <= channels <= self.out_channels:
            raise ValueError(f"out_channels must be in [1, {self.out_channels}], got {channels}")
        rows = list(range(channels)) if isinstance(channels, int) else list(channels)
        if not rows or not all(0 <= r < self.out_channels for r in rows):
            raise ValueError(f"channel rows must be some of [0, {self.out_channels}), got {channels}")
        out = PerChannelWeightQuant((self.grid_bits,), len(rows), self.learn_clip)
        if self.clip_ratio is not None:
            idx = self._index
            out.clip_ratio = nn.Parameter(self.clip_ratio.detach()[idx:idx + 1, rows].clone(),
                                          requires_grad=self.clip_ratio.requires_grad)
        out.enabled = self.enabled
        return out

    def extra_repr(self) -> str:
        return (f"bits_choices={self.bits_choices}, active_bits={self._active_bits}, "
                f"out_channels={self.out_channels}, learn_clip={self.learn_clip}, enabled={self.enabled}"
                + _limit_repr(self.max_bits))


def _limit_repr(max_bits: int | None) -> str:
    return "" if max_bits is None else f", max_bits={max_bits}"


def limit_bits(model: nn.Module, max_weight_bits: int | None, max_unsigned_bits: int | None) -> nn.Module:
    """Set a deployment target's limits on every quantizer of ``model`` (in place; returned): weight grids
    at most ``max_weight_bits``, unsigned activation grids at most ``max_unsigned_bits`` (None: no limit).
    The genome's choices stay as they are; a choice above the limit runs on the narrower grid with its own
    clip, in training, evaluation and ``frozen`` alike."""
    for module in model.modules():
        if isinstance(module, PerChannelWeightQuant):
            module.max_bits = max_weight_bits
        elif isinstance(module, PACTActivationQuant):
            module.max_bits = None if module.signed else max_unsigned_bits
    return model


def apply_target(model: nn.Module, target: str) -> nn.Module:
    """``limit_bits`` with the limits of the registered deployment target ``target`` (``qnas.quant.targets``)."""
    limits = get_target(target)
    return limit_bits(model, limits.max_weight_bits, limits.max_unsigned_bits)
