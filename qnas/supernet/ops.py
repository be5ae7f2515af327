"""Elastic ops and their static counterparts.

Each elastic op has exactly one slicing routine (``active_weight``, ``active_params``) that
both its ``forward`` and its ``freeze`` call, so a frozen subnet holds the very tensors the
supernet computed with, and its output is bit-identical.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qnas.quant import PACTActivationQuant, PerChannelWeightQuant, act_levels

__all__ = ["qconv2d", "integer_conv2d", "fold_batchnorm", "bn_params", "QConv2d", "ElasticQConv2d",
           "ElasticBatchNorm2d", "centre_crop"]


def qconv2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, groups: int,
            act_quant: nn.Module, weight_quant: nn.Module) -> Tensor:
    """Conv of the quantized input with the quantized weight ('same' padding)."""
    kernel = weight.shape[-1]
    return F.conv2d(act_quant(x), weight_quant(weight), bias, stride, kernel // 2, 1, groups)


def bn_params(bn: nn.Module, channels: int) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:
    """Running mean, running var, gamma, beta (first ``channels``) and eps of a BatchNorm."""
    if isinstance(bn, ElasticBatchNorm2d):
        return (*bn.active_params(channels), bn.eps)
    return bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps


BIAS_CODE_LIMIT = 2.0**22  # |int32 bias| bound that keeps accumulator + bias exact in float32 (< 2^24)
FLOAT32_EXACT_LIMIT = 2.0**24  # integers up to this size (and every partial sum below it) are exact in float32


def fold_batchnorm(codes: Tensor, scale: Tensor, conv_bias: Tensor | None, input_scale: Tensor,
                   bn: tuple[Tensor, Tensor, Tensor, Tensor, float]) -> tuple[Tensor, Tensor, Tensor]:
    """Fold eval-mode BatchNorm into a quantized conv as an integer engine runs it.

    The weight codes stay; each channel's scale becomes ``s * gamma / sigma`` (negative where
    gamma is) and the bias ``beta - mean * gamma / sigma`` becomes an integer on the accumulator
    grid ``input_scale * folded scale`` (an int32 bias, at most ``BIAS_CODE_LIMIT`` in size). Returns (codes, folded scale [O],
    bias codes [O], a float tensor of integers). This one function defines the evaluated model
    and every exported one.
    """
    mean, var, gamma, beta, eps = bn
    factor = gamma / torch.sqrt(var + eps)
    folded = scale.reshape(-1) * factor
    bias = beta - mean * factor
    if conv_bias is not None:
        bias = bias + conv_bias * factor
    bias_codes = torch.round(bias / (input_scale * folded))
    over = ~(bias_codes.abs() <= BIAS_CODE_LIMIT)  # also catches inf / nan (a zero gamma)
    if over.any():
        # A channel whose BatchNorm all but switched it off (gamma ~ 0): its bias does not fit the
        # accumulator grid. Coarsen that channel's grid until it does and requantize its weight
        # codes onto it (they shrink towards 0; the channel was nearly constant anyway).
        sign = torch.where(folded < 0, -1.0, 1.0).to(folded.dtype)
        coarse = sign * (bias.abs() / (input_scale * BIAS_CODE_LIMIT)).clamp_min(torch.finfo(folded.dtype).tiny)
        ratio = torch.where(over, folded / coarse, torch.ones_like(folded)).reshape(-1, *([1] * (codes.dim() - 1)))
        codes = torch.where(over.reshape(ratio.shape), torch.round(codes * ratio), codes)
        folded = torch.where(over, coarse, folded)
        bias_codes = torch.round(bias / (input_scale * folded))
    return codes, folded, bias_codes


def integer_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, groups: int,
                   act_quant: PACTActivationQuant, weight_quant: PerChannelWeightQuant,
                   bn: tuple[Tensor, Tensor, Tensor, Tensor, float] | None = None) -> Tensor:
    """An evaluation-mode quantized conv computed as an integer engine computes it.

    Input codes times weight codes are summed exactly (``_exact_sum_conv``), plus the int32
    bias when BatchNorm is folded in (``fold_batchnorm``), then rescaled once by
    ``s_in * s_w[c]``; without BatchNorm a float bias is added after the rescale. Every export
    profile writes these same operations, so its output can equal this one bit for bit.
    """
    x_codes, input_scale = act_quant.codes(x)
    codes, scale = weight_quant.codes(weight)
    padding = weight.shape[-1] // 2
    # the largest |sum| the quantizers' ranges allow: known without reading a tensor
    products = codes[0].numel() * act_levels(act_quant.active_bits, act_quant.signed) * act_levels(
        weight_quant.active_bits, signed=True)
    if bn is None:
        step = (input_scale * scale.reshape(-1)).reshape(1, -1, 1, 1)
        y = _exact_sum_conv(x_codes, codes, None, stride, padding, groups, products) * step
        return y if bias is None else y + bias.reshape(1, -1, 1, 1)
    codes, folded, bias_codes = fold_batchnorm(codes, scale, bias, input_scale, bn)
    step = (input_scale * folded).reshape(1, -1, 1, 1)
    return _exact_sum_conv(x_codes, codes, bias_codes, stride, padding, groups, products + BIAS_CODE_LIMIT) * step


def _exact_sum_conv(x_codes: Tensor, codes: Tensor, bias_codes: Tensor | None, stride: int, padding: int,
                    groups: int, bound: float) -> Tensor:
    """The integer conv sum (plus integer bias), as an int32 accumulator holds it, in float32.

    ``bound`` caps every |partial sum|. Below 2^24 float32 sums are exact; otherwise the sum is
    taken in float64 (exact) and rounded once to float32, as an integer engine converts its
    int32 accumulator to float before rescaling.
    """
    if bound < FLOAT32_EXACT_LIMIT:
        return F.conv2d(x_codes, codes, bias_codes, stride, padding, 1, groups)
    wide = None if bias_codes is None else bias_codes.double()
    return F.conv2d(x_codes.double(), codes.double(), wide, stride, padding, 1, groups).float()


def _integer_mode(conv: nn.Module) -> bool:
    """Whether a conv evaluates as the integer engine: evaluation mode with both quantizers on."""
    return not conv.training and conv.act_quant.enabled and conv.weight_quant.enabled


def centre_crop(weight: Tensor, kernel: int) -> Tensor:
    """The central ``kernel`` x ``kernel`` window of a square conv kernel."""
    start = (weight.shape[-1] - kernel) // 2
    return weight[..., start:start + kernel, start:start + kernel]


class QConv2d(nn.Module):
    """A static fake-quantized conv: what a frozen subnet is made of."""

    def __init__(self, weight: Tensor, bias: Tensor | None, stride: int, groups: int,
                 act_quant: PACTActivationQuant, weight_quant: PerChannelWeightQuant, label: str) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)
        self.stride = stride
        self.groups = groups
        self.act_quant = act_quant
        self.weight_quant = weight_quant
        self.label = label

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1] * self.groups

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    @property
    def kernel_size(self) -> int:
        return self.weight.shape[-1]

    def forward(self, x: Tensor, bn: nn.Module | None = None) -> Tensor:
        """The conv. In evaluation with quantization on it is ``integer_conv2d`` (with ``bn``
        folded in when given), as the integer export runs it; otherwise fake-quantized float."""
        if _integer_mode(self):
            return integer_conv2d(x, self.weight, self.bias, self.stride, self.groups, self.act_quant,
                                  self.weight_quant, None if bn is None else bn_params(bn, self.out_channels))
        y = qconv2d(x, self.weight, self.bias, self.stride, self.groups, self.act_quant, self.weight_quant)
        return y if bn is None else bn(y)

    def extra_repr(self) -> str:
        return (f"{self.label}: {self.in_channels}->{self.out_channels}, k={self.kernel_size}, "
                f"stride={self.stride}, groups={self.groups}")


class ElasticQConv2d(nn.Module):
    """A fake-quantized conv whose kernel size, output width and bit widths are chosen at run time.

    Smaller kernels are the centre of the next larger one passed through a learned
    kernel-transform matrix (METHOD.md §4, after Once-for-All); fewer channels are the first
    channels. A depthwise conv follows its input's width. Input channels always follow ``x``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_sizes: Sequence[int] = (1,),
                 stride: int = 1, depthwise: bool = False, wbits: Sequence[int] = (8,),
                 abits: Sequence[int] = (8,), signed_input: bool = False, bias: bool = False,
                 act_init_clip: float = 4.0, learn_weight_clip: bool = False, label: str = "") -> None:
        super().__init__()
        if depthwise and in_channels != out_channels:
            raise ValueError("a depthwise conv has as many outputs as inputs")
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        kmax = self.kernel_sizes[-1]
        self.stride = stride
        self.depthwise = depthwise
        self.label = label
        self.max_out = out_channels
        self.weight = nn.Parameter(torch.empty(out_channels, 1 if depthwise else in_channels, kmax, kmax))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # One transform per step down the kernel ladder: (K -> k) maps the k*k centre of K.
        self.transforms = nn.ParameterDict({
            f"{big}to{small}": nn.Parameter(torch.eye(small * small))
            for big, small in zip(self.kernel_sizes[::-1], self.kernel_sizes[-2::-1])
        })
        self.act_quant = PACTActivationQuant(abits, signed=signed_input, init_alpha=act_init_clip)
        self.weight_quant = PerChannelWeightQuant(wbits, out_channels, learn_clip=learn_weight_clip)
        self.active_out = out_channels
        self.active_kernel = kmax

    def set_active(self, *, out_channels: int | None = None, kernel: int | None = None,
                   wbits: int | None = None, abits: int | None = None) -> None:
        if out_channels is not None:
            if not 1 <= out_channels <= self.max_out:
                raise ValueError(f"{self.label}: {out_channels} output channels, at most {self.max_out}")
            self.active_out = out_channels
        if kernel is not None:
            if kernel not in self.kernel_sizes:
                raise ValueError(f"{self.label}: kernel {kernel} not in {list(self.kernel_sizes)}")
            self.active_kernel = kernel
        if wbits is not None:
            self.weight_quant.set_bits(wbits)
        if abits is not None:
            self.act_quant.set_bits(abits)

    def active_weight(self, in_channels: int) -> Tensor:
        """The float weight of the active subnet: the one slicing routine for forward and freeze."""
        out = in_channels if self.depthwise else self.active_out
        weight = self.weight[:out] if self.depthwise else self.weight[:out, :in_channels]
        kernel = self.kernel_sizes[-1]
        for small in reversed(self.kernel_sizes[:-1]):
            if self.active_kernel > small:
                break
            centre = centre_crop(weight, small)
            transform = self.transforms[f"{kernel}to{small}"]
            weight = (centre.reshape(-1, small * small) @ transform).reshape(centre.shape)
            kernel = small
        return weight

    def active_bias(self, out_channels: int) -> Tensor | None:
        return None if self.bias is None else self.bias[:out_channels]

    def forward(self, x: Tensor, bn: nn.Module | None = None) -> Tensor:
        """The active conv (then ``bn`` if given); ``integer_conv2d`` in evaluation with quantization on."""
        weight = self.active_weight(x.shape[1])
        groups = x.shape[1] if self.depthwise else 1
        bias = self.active_bias(weight.shape[0])
        if _integer_mode(self):
            return integer_conv2d(x, weight, bias, self.stride, groups, self.act_quant, self.weight_quant,
                                  None if bn is None else bn_params(bn, weight.shape[0]))
        y = qconv2d(x, weight, bias, self.stride, groups, self.act_quant, self.weight_quant)
        return y if bn is None else bn(y)

    def freeze(self, in_channels: int) -> QConv2d:
        """The active subnet's conv as a static ``QConv2d`` holding copies of the active tensors."""
        with torch.no_grad():
            weight = self.active_weight(in_channels).detach().clone()
            bias = self.active_bias(weight.shape[0])
            bias = None if bias is None else bias.detach().clone()
        groups = in_channels if self.depthwise else 1
        return QConv2d(weight, bias, self.stride, groups, self.act_quant.frozen(),
                       self.weight_quant.frozen(weight.shape[0]), self.label)

    def extra_repr(self) -> str:
        kind = "depthwise" if self.depthwise else "dense"
        return (f"{self.label}: {kind}, out<={self.max_out}, kernels={list(self.kernel_sizes)}, "
                f"stride={self.stride}")


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first ``C`` channels of its parameters, ``C`` taken from the input."""

    def active_params(self, channels: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Running mean, running var, weight, bias of the active channels (views of the full ones)."""
        return (self.running_mean[:channels], self.running_var[:channels],
                self.weight[:channels], self.bias[:channels])

    def forward(self, x: Tensor) -> Tensor:
        mean, var, weight, bias = self.active_params(x.shape[1])
        if self.training and self.momentum is not None:
            self.num_batches_tracked.add_(1)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.momentum is None:  # cumulative average (BN recalibration)
            self.num_batches_tracked.add_(1)
            momentum = 1.0 / float(self.num_batches_tracked)
        return F.batch_norm(x, mean, var, weight, bias, self.training, momentum, self.eps)

    def freeze(self, channels: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(channels, eps=self.eps, momentum=self.momentum)
        with torch.no_grad():
            for dst, src in zip((bn.running_mean, bn.running_var, bn.weight, bn.bias),
                                self.active_params(channels)):
                dst.copy_(src)
            bn.num_batches_tracked.copy_(self.num_batches_tracked)
        return bn
