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

from qnas.quant.grids import BIAS_CODE_LIMIT, FLOAT32_EXACT_LIMIT, accumulator_bound, float32_exact
from qnas.quant.modules import PACTActivationQuant, PerChannelWeightQuant
from qnas.space.plan import Conv

__all__ = ["qconv2d", "integer_conv2d", "fold_batchnorm", "bn_params", "output_rows", "QConv2d", "ElasticQConv2d",
           "ElasticBatchNorm2d", "centre_crop", "BIAS_CODE_LIMIT", "FLOAT32_EXACT_LIMIT"]


def output_rows(op: Conv) -> slice | list[int]:
    """The output channels of the largest network's conv that ``op`` computes: its first ``cout``, or the
    channels of a depthwise conv's channel index."""
    if op.depthwise and op.channel_index:
        return list(op.channel_index)
    return slice(0, op.cout)


def _rows(rows: int | slice | list[int]) -> slice | list[int]:
    return slice(0, rows) if isinstance(rows, int) else rows


def _row_list(rows: slice | list[int]) -> list[int] | None:
    """``rows`` for a per-channel quantizer: None for a prefix (its first channels)."""
    return None if isinstance(rows, slice) else rows


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int, dilation: int,
           groups: int) -> Tensor:
    """``F.conv2d``; a grouped (depthwise) conv on a CPU runs in channels-last memory and returns N, C, H, W.

    oneDNN's depthwise kernels on N, C, H, W tensors are erratic and slow on CPUs: a 5x5 depthwise conv
    of 16 x 192 x 16 x 16 took 3.5 ms forward and 18.7 ms backward, against 0.36 and 3.75 ms in
    channels-last memory (benchmarks/results/depthwise_layout.md). Integer-code sums stay exact."""
    if groups == 1 or x.device.type != "cpu":
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    y = F.conv2d(_ChannelsLast.apply(x), weight.contiguous(memory_format=torch.channels_last), bias, stride, padding,
                 dilation, groups)
    return y.contiguous()


class _ChannelsLast(torch.autograd.Function):
    """``x`` in channels-last memory, whose gradient goes back in N, C, H, W memory (elementwise backward
    ops that mix the two layouts, such as ReLU's, are ten times slower)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        return x.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad.contiguous()


def qconv2d(x: Tensor, weight: Tensor, bias: Tensor | None, op: Conv, act_quant: nn.Module,
            weight_quant: nn.Module, rows: list[int] | None = None) -> Tensor:
    """Conv of the quantized input with the quantized weight (channels ``rows`` of its quantizer), with the
    plan's geometry."""
    return conv2d(act_quant(x), weight_quant(weight, rows), bias, op.stride, op.padding, op.dilation, op.groups)


def bn_params(bn: nn.Module, rows: int | slice | list[int]) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:
    """Running mean, running var, gamma, beta (of channels ``rows``: a count is the first ones) and eps of a
    BatchNorm (a static one: all of its channels)."""
    if isinstance(bn, ElasticBatchNorm2d):
        return (*bn.active_params(rows), bn.eps)
    return bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps


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


def integer_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, op: Conv,
                   act_quant: PACTActivationQuant, weight_quant: PerChannelWeightQuant,
                   bn: tuple[Tensor, Tensor, Tensor, Tensor, float] | None = None,
                   rows: list[int] | None = None) -> Tensor:
    """An evaluation-mode quantized conv computed as an integer engine computes it.

    Input codes times weight codes are summed exactly (``_exact_sum_conv``), plus the int32
    bias when BatchNorm is folded in (``fold_batchnorm``), then rescaled once by
    ``s_in * s_w[c]``; without BatchNorm a float bias is added after the rescale. Every export
    profile writes these same operations, so its output can equal this one bit for bit. ``rows``: the
    weight quantizer's channels the weight has (default: its first ones).
    """
    x_codes, input_scale = act_quant.codes(x)
    codes, scale = weight_quant.codes(weight, rows)
    # the largest |sum| the quantizers' ranges allow (the bound every exporter checks too)
    bound = accumulator_bound(codes[0].numel(), act_quant.grid_bits, act_quant.signed, weight_quant.grid_bits,
                              with_bias=bn is not None)
    geometry = (op.stride, op.padding, op.groups)
    if bn is None:
        step = (input_scale * scale.reshape(-1)).reshape(1, -1, 1, 1)
        y = _exact_sum_conv(x_codes, codes, None, *geometry, bound, dilation=op.dilation) * step
        return y if bias is None else y + bias.reshape(1, -1, 1, 1)
    codes, folded, bias_codes = fold_batchnorm(codes, scale, bias, input_scale, bn)
    step = (input_scale * folded).reshape(1, -1, 1, 1)
    return _exact_sum_conv(x_codes, codes, bias_codes, *geometry, bound, dilation=op.dilation) * step


def _exact_sum_conv(x_codes: Tensor, codes: Tensor, bias_codes: Tensor | None, stride: int, padding: int,
                    groups: int, bound: float, dilation: int = 1) -> Tensor:
    """The integer conv sum (plus integer bias), as an int32 accumulator holds it, in float32.

    ``bound`` caps every |partial sum|. Below 2^24 float32 sums are exact; otherwise the sum is
    taken in float64 (exact) and rounded once to float32, as an integer engine converts its
    int32 accumulator to float before rescaling.
    """
    if float32_exact(bound):
        return conv2d(x_codes, codes, bias_codes, stride, padding, dilation, groups)
    wide = None if bias_codes is None else bias_codes.double()
    return conv2d(x_codes.double(), codes.double(), wide, stride, padding, dilation, groups).float()


def _integer_mode(conv: nn.Module) -> bool:
    """Whether a conv evaluates as the integer engine: evaluation mode with both quantizers on."""
    return not conv.training and conv.act_quant.enabled and conv.weight_quant.enabled


def centre_crop(weight: Tensor, kernel: int) -> Tensor:
    """The central ``kernel`` x ``kernel`` window of a square conv kernel."""
    start = (weight.shape[-1] - kernel) // 2
    return weight[..., start:start + kernel, start:start + kernel]


class QConv2d(nn.Module):
    """A static fake-quantized conv: what a frozen subnet is made of. Its geometry (stride, padding,
    dilation, groups) is the plan's, given to ``forward``."""

    def __init__(self, weight: Tensor, bias: Tensor | None, act_quant: PACTActivationQuant,
                 weight_quant: PerChannelWeightQuant, label: str) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)
        self.act_quant = act_quant
        self.weight_quant = weight_quant
        self.label = label

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    @property
    def kernel_size(self) -> int:
        return self.weight.shape[-1]

    def forward(self, x: Tensor, op: Conv, bn: nn.Module | None = None) -> Tensor:
        """The conv. In evaluation with quantization on it is ``integer_conv2d`` (with ``bn``
        folded in when given), as the integer export runs it; otherwise fake-quantized float."""
        if _integer_mode(self):
            return integer_conv2d(x, self.weight, self.bias, op, self.act_quant, self.weight_quant,
                                  None if bn is None else bn_params(bn, self.out_channels))
        y = qconv2d(x, self.weight, self.bias, op, self.act_quant, self.weight_quant)
        return y if bn is None else bn(y)

    def extra_repr(self) -> str:
        return f"{self.label}: weight {tuple(self.weight.shape)}"


class ElasticQConv2d(nn.Module):
    """A fake-quantized conv whose kernel size, width and bit widths are chosen at run time.

    Smaller kernels are the centre of the next larger one passed through a learned
    kernel-transform matrix (METHOD.md §4, after Once-for-All); fewer channels are the first
    channels. Which ones a forward uses is the plan's: ``forward(x, op)`` slices by ``op``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_sizes: Sequence[int] = (1,),
                 depthwise: bool = False, wbits: Sequence[int] = (8,), abits: Sequence[int] = (8,),
                 signed_input: bool = False, bias: bool = False, act_init_clip: float = 4.0,
                 learn_weight_clip: bool = False, label: str = "") -> None:
        super().__init__()
        if depthwise and in_channels != out_channels:
            raise ValueError("a depthwise conv has as many outputs as inputs")
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        kmax = self.kernel_sizes[-1]
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

    def set_bits(self, wbits: int, abits: int) -> None:
        self.weight_quant.set_bits(wbits)
        self.act_quant.set_bits(abits)

    def active_weight(self, op: Conv) -> Tensor:
        """The float weight ``op`` uses: the one slicing routine for forward and freeze. Its rows are
        ``output_rows(op)``; a dense conv's columns the first ``cin`` or ``op.channel_index``."""
        inputs = self.weight.shape[1] if not self.depthwise else self.max_out
        if (op.cout > self.max_out or op.kernel not in self.kernel_sizes
                or any(not 0 <= c < inputs for c in op.channel_index)):
            raise ValueError(f"{self.label}: the plan asks for {op.cout} channels (index {list(op.channel_index)}) "
                             f"and kernel {op.kernel}; this conv has at most {self.max_out} outputs, {inputs} "
                             f"inputs and kernels {list(self.kernel_sizes)}")
        weight = self.weight[output_rows(op)]
        if not self.depthwise:
            weight = weight[:, list(op.channel_index)] if op.channel_index else weight[:, :op.cin // op.groups]
        kernel = self.kernel_sizes[-1]
        for small in reversed(self.kernel_sizes[:-1]):
            if op.kernel > small:
                break
            centre = centre_crop(weight, small)
            transform = self.transforms[f"{kernel}to{small}"]
            weight = (centre.reshape(-1, small * small) @ transform).reshape(centre.shape)
            kernel = small
        return weight

    def active_bias(self, rows: int | slice | list[int]) -> Tensor | None:
        """The bias of output channels ``rows`` (a count: the first ones)."""
        return None if self.bias is None else self.bias[_rows(rows)]

    def forward(self, x: Tensor, op: Conv, bn: nn.Module | None = None) -> Tensor:
        """The conv ``op`` (then ``bn`` if given); ``integer_conv2d`` in evaluation with quantization on."""
        rows = output_rows(op)
        weight = self.active_weight(op)
        bias = self.active_bias(rows)
        if _integer_mode(self):
            return integer_conv2d(x, weight, bias, op, self.act_quant, self.weight_quant,
                                  None if bn is None else bn_params(bn, rows), _row_list(rows))
        y = qconv2d(x, weight, bias, op, self.act_quant, self.weight_quant, _row_list(rows))
        return y if bn is None else bn(y, rows)

    def freeze(self, op: Conv) -> QConv2d:
        """The conv ``op`` as a static ``QConv2d`` holding copies of the active tensors."""
        rows = output_rows(op)
        with torch.no_grad():
            weight = self.active_weight(op).detach().clone()
            bias = self.active_bias(rows)
            bias = None if bias is None else bias.detach().clone()
        quant = self.weight_quant.frozen(op.cout if isinstance(rows, slice) else rows)
        return QConv2d(weight, bias, self.act_quant.frozen(), quant, self.label)

    def extra_repr(self) -> str:
        kind = "depthwise" if self.depthwise else "dense"
        return f"{self.label}: {kind}, out<={self.max_out}, kernels={list(self.kernel_sizes)}"


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over some of its channels: the first ``C`` (``C`` taken from the input) or the ``rows`` given."""

    def active_params(self, rows: int | slice | list[int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Running mean, running var, weight, bias of channels ``rows`` (a count: the first ones; then views
        of the full tensors, else copies)."""
        rows = _rows(rows)
        return self.running_mean[rows], self.running_var[rows], self.weight[rows], self.bias[rows]

    def forward(self, x: Tensor, rows: slice | list[int] | None = None) -> Tensor:
        rows = slice(0, x.shape[1]) if rows is None else rows
        mean, var, weight, bias = self.active_params(rows)
        if self.training and self.momentum is not None:
            self.num_batches_tracked.add_(1)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.momentum is None:  # cumulative average (BN recalibration)
            self.num_batches_tracked.add_(1)
            momentum = 1.0 / float(self.num_batches_tracked)
        y = F.batch_norm(x, mean, var, weight, bias, self.training, momentum, self.eps)
        if self.training and not isinstance(rows, slice):  # the statistics were updated in copies
            with torch.no_grad():
                self.running_mean[rows] = mean
                self.running_var[rows] = var
        return y

    def freeze(self, rows: int | slice | list[int]) -> nn.BatchNorm2d:
        """A static BatchNorm of channels ``rows`` (a count: the first ones)."""
        params = self.active_params(rows)
        bn = nn.BatchNorm2d(params[0].numel(), eps=self.eps, momentum=self.momentum)
        with torch.no_grad():
            for dst, src in zip((bn.running_mean, bn.running_var, bn.weight, bn.bias), params):
                dst.copy_(src)
            bn.num_batches_tracked.copy_(self.num_batches_tracked)
        return bn
