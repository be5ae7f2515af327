"""The concrete conv layers a genome describes at a given input resolution (no torch).

This is the single description of the network's shape that the cost model uses; the
supernet is tested against it (MACs and BitOps counted by hooks on the frozen model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qnas.space.spec import SpaceSpec

__all__ = ["ConvLayer", "MBConvBlock", "conv_layers", "conv_out_size", "fusion_channels", "mbconv_block",
           "mbconv_blocks", "stage_resolutions"]


def conv_out_size(size: int, kernel: int, stride: int) -> int:
    """Output length of a conv with 'same' padding ``kernel // 2``."""
    pad = kernel // 2
    return (size + 2 * pad - kernel) // stride + 1


@dataclass(frozen=True)
class ConvLayer:
    """One conv of a concrete network: its shape, resolution and bit widths."""

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    groups: int
    in_hw: tuple[int, int]
    wbits: int
    abits: int
    searchable: bool
    bias: bool = False
    batchnorm: bool = True

    @property
    def out_hw(self) -> tuple[int, int]:
        return (
            conv_out_size(self.in_hw[0], self.kernel, self.stride),
            conv_out_size(self.in_hw[1], self.kernel, self.stride),
        )

    @property
    def macs(self) -> int:
        h, w = self.out_hw
        return h * w * self.out_channels * (self.in_channels // self.groups) * self.kernel**2

    @property
    def bitops(self) -> int:
        return self.macs * self.wbits * self.abits

    @property
    def params(self) -> int:
        weights = self.out_channels * (self.in_channels // self.groups) * self.kernel**2
        extra = self.out_channels if self.bias else 0
        extra += 2 * self.out_channels if self.batchnorm else 0
        return weights + extra


def fusion_channels(spec: SpaceSpec) -> int:
    """Channels entering the head: every stage output plus the high-resolution branch."""
    return sum(spec.stage_channels) + spec.highres_channels


@dataclass(frozen=True)
class MBConvBlock:
    """One inverted-residual block of a stage, as a genome chooses it."""

    stage: int  # 1-based
    index: int  # 0-based within the stage; block 0 carries the stage's stride
    cin: int
    cout: int
    stride: int
    kernel: int
    expand: int

    @property
    def label(self) -> str:
        return f"s{self.stage}.b{self.index}"


def mbconv_block(spec: SpaceSpec, stage: int, index: int, kernel: int, expand: int) -> MBConvBlock:
    """Block ``index`` of ``stage`` with the given kernel and expand ratio."""
    cout = spec.stage_channels[stage - 1]
    if index == 0:
        cin = spec.stem_channels[-1] if stage == 1 else spec.stage_channels[stage - 2]
        return MBConvBlock(stage, index, cin, cout, spec.stage_strides[stage - 1], kernel, expand)
    return MBConvBlock(stage, index, cout, cout, 1, kernel, expand)


def mbconv_blocks(spec: SpaceSpec, genome: Mapping[str, int]) -> list[MBConvBlock]:
    """The blocks the genome keeps (its depth per stage), in execution order."""
    return [mbconv_block(spec, s, b, genome[f"s{s}.b{b}.k"], genome[f"s{s}.b{b}.e"])
            for s in range(1, spec.num_stages + 1) for b in range(genome[f"s{s}.depth"])]


def stage_resolutions(spec: SpaceSpec, height: int, width: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """The stem's output resolution, then every stage's output resolution."""
    h, w = height, width
    for stride in spec.stem_strides:
        h, w = conv_out_size(h, 3, stride), conv_out_size(w, 3, stride)
    stem_hw, outs = (h, w), []
    for stride in spec.stage_strides:
        h, w = conv_out_size(h, 3, stride), conv_out_size(w, 3, stride)
        outs.append((h, w))
    return stem_hw, outs


def conv_layers(spec: SpaceSpec, genome: Mapping[str, int], height: int, width: int) -> list[ConvLayer]:
    """Every conv the genome's network runs on a ``height`` x ``width`` input, in execution order."""
    layers: list[ConvLayer] = []
    hw = (height, width)

    def add(name: str, cin: int, cout: int, k: int, stride: int, groups: int, **kw: object) -> None:
        nonlocal hw
        layer_kw = dict(wbits=genome.get(f"{name}.wbits"), abits=genome.get(f"{name}.abits"), searchable=True)
        layer_kw.update(kw)
        layer = ConvLayer(name, cin, cout, k, stride, groups, hw, **layer_kw)
        layers.append(layer)
        hw = layer.out_hw

    def separable(name: str, cin: int, cout: int, stride: int) -> None:
        add(f"{name}.dw", cin, cin, 3, stride, cin)
        add(f"{name}.pw", cin, cout, 1, 1, 1)

    c1, c2, c3 = spec.stem_channels
    t1, t2, t3 = spec.stem_strides
    add("stem.conv", spec.in_channels, c1, 3, t1, 1, abits=spec.input_bits)
    separable("stem.ds1", c1, c2, t2)
    separable("stem.ds2", c2, c3, t3)
    stem_hw = hw

    for block in mbconv_blocks(spec, genome):
        mid = block.cin * block.expand
        add(f"{block.label}.pw1", block.cin, mid, 1, 1, 1)
        add(f"{block.label}.dw", mid, mid, block.kernel, block.stride, mid)
        add(f"{block.label}.pw2", mid, block.cout, 1, 1, 1)

    hw = stem_hw
    separable("hr", c3, spec.highres_channels, 1)

    hw = stem_hw  # every branch is resized to the stem's resolution before fusion
    h1, h2 = spec.head_channels
    separable("head.ds1", fusion_channels(spec), h1, 1)
    separable("head.ds2", h1, h2, 1)
    add(
        "classifier", h2, spec.num_classes, 1, 1, 1,
        wbits=spec.classifier_wbits, abits=spec.classifier_abits, searchable=False, bias=True, batchnorm=False,
    )
    return layers
