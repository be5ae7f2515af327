"""Blocks built from layer factories, so one definition serves the supernet and frozen subnets.

A frozen subnet is the same block objects with their elastic layers replaced by static ones
(see ``freeze``); the blocks themselves hold no elastic state except ``ElasticStage.active_depth``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

__all__ = ["ConvFactory", "NormFactory", "OutputQuantFactory", "ConvBNAct", "SeparableConv", "MBConv", "ElasticStage"]

# conv_layer(in_channels, out_channels, kernel_sizes, stride, depthwise, signed_input, label)
ConvFactory = Callable[[int, int, Sequence[int], int, bool, bool, str], nn.Module]
NormFactory = Callable[[int], nn.Module]
# output_quant(signed): the 8-bit quantizer of a tensor that an integer engine materializes as a
# number (a residual operand, a branch point), so the exported graph can compute it exactly.
OutputQuantFactory = Callable[[bool], nn.Module]


class ConvBNAct(nn.Module):
    """Quantized conv, BatchNorm, optional ReLU, optional output quantizer."""

    def __init__(self, cin: int, cout: int, kernel_sizes: Sequence[int], stride: int, depthwise: bool,
                 *, relu: bool, signed_input: bool, label: str, conv_layer: ConvFactory,
                 norm_layer: NormFactory, output_quant: OutputQuantFactory | None = None) -> None:
        super().__init__()
        self.conv = conv_layer(cin, cout, kernel_sizes, stride, depthwise, signed_input, label)
        self.bn = norm_layer(cout)
        self.act = nn.ReLU() if relu else nn.Identity()
        self.out_quant = output_quant(not relu) if output_quant is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x, bn=self.bn)  # in evaluation the integer engine: BN folded, int32 bias
        return self.out_quant(self.act(y))


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 (+BN+ReLU) then pointwise 1x1 (+BN+ReLU), labelled ``{label}.dw`` / ``{label}.pw``."""

    def __init__(self, cin: int, cout: int, stride: int, *, signed_input: bool, label: str,
                 conv_layer: ConvFactory, norm_layer: NormFactory,
                 output_quant: OutputQuantFactory | None = None) -> None:
        layers = dict(conv_layer=conv_layer, norm_layer=norm_layer)
        super().__init__()
        self.dw = ConvBNAct(cin, cin, (3,), stride, True, relu=True, signed_input=signed_input,
                            label=f"{label}.dw", **layers)
        self.pw = ConvBNAct(cin, cout, (1,), 1, False, relu=True, signed_input=False,
                            label=f"{label}.pw", output_quant=output_quant, **layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: expand 1x1, depthwise kxk, linear project 1x1, residual if shapes allow.

    With ``output_quant`` the projection's output is quantized (8 bits) before the residual add.
    """

    def __init__(self, cin: int, cout: int, stride: int, kernel_sizes: Sequence[int], max_expand: int,
                 *, signed_input: bool, label: str, conv_layer: ConvFactory, norm_layer: NormFactory,
                 output_quant: OutputQuantFactory | None = None) -> None:
        super().__init__()
        mid = cin * max_expand
        layers = dict(conv_layer=conv_layer, norm_layer=norm_layer)
        self.pw1 = ConvBNAct(cin, mid, (1,), 1, False, relu=True, signed_input=signed_input,
                             label=f"{label}.pw1", **layers)
        self.dw = ConvBNAct(mid, mid, kernel_sizes, stride, True, relu=True, signed_input=False,
                            label=f"{label}.dw", **layers)
        self.pw2 = ConvBNAct(mid, cout, (1,), 1, False, relu=False, signed_input=False,
                             label=f"{label}.pw2", output_quant=output_quant, **layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        out = self.pw2(self.dw(self.pw1(x)))
        return out + x if self.residual else out


class ElasticStage(nn.Module):
    """A stage of blocks that runs only its first ``active_depth`` blocks (METHOD.md §4)."""

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.active_depth = len(self.blocks)

    def active_blocks(self) -> list[nn.Module]:
        """The blocks a forward runs: the single depth routine for forward and freeze."""
        return list(self.blocks[: self.active_depth])

    def forward(self, x: Tensor) -> Tensor:
        for block in self.active_blocks():
            x = block(x)
        return x

    def freeze(self) -> nn.Sequential:
        return nn.Sequential(*self.active_blocks())
