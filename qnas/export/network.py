"""The network of METHOD.md §2 written as a fully-integer QLinear graph, block by block.

``WeightSource`` supplies each conv's int8 codes, per-channel scale, bias and output grid by
layer label, so the same emitters serve the latency table (random codes: latency depends on
shapes only) and the ``ort`` export (a trained network's codes and scales).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from qnas.cost.latency import Block
from qnas.export.qlinear import Grid, QLinearGraph, QTensor
from qnas.space import SpaceSpec, conv_out_size

__all__ = ["ConvParams", "WeightSource", "RandomWeights", "emit_separable", "emit_mbconv", "emit_stem",
           "emit_head", "block_graph", "network_graph"]


class ConvParams(Protocol):
    codes: np.ndarray
    scale: np.ndarray
    bias: np.ndarray | None
    out: Grid


class WeightSource(Protocol):
    """What a conv needs: ``conv(label, cout, cin_per_group, k, signed_out, has_bias)``."""

    def conv(self, label: str, cout: int, cin_per_group: int, k: int, signed_out: bool,
             has_bias: bool = False) -> ConvParams: ...

    def add_grid(self, label: str) -> Grid: ...

    def concat_grid(self) -> Grid: ...


class _Params:
    def __init__(self, codes: np.ndarray, scale: np.ndarray, bias: np.ndarray | None, out: Grid) -> None:
        self.codes, self.scale, self.bias, self.out = codes, scale, bias, out


class RandomWeights:
    """Random int8 codes and plausible 8-bit grids: enough to time an integer engine."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def conv(self, label: str, cout: int, cin_per_group: int, k: int, signed_out: bool,
             has_bias: bool = False) -> ConvParams:
        codes = self.rng.integers(-127, 128, size=(cout, cin_per_group, k, k)).astype(np.int8)
        scale = np.full(cout, 1.0 / (127 * np.sqrt(cin_per_group * k * k)), np.float32)
        bias = self.rng.normal(0, 0.1, cout).astype(np.float32) if has_bias else None
        out = Grid.symmetric(0.05) if signed_out else Grid.unsigned(0.03)
        return _Params(codes, scale, bias, out)

    def add_grid(self, label: str) -> Grid:
        return Grid.symmetric(0.05)

    def concat_grid(self) -> Grid:
        return Grid.symmetric(0.05)


def _conv(g: QLinearGraph, x: QTensor, src: WeightSource, label: str, cout: int, k: int, stride: int,
          depthwise: bool, signed_out: bool, has_bias: bool = False) -> QTensor:
    cin = x.shape[1]
    p = src.conv(label, cin if depthwise else cout, 1 if depthwise else cin, k, signed_out, has_bias)
    return g.conv(x, p.codes, p.scale, p.bias, stride, cin if depthwise else 1, p.out)


def emit_separable(g: QLinearGraph, x: QTensor, src: WeightSource, label: str, cout: int, stride: int) -> QTensor:
    h = _conv(g, x, src, f"{label}.dw", 0, 3, stride, True, False)
    return _conv(g, h, src, f"{label}.pw", cout, 1, 1, False, False)


def emit_mbconv(g: QLinearGraph, x: QTensor, src: WeightSource, label: str, cout: int, stride: int,
                kernel: int, expand: int) -> QTensor:
    cin = x.shape[1]
    h = _conv(g, x, src, f"{label}.pw1", cin * expand, 1, 1, False, False)
    h = _conv(g, h, src, f"{label}.dw", 0, kernel, stride, True, False)
    h = _conv(g, h, src, f"{label}.pw2", cout, 1, 1, False, True)
    if stride == 1 and cin == cout:
        h = g.add(h, x, src.add_grid(label))
    return h


def emit_stem(g: QLinearGraph, x: QTensor, src: WeightSource, spec: SpaceSpec) -> QTensor:
    c1, c2, c3 = spec.stem_channels
    t1, t2, t3 = spec.stem_strides
    h = _conv(g, x, src, "stem.conv", c1, 3, t1, False, False)
    h = emit_separable(g, h, src, "stem.ds1", c2, t2)
    return emit_separable(g, h, src, "stem.ds2", c3, t3)


def emit_head(g: QLinearGraph, stage_outs: list[QTensor], highres: QTensor, src: WeightSource, spec: SpaceSpec,
              out_size: tuple[int, int]) -> QTensor:
    size = highres.shape[2:]
    fused = g.concat([g.resize_nearest(o, size) for o in stage_outs] + [highres], src.concat_grid())
    h1, h2 = spec.head_channels
    h = emit_separable(g, fused, src, "head.ds1", h1, 1)
    h = emit_separable(g, h, src, "head.ds2", h2, 1)
    logits = _conv(g, h, src, "classifier", spec.num_classes, 1, 1, False, True, has_bias=True)
    return g.resize_nearest(logits, out_size)


def network_graph(spec: SpaceSpec, genome: Mapping[str, int], height: int, width: int,
                  src: WeightSource, input_grid: Grid | None = None) -> QLinearGraph:
    """The whole genome's network: float image in, float logits (at input size) out."""
    g = QLinearGraph("qnas_network")
    x = g.input("image", (1, spec.in_channels, height, width), input_grid or Grid.unsigned(1 / 255))
    stem = emit_stem(g, x, src, spec)
    h, outs = stem, []
    for s, (cout, stride) in enumerate(zip(spec.stage_channels, spec.stage_strides), start=1):
        for b in range(genome[f"s{s}.depth"]):
            h = emit_mbconv(g, h, src, f"s{s}.b{b}", cout, stride if b == 0 else 1,
                            genome[f"s{s}.b{b}.k"], genome[f"s{s}.b{b}.e"])
        outs.append(h)
    hr = emit_separable(g, stem, src, "hr", spec.highres_channels, 1)
    g.output(emit_head(g, outs, hr, src, spec, (height, width)), "logits")
    return g


def _stage_output_shapes(spec: SpaceSpec, stem_hw: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    shapes, (h, w) = [], stem_hw
    for cout, stride in zip(spec.stage_channels, spec.stage_strides):
        h, w = conv_out_size(h, 3, stride), conv_out_size(w, 3, stride)
        shapes.append((1, cout, h, w))
    return shapes


def block_graph(spec: SpaceSpec, block: Block, deploy_hw: tuple[int, int], src: WeightSource) -> QLinearGraph:
    """One block alone, with integer inputs and outputs (the stem takes the float image)."""
    g = QLinearGraph(f"block {block.key}")
    h, w = block.in_hw
    if block.kind == "stem":
        x = g.input("image", (1, block.cin, h, w), Grid.unsigned(1 / 255))
        g.integer_output(emit_stem(g, x, src, spec), "out")
    elif block.kind == "mbconv":
        x = g.quantized_input("x", (1, block.cin, h, w), Grid.symmetric(0.05))
        g.integer_output(emit_mbconv(g, x, src, "block", block.cout, block.stride, block.kernel, block.expand),
                         "out")
    elif block.kind == "highres":
        x = g.quantized_input("x", (1, block.cin, h, w), Grid.unsigned(0.03))
        g.integer_output(emit_separable(g, x, src, "hr", block.cout, 1), "out")
    elif block.kind == "head":
        outs = [g.quantized_input(f"stage{i}", shape, Grid.symmetric(0.05))
                for i, shape in enumerate(_stage_output_shapes(spec, (h, w)), start=1)]
        hr = g.quantized_input("highres", (1, spec.highres_channels, h, w), Grid.unsigned(0.03))
        g.output(emit_head(g, outs, hr, src, spec, deploy_hw), "logits")
    else:
        raise ValueError(f"unknown block kind {block.kind!r}")
    return g
