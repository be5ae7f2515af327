"""The relaxed supernet of a differentiable search: every gene a weighted mixture of its choices.

SqueezeNAS (METHOD.md §8) samples each gene's choice from a Gumbel-softmax over architecture
parameters; the network then computes the mixture. Weight sharing keeps that cheap, as in FBNetV2 and
EdMIPS: each conv runs once, on

- an input mixed over its activation bit widths: ``sum_a w_a * quantize_a(x)``;
- a weight mixed over the shapes its unit's shape genes give it (kernel, width) and its weight bit
  widths: ``sum_v w_v sum_b w_b * pad(quantize_b(W_v))``, where ``W_v`` is the elastic conv's own
  slice for that shape (``ElasticQConv2d.active_weight``, the routine forward and freeze use), padded
  with zeros to the largest live kernel and width (a zero-padded kernel computes what the smaller one
  does), each input and output channel's weights divided by the weight of the shapes that have that
  channel: a channel's probability enters once, through the mask below;
- its output channels beyond a variant's width weighted by that variant's probability (a channel mask),
  after BatchNorm (batch statistics; the supernet's running statistics are left alone) and ReLU;
- a conv whose shapes differ in geometry (a zoomed block's depthwise conv: stride 2s, dilation 2) runs once
  per geometry, each output masked by its shapes' probabilities and resized (nearest, as the block does)
  to the plain shape's resolution, and the outputs summed;
- a conv whose shapes read different input channels (the head's first convs when the head's branches are
  searched) runs at full width, a depthwise conv's output channels weighted by the probability of the
  branches that have them;
- and a residual block that a stage's depth may leave out adds ``gate * f(x)`` to its input, the gate
  being the probability mass of the depths that keep it.

With one-hot weights this is the supernet's forward for that genome (training mode) within float
rounding (tested). Choices a search has pruned (``alive``) are not computed at all: a conv shrinks
to its largest live kernel and width, and a block no live depth keeps is skipped, which is where
pruning saves time.

The genes' weights come from ``gumbel_weights``: ``softmax((theta + g) / tau)`` over the live choices,
with Gumbel noise ``g`` drawn from the caller's generator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qnas.space.networks import NOMINAL_HW, network_plan, unit_choices
from qnas.space.plan import Add, Conv
from qnas.supernet.blocks import ConvUnit
from qnas.supernet.network import Supernet, resize, run_plan
from qnas.supernet.ops import ElasticBatchNorm2d, conv2d

__all__ = ["RelaxedSupernet", "gumbel_weights", "choice_probabilities"]


def choice_probabilities(theta: Tensor, alive: Sequence[bool]) -> Tensor:
    """``softmax(theta)`` over the live choices (pruned ones exactly 0)."""
    mask = torch.tensor(list(alive), dtype=torch.bool, device=theta.device)
    return torch.softmax(theta.masked_fill(~mask, float("-inf")), dim=0)


def gumbel_weights(theta: Tensor, alive: Sequence[bool], tau: float, generator: torch.Generator | None) -> Tensor:
    """A Gumbel-softmax sample ``softmax((theta + g) / tau)`` over the live choices; ``generator=None``: no
    noise (the deterministic relaxation)."""
    mask = torch.tensor(list(alive), dtype=torch.bool, device=theta.device)
    logits = theta
    if generator is not None:
        u = torch.rand(theta.shape, generator=generator, dtype=theta.dtype).clamp_(1e-20, 1.0 - 1e-7)
        logits = theta - torch.log(-torch.log(u)).to(theta.device)
    return torch.softmax((logits / tau).masked_fill(~mask, float("-inf")), dim=0)


@dataclass(frozen=True)
class _ConvChoices:
    """A conv of the deepest network: its unit's shape genes and, per combination of their values (flat,
    C order), the conv's geometry; ``shapes`` groups the combinations that give the same geometry."""

    genes: tuple[str, ...]
    sizes: tuple[int, ...]
    shapes: tuple[tuple[Conv, tuple[tuple[int, ...], ...]], ...]  # (geometry, the combinations' value indexes)


def _pad(weight: Tensor, cout: int, cin: int, kernel: int) -> Tensor:
    """``weight`` zero-padded to ``cout`` x ``cin`` x ``kernel`` x ``kernel`` (the kernel centred)."""
    o, i, k, _ = weight.shape
    if (o, i, k) == (cout, cin, kernel):
        return weight
    side = (kernel - k) // 2
    return F.pad(weight, (side, side, side, side, 0, cin - i, 0, cout - o))


class RelaxedSupernet(nn.Module):
    """A trained supernet run as the mixture of its subnets that gene weights describe (see the module doc).

    ``forward(x, weights, alive)``: ``weights`` maps every gene label (``self.genes``) to a weight per
    choice; ``alive`` (optional) to which choices are still searched. The supernet's parameters are used
    as they are; the search optimizes only the weights' parameters.
    """

    def __init__(self, supernet: Supernet) -> None:
        super().__init__()
        self.supernet = supernet
        spec = supernet.spec
        self.genes: dict[str, tuple[int, ...]] = {g.label: g.choices for g in supernet.space.genes()}
        self._convs: dict[str, _ConvChoices] = {}
        self._gates: dict[str, tuple[str, tuple[bool, ...]]] = {}  # unit label -> (depth gene, present per choice)
        self._unit_of: dict[str, str] = {}
        largest = network_plan(spec, supernet.space.largest(), *NOMINAL_HW)
        for unit in unit_choices(spec, *NOMINAL_HW):
            labels = tuple(g.label for g in unit.genes)
            sizes = tuple(len(g.choices) for g in unit.genes)
            index = [tuple(g.choices.index(v) for g, v in zip(unit.genes, values)) for values, _ in unit.variants]
            for label in unit.unit.ops:
                self._unit_of[label] = unit.unit.label
                if not isinstance(largest.op(label), Conv):
                    continue
                groups: dict[tuple, tuple[Conv, list]] = {}
                for idx, (_, plan) in zip(index, unit.variants):
                    op = plan.op(label)
                    key = (op.weight_shape, op.groups, op.stride, op.dilation, op.channel_index)
                    groups.setdefault(key, (op, []))[1].append(idx)
                self._convs[label] = _ConvChoices(labels, sizes, tuple((op, tuple(i)) for op, i in groups.values()))
            if unit.depth is not None:
                last = largest.op(unit.unit.ops[-1])
                if not isinstance(last, Add) or last.inputs[1] != largest.op(unit.unit.ops[0]).inputs[0]:
                    raise ValueError(f"unit {unit.unit.label!r}: a depth gene removes it, but it is not a residual "
                                     "block (input + f(input)), which a relaxed depth needs")
                self._gates[unit.unit.label] = (unit.depth.label, tuple(v in unit.present for v in unit.depth.choices))

    # -- the mixtures ------------------------------------------------------------------------------------------
    def _live(self, alive: Mapping[str, Sequence[bool]] | None, gene: str) -> Sequence[bool]:
        return (alive or {}).get(gene) or [True] * len(self.genes[gene])

    def gate(self, unit: str, weights: Mapping[str, Tensor]) -> Tensor | None:
        """The weight of the depths that keep ``unit`` (None: no depth gene removes it)."""
        if unit not in self._gates:
            return None
        gene, present = self._gates[unit]
        return (weights[gene] * torch.tensor(present, dtype=weights[gene].dtype, device=weights[gene].device)).sum()

    def _skipped(self, unit: str, alive: Mapping[str, Sequence[bool]] | None) -> bool:
        """Whether no live depth keeps ``unit`` (then it is not computed)."""
        if unit not in self._gates:
            return False
        gene, present = self._gates[unit]
        return not any(p and a for p, a in zip(present, self._live(alive, gene)))

    def _mixed_bits(self, quant: nn.Module, gene: str, fixed: int, t: Tensor, weights, alive) -> Tensor:
        """``t`` through ``quant`` at each live bit width of ``gene``, weighted (at ``fixed`` bits if no gene)."""
        if gene not in self.genes:
            quant.set_bits(fixed)
            return quant(t)
        out = None
        for i, (bits, live) in enumerate(zip(self.genes[gene], self._live(alive, gene))):
            if live:
                quant.set_bits(bits)
                term = weights[gene][i] * quant(t)
                out = term if out is None else out + term
        return out

    def _conv(self, unit: ConvUnit, op: Conv, x: Tensor, weights, alive) -> Tensor:
        """The conv ``op`` of the deepest network mixed over its live shapes: one conv per geometry (stride and
        dilation: a zoomed block's depthwise conv has its own), each resized to ``op``'s resolution."""
        choices = self._convs[op.label]
        lives = [self._live(alive, g) for g in choices.genes]
        if choices.genes:
            joint = weights[choices.genes[0]]
            for gene in choices.genes[1:]:
                joint = joint[..., None] * weights[gene]
        geometries: dict[tuple[int, int], list] = {}  # (stride, dilation) -> [(shape, probability)] of live shapes
        for shape, indexes in choices.shapes:
            live = [i for i in indexes if all(lv[j] for lv, j in zip(lives, i))]
            if live:
                geometries.setdefault((shape.stride, shape.dilation), []).append(
                    (shape, sum(joint[i] for i in live) if choices.genes else None))
        if any(shape.channel_index for shape, _ in choices.shapes):
            return self._indexed_conv(unit, op, x, [s for shapes in geometries.values() for s in shapes], weights, alive)
        out = None
        for shapes in geometries.values():
            y = self._geometry_conv(unit, op, x, shapes, weights, alive)
            if len({s.cout for s, _ in shapes}) > 1 or len(geometries) > 1:  # each channel's share of the mixture
                channel = torch.arange(y.shape[1], device=y.device)
                mask = sum(p * (channel < s.cout).to(y.dtype) for s, p in shapes)
                y = y * mask.reshape(1, -1, 1, 1)
            y = resize(y, op.hw, "nearest")  # a zoomed conv's output, upsampled as its block does
            out = y if out is None else out + y
        return out

    def _indexed_conv(self, unit: ConvUnit, op: Conv, x: Tensor, shapes, weights, alive) -> Tensor:
        """A conv whose shapes read different channels of its input (the head's first convs, when the head's
        branches are searched): the conv at full width, a depthwise conv's output channels weighted by the
        probability that a shape has them (a dense conv reads the channels the depthwise conv before it
        weighted)."""
        if not op.depthwise:  # each shape's weight quantized on its own channels (their clip), placed in full
            mixed = mass = None
            for shape, p in shapes:
                p = 1.0 if p is None else p
                quantized = self._mixed_bits(unit.conv.weight_quant, f"{op.label}.wbits", op.wbits,
                                             unit.conv.active_weight(shape), weights, alive)
                columns = list(shape.channel_index or range(shape.cin))
                placed = quantized.new_zeros(quantized.shape[0], x.shape[1], *quantized.shape[2:])
                placed[:, columns] = quantized
                cover = x.new_zeros(1, x.shape[1], 1, 1)
                cover[:, columns] = 1.0
                mixed = p * placed if mixed is None else mixed + p * placed
                mass = p * cover if mass is None else mass + p * cover
            mixed = mixed / torch.where(mass > 0, mass, torch.ones_like(mass))
            return self._geometry_conv(unit, op, x, [(op, None)], weights, alive, mixed)
        y = self._geometry_conv(unit, op, x, [(op, None)], weights, alive)
        gate = y.new_zeros(y.shape[1])
        for shape, p in shapes:
            gate[list(shape.channel_index or range(shape.cout))] += 1.0 if p is None else p
        return y * gate.reshape(1, -1, 1, 1)

    def _geometry_conv(self, unit: ConvUnit, op: Conv, x: Tensor, shapes, weights, alive,
                       mixed: Tensor | None = None) -> Tensor:
        """One conv over the weights of ``shapes`` (of one stride and dilation) mixed by their probabilities
        (or over ``mixed``, a weight mixed already)."""
        cout = max(s.cout for s, _ in shapes)
        kernel = max(s.kernel for s, _ in shapes)
        stride, dilation = shapes[0][0].stride, shapes[0][0].dilation
        depthwise = op.depthwise
        if depthwise and cout != x.shape[1]:
            raise ValueError(f"{op.label}: a depthwise conv of {cout} channels reads {x.shape[1]}")
        cin = 1 if depthwise else x.shape[1]
        mass = None
        for shape, p in shapes if mixed is None else ():
            quantized = self._mixed_bits(unit.conv.weight_quant, f"{op.label}.wbits", op.wbits,
                                         unit.conv.active_weight(shape), weights, alive)
            w = _pad(quantized, cout, cin, kernel)
            if p is None:
                mixed = w
                continue
            cover = _pad(w.new_ones(shape.cout, 1 if depthwise else shape.cin // shape.groups, 1, 1), cout, cin, 1)
            mixed = p * w if mixed is None else mixed + p * w
            mass = p * cover if mass is None else mass + p * cover
        if mass is not None and len(shapes) > 1:
            # each weight element mixed over the shapes that have it: a channel's share of the mixture is its
            # mask (the output's, in _conv; the input's, from the conv before), not also its weight's scale
            mixed = mixed / torch.where(mass > 0, mass, torch.ones_like(mass))
        bias = unit.conv.active_bias(cout)
        inputs = self._mixed_bits(unit.conv.act_quant, f"{op.label}.abits", op.abits, x, weights, alive)
        y = conv2d(inputs, mixed, bias, stride, (kernel - 1) // 2 * dilation, dilation,
                   cout if depthwise else op.groups)
        if unit.bn is not None:
            bn = unit.bn
            gamma, beta = (bn.active_params(cout)[2:] if isinstance(bn, ElasticBatchNorm2d)
                           else (bn.weight, bn.bias))
            y = F.batch_norm(y, None, None, gamma, beta, True, 0.0, bn.eps)
        if op.relu:
            y = F.relu(y)
        if unit.out_quant is not None:
            y = unit.out_quant(y)
        return y

    def forward(self, x: Tensor, weights: Mapping[str, Tensor],
                alive: Mapping[str, Sequence[bool]] | None = None) -> Tensor:
        try:
            return self._run(x, weights, alive)
        finally:  # the quantizers were switched between bit widths: back to the supernet's genome
            self.supernet.set_genome(self.supernet.genome)

    def _run(self, x: Tensor, weights: Mapping[str, Tensor], alive: Mapping[str, Sequence[bool]] | None) -> Tensor:
        plan = network_plan(self.supernet.spec, self.supernet.space.largest(), x.shape[-2], x.shape[-1])

        def conv(op: Conv, t: Tensor) -> Tensor:
            if self._skipped(self._unit_of.get(op.label), alive):  # a block no live depth keeps: not computed
                return t
            return self._conv(self.supernet.unit(op.label), op, t, weights, alive)

        def add(op: Add, branch: Tensor, skip: Tensor) -> Tensor:
            unit = self._unit_of.get(op.label)
            if unit is None or unit not in self._gates:
                return branch + skip
            if self._skipped(unit, alive):
                return skip
            return self.gate(unit, weights) * branch + skip

        return run_plan(plan, x, conv, add)[0]
