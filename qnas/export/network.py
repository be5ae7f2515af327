"""The network plan as an ONNX graph: one emitter walks the plan, a writer decides the nodes.

A ``LayerSource`` supplies each conv's integer codes, per-channel scale, bias and grids, so the same
emitter serves the latency table (random codes: latency depends on shapes only) and every export
profile (a trained network's codes, folded scales and PACT grids).

Where each conv writes its result: onto its own 8-bit output quantizer (then dequantized to a real
number) when the plan gives it one; straight onto its reader's input grid when one conv reads it
(through nearest resizes and concatenations, which copy codes); as exact float logits otherwise.

Torch-free (numpy + onnx).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import numpy as np

from qnas.errors import QnasError
from qnas.export.graph import FTensor, GraphWriter, Grid, LayerParams, QTensor
from qnas.export.qlinear import QLinearGraph
from qnas.quant.grids import weight_levels
from qnas.space.plan import Add, Concat, Conv, Input, Output, Plan, Resize

__all__ = ["LayerParams", "LayerSource", "RandomLayers", "emit", "network_graph", "unit_graph"]


class LayerSource(Protocol):
    def layer(self, op: Conv) -> LayerParams: ...


class RandomLayers:
    """Random weight codes of ``weight_bits`` bits on 8-bit activation grids: enough to time an integer
    engine, whose kernel may depend on the weights' range (onnxruntime's uint8-weight form for 8-bit
    codes on CPUs without VNNI), so tables are timed with the target's widest weights."""

    def __init__(self, seed: int = 0, weight_bits: int = 8) -> None:
        self.rng = np.random.default_rng(seed)
        self.levels = weight_levels(weight_bits)

    def layer(self, op: Conv) -> LayerParams:
        cin_per_group = op.cin // op.groups
        codes = self.rng.integers(-self.levels, self.levels + 1, size=op.weight_shape).astype(np.int8)
        scale = np.full(op.cout, 1.0 / (self.levels * np.sqrt(cin_per_group * op.kernel**2)), np.float32)
        bias = self.rng.normal(0, 0.1, op.cout).astype(np.float32)
        out = None
        if op.out_quant:
            out = Grid.unsigned(0.03) if op.relu else Grid.symmetric(0.05)
        return LayerParams(codes, scale, bias, Grid.unsigned(0.03), out, label=op.label)


class _Emitter:
    """Walks a plan's operations; ``network`` is the whole network's plan, which says who reads what."""

    def __init__(self, g: GraphWriter, src: LayerSource, network: Plan) -> None:
        self.g, self.src, self.network = g, src, network
        self._params: dict[str, LayerParams] = {}
        self.values: dict[str, QTensor | FTensor] = {}

    def params(self, op: Conv) -> LayerParams:
        if op.label not in self._params:
            self._params[op.label] = self.src.layer(op)
        return self._params[op.label]

    def reader_grid(self, label: str) -> Grid | None:
        """The input grid of the conv that tensor ``label`` is written onto (see ``Plan.grid_reader``)."""
        reader = self.network.grid_reader(label)
        return None if reader is None else self.params(reader).in_grid

    def read(self, x: QTensor | FTensor, grid: Grid) -> QTensor:
        """``x`` on ``grid``: float tensors are quantized; codes must already be on it."""
        if isinstance(x, FTensor):
            return self.g.quantize(x, grid)
        if (x.grid.scale, x.grid.zero_point) != (grid.scale, grid.zero_point):
            raise ValueError(f"codes on grid {x.grid} read on grid {grid}")
        return x

    def input(self, op: Input) -> QTensor | FTensor:
        shape = (1, op.channels, *op.hw)
        producer = self.network.op(op.source) if op.source else None
        if isinstance(producer, Conv) and not producer.out_quant:  # it wrote codes onto a reader's grid
            grid = self.reader_grid(producer.label)
            if grid is not None:
                return self.g.quantized_input(op.label, shape, grid)
        return self.g.input(op.label, shape)

    def conv(self, op: Conv) -> QTensor | FTensor:
        p = self.params(op)
        q = self.read(self.values[op.inputs[0]], p.in_grid)
        if op.out_quant:  # onto the model's own output quantizer, then a real number
            return self.g.dequantize(self.g.conv(q, p, op, p.out_grid))
        out = self.reader_grid(op.label)
        if out is None:
            return self.g.conv_to_float(q, p, op)
        if op.relu and out.zero_point > out.lo:  # a signed reader after a ReLU: drop negative codes
            out = replace(out, lo=out.zero_point)
        return self.g.conv(q, p, op, out)

    def resize(self, op: Resize) -> QTensor | FTensor:
        if op.mode != "nearest":
            raise QnasError(f"{op.label}: only nearest resizing can be exported exactly (space.upsample: "
                            f"nearest), not {op.mode!r}")
        x = self.values[op.inputs[0]]
        grid = self.reader_grid(op.label)
        if grid is not None:  # resize codes: quantize first (exact, as resizing copies values)
            x = self.read(x, grid)
        return self.g.resize_nearest(x, op.hw)

    def concat(self, op: Concat) -> QTensor:
        grid = self.reader_grid(op.label)
        if grid is None:
            raise ValueError(f"{op.label}: a concatenation is exported as codes for the conv that reads it")
        return self.g.concat([self.read(self.values[i], grid) for i in op.inputs])

    def run(self, plan: Plan) -> None:
        for op in plan.ops:
            if isinstance(op, Input):
                self.values[op.label] = self.input(op)
            elif isinstance(op, Conv):
                self.values[op.label] = self.conv(op)
            elif isinstance(op, Add):
                self.values[op.label] = self.g.add(*(self.values[i] for i in op.inputs))
            elif isinstance(op, Resize):
                self.values[op.label] = self.resize(op)
            elif isinstance(op, Concat):
                self.values[op.label] = self.concat(op)
            elif isinstance(op, Output):
                self.g.output(self.values[op.inputs[0]], op.label)
            else:
                raise TypeError(f"no ONNX form for a {type(op).__name__} ({op.label})")


def emit(plan: Plan, src: LayerSource, writer: GraphWriter, network: Plan | None = None) -> GraphWriter:
    """Write ``plan``'s operations with ``writer``; ``network`` is the whole network ``plan`` is part of."""
    _Emitter(writer, src, network or plan).run(plan)
    return writer


def network_graph(plan: Plan, src: LayerSource, writer: type[GraphWriter] = QLinearGraph) -> GraphWriter:
    """The whole network: float image in, float logits (at input size) out, written by ``writer``."""
    return emit(plan, src, writer("qnas_network"))


def unit_graph(plan: Plan, unit: str, src: LayerSource, writer: type[GraphWriter] = QLinearGraph) -> GraphWriter:
    """One latency unit of ``plan`` alone, as the whole network runs it: its inputs are what the
    network hands it (real numbers, or codes on its reader's grid), its outputs what it hands on."""
    return emit(plan.unit_plan(unit), src, writer(f"unit {plan.unit(unit).key}"), network=plan)
