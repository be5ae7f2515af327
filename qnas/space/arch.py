"""The concrete conv layers a genome describes at a given input resolution (no torch).

This is the single description of the network's shape that the cost model uses; the
supernet is tested against it (MACs and BitOps counted by hooks on the frozen model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from qnas.space.spec import SpaceSpec

__all__ = ["ConvLayer", "conv_layers", "conv_out_size", "fusion_channels"]


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

    cin = c3
    for s, (cout, stride) in enumerate(zip(spec.stage_channels, spec.stage_strides), start=1):
        for b in range(genome[f"s{s}.depth"]):
            k, e = genome[f"s{s}.b{b}.k"], genome[f"s{s}.b{b}.e"]
            mid = cin * e
            add(f"s{s}.b{b}.pw1", cin, mid, 1, 1, 1)
            add(f"s{s}.b{b}.dw", mid, mid, k, stride if b == 0 else 1, mid)
            add(f"s{s}.b{b}.pw2", mid, cout, 1, 1, 1)
            cin = cout

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
