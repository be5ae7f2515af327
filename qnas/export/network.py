"""The network of METHOD.md §2 as an integer-kernel ONNX graph, block by block.

A ``LayerSource`` supplies each conv's int8 codes, per-channel scale, bias and input grid by
label, so the same emitters serve the latency table (random codes: latency depends on shapes
only) and the ``ort`` export (a trained network's codes, folded scales and PACT grids).

Where each conv writes its result: straight onto the next conv's input grid when that conv is
its only reader; onto its own 8-bit output quantizer (then dequantized) when it feeds a residual
add or several readers; as exact float logits for the classifier. See ``qnas.export.qlinear``.
"""

from __future__ import annotations

from itertools import groupby

from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol

import numpy as np

from qnas.cost.latency import Block
from qnas.export.graph import FTensor, GraphWriter, Grid, LayerParams, QTensor
from qnas.export.qlinear import QLinearGraph
from qnas.space import SpaceSpec, fusion_channels, mbconv_blocks, stage_resolutions

__all__ = ["LayerParams", "LayerSource", "RandomLayers", "emit_stem", "emit_mbconv", "emit_highres", "emit_head",
           "block_graph", "network_graph"]


class LayerSource(Protocol):
    def layer(self, label: str, cout: int, cin_per_group: int, k: int) -> LayerParams: ...


class RandomLayers:
    """Random int8 codes on 8-bit grids: enough to time an integer engine."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def layer(self, label: str, cout: int, cin_per_group: int, k: int) -> LayerParams:
        codes = self.rng.integers(-127, 128, size=(cout, cin_per_group, k, k)).astype(np.int8)
        scale = np.full(cout, 1.0 / (127 * np.sqrt(cin_per_group * k * k)), np.float32)
        bias = self.rng.normal(0, 0.1, cout).astype(np.float32)
        out = None
        if label.endswith(".pw2"):
            out = Grid.symmetric(0.05)
        elif label == "stem.ds2.pw":
            out = Grid.unsigned(0.03)
        return LayerParams(codes, scale, bias, Grid.unsigned(0.03), out, label=label)


class _Emitter:
    """Emits convs by label, looking up each reader's grid so producers can write onto it."""

    def __init__(self, g: GraphWriter, src: LayerSource, spec: SpaceSpec) -> None:
        self.g, self.src, self.spec = g, src, spec
        self._params: dict[str, LayerParams] = {}

    def params(self, label: str, cout: int, cin_per_group: int, k: int) -> LayerParams:
        if label not in self._params:
            self._params[label] = self.src.layer(label, cout, cin_per_group, k)
        return self._params[label]

    def read(self, x: QTensor | FTensor, grid: Grid) -> QTensor:
        """``x`` on ``grid``: float tensors are quantized; codes must already be on it."""
        if isinstance(x, FTensor):
            return self.g.quantize(x, grid)
        if (x.grid.scale, x.grid.zero_point) != (grid.scale, grid.zero_point):
            raise ValueError(f"codes on grid {x.grid} read on grid {grid}")
        return x

    def conv(self, x: QTensor | FTensor, label: str, cout: int, k: int, stride: int, depthwise: bool,
             relu: bool, to: tuple[str, int, int, int] | None) -> QTensor | FTensor:
        """Conv ``label``; ``to`` = (reader label, reader cout, reader cin/group, reader k) writes onto the
        reader's grid (QLinearConv), ``None`` gives a float result (ConvInteger)."""
        cin = x.shape[1]
        cout = cin if depthwise else cout
        p = self.params(label, cout, 1 if depthwise else cin, k)
        q = self.read(x, p.in_grid)
        groups = cin if depthwise else 1
        if to is None:
            if p.out_grid is not None:  # onto the model's own output quantizer, then a real number
                return self.g.dequantize(self.g.conv(q, p, stride, groups, p.out_grid))
            return self.g.conv_to_float(q, p, stride, groups, relu)
        out = self.params(*to).in_grid
        if relu and out.zero_point > out.lo:  # a signed reader after a ReLU: drop negative codes
            out = replace(out, lo=out.zero_point)
        return self.g.conv(q, p, stride, groups, out)


def emit_stem(e: _Emitter, image: FTensor) -> FTensor:
    c1, c2, c3 = e.spec.stem_channels
    t1, t2, t3 = e.spec.stem_strides
    h = e.conv(image, "stem.conv", c1, 3, t1, False, True, ("stem.ds1.dw", c1, 1, 3))
    h = e.conv(h, "stem.ds1.dw", c1, 3, t2, True, True, ("stem.ds1.pw", c2, c1, 1))
    h = e.conv(h, "stem.ds1.pw", c2, 1, 1, False, True, ("stem.ds2.dw", c2, 1, 3))
    h = e.conv(h, "stem.ds2.dw", c2, 3, t3, True, True, ("stem.ds2.pw", c3, c2, 1))
    return e.conv(h, "stem.ds2.pw", c3, 1, 1, False, True, None)


def emit_mbconv(e: _Emitter, x: FTensor, label: str, cout: int, stride: int, kernel: int, expand: int) -> FTensor:
    cin = x.shape[1]
    mid = cin * expand
    h = e.conv(x, f"{label}.pw1", mid, 1, 1, False, True, (f"{label}.dw", mid, 1, kernel))
    h = e.conv(h, f"{label}.dw", mid, kernel, stride, True, True, (f"{label}.pw2", cout, mid, 1))
    out = e.conv(h, f"{label}.pw2", cout, 1, 1, False, False, None)
    if stride == 1 and cin == cout:
        out = e.g.add(out, x)
    return out


def emit_highres(e: _Emitter, stem: FTensor) -> QTensor:
    """The high-resolution branch, written onto the head's input grid (its only reader)."""
    c3, hr = e.spec.stem_channels[-1], e.spec.highres_channels
    h = e.conv(stem, "hr.dw", c3, 3, 1, True, True, ("hr.pw", hr, c3, 1))
    return e.conv(h, "hr.pw", hr, 1, 1, False, True, ("head.ds1.dw", fusion_channels(e.spec), 1, 3))


def emit_head(e: _Emitter, stage_outs: list[FTensor], highres: QTensor, out_size: tuple[int, int]) -> FTensor:
    """Fusion (quantize each branch onto the head's grid, resize, concat: exact), head, classifier."""
    spec = e.spec
    fused_ch = fusion_channels(spec)
    grid = e.params("head.ds1.dw", fused_ch, 1, 3).in_grid
    size = highres.shape[2:]
    branches = [e.g.resize_nearest(e.read(o, grid), size) for o in stage_outs]
    fused = e.g.concat(branches + [highres])
    h1, h2 = spec.head_channels
    h = e.conv(fused, "head.ds1.dw", fused_ch, 3, 1, True, True, ("head.ds1.pw", h1, fused_ch, 1))
    h = e.conv(h, "head.ds1.pw", h1, 1, 1, False, True, ("head.ds2.dw", h1, 1, 3))
    h = e.conv(h, "head.ds2.dw", h1, 3, 1, True, True, ("head.ds2.pw", h2, h1, 1))
    h = e.conv(h, "head.ds2.pw", h2, 1, 1, False, True, ("classifier", spec.num_classes, h2, 1))
    logits = e.conv(h, "classifier", spec.num_classes, 1, 1, False, False, None)
    return e.g.resize_nearest(logits, out_size)


def network_graph(spec: SpaceSpec, genome: Mapping[str, int], height: int, width: int,
                  src: LayerSource, writer: type[GraphWriter] = QLinearGraph) -> GraphWriter:
    """The whole genome's network: float image in, float logits (at input size) out, written by ``writer``."""
    g = writer("qnas_network")
    e = _Emitter(g, src, spec)
    stem = emit_stem(e, g.input("image", (1, spec.in_channels, height, width)))
    h, outs = stem, []
    for _, stage in groupby(mbconv_blocks(spec, genome), key=lambda b: b.stage):  # every stage has depth >= 1
        for block in stage:
            h = emit_mbconv(e, h, block.label, block.cout, block.stride, block.kernel, block.expand)
        outs.append(h)
    g.output(emit_head(e, outs, emit_highres(e, stem), (height, width)), "logits")
    return g


def block_graph(spec: SpaceSpec, block: Block, deploy_hw: tuple[int, int], src: LayerSource) -> QLinearGraph:
    """One block alone, as the whole network runs it (float where the network has float tensors)."""
    g = QLinearGraph(f"block {block.key}")
    e = _Emitter(g, src, spec)
    h, w = block.in_hw
    if block.kind == "stem":
        g.output(emit_stem(e, g.input("image", (1, block.cin, h, w))), "out")
    elif block.kind == "mbconv":
        x = g.input("x", (1, block.cin, h, w))
        g.output(emit_mbconv(e, x, "block", block.cout, block.stride, block.kernel, block.expand), "out")
    elif block.kind == "highres":
        g.output(emit_highres(e, g.input("x", (1, block.cin, h, w))), "out")
    elif block.kind == "head":
        stem_hw, stage_hw = stage_resolutions(spec, *deploy_hw)
        if stem_hw != (h, w):
            raise ValueError(f"a head block reading {h}x{w} is not part of a {deploy_hw[0]}x{deploy_hw[1]} network")
        outs = [g.input(f"stage{i}", (1, cout, *hw))
                for i, (cout, hw) in enumerate(zip(spec.stage_channels, stage_hw), start=1)]
        grid = e.params("head.ds1.dw", fusion_channels(spec), 1, 3).in_grid
        hr = g.quantized_input("highres", (1, spec.highres_channels, h, w), grid)
        g.output(emit_head(e, outs, hr, deploy_hw), "logits")
    else:
        raise ValueError(f"unknown block kind {block.kind!r}")
    return g
